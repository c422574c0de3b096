"""Stats pipeline: the split dataset -> DiffSeg30k Fig. 3 style figures, statistics JSON and an
HTML summary page in data/08_reporting."""

from kedro.pipeline import Node, Pipeline

from pipelines.stats.nodes import compute_statistics


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            compute_statistics,
            inputs=["base_manifest", "regions", "filtered_samples", "provenance", "split_tables", "split_protocols",
                    "filter_report", "params:stats"],
            outputs=["statistics_figures", "dataset_statistics", "statistics_page"],
            name="compute_statistics",
            tags=["stats"],
        ),
    ])
