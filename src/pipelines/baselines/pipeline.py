"""Baselines pipeline: split rows -> every listed detector trained and evaluated -> one table."""

from kedro.pipeline import Node, Pipeline

from pipelines.baselines.nodes import baselines_markdown, run_baselines, select_rows


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(select_rows, ["splits", "params:baselines"], "baselines_rows", name="select_baseline_rows", tags=["baselines"]),
        Node(run_baselines, ["baselines_rows", "edited_images", "label_maps", "base_images", "params:baselines"],
             "baselines_table", name="train_and_evaluate_baselines", tags=["baselines"]),
        Node(baselines_markdown, "baselines_table", "baselines_report", name="baselines_report", tags=["baselines", "report"]),
    ])
