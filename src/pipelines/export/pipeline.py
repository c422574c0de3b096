"""Export pipeline: the split dataset -> IMDL-BenCo, BR-Gen, DiffSeg30k and Hugging Face parquet
layouts under data/07_model_output/export (run with `kedro run --pipeline export`)."""

from kedro.pipeline import Node, Pipeline

from pipelines.export.nodes import export_dataset


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            export_dataset,
            inputs=["splits", "edited_images", "label_maps", "base_images", "filtered_samples", "base_manifest",
                    "params:export"],
            outputs=["export_imdl", "export_imdl_lists", "export_brgen", "export_brgen_lists", "export_diffseg30k",
                     "export_diffseg30k_index", "export_hf"],
            name="export_dataset",
            tags=["export"],
        ),
    ])
