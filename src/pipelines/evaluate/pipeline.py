"""Evaluate pipeline: detectors + evaluation split -> metrics JSON, confusion matrices, overlays."""

from kedro.pipeline import Node, Pipeline

from pipelines.evaluate.nodes import combine_metrics, evaluate_checkpoint

_DATA = ["splits", "edited_images", "label_maps", "base_images", "params:evaluate"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(evaluate_checkpoint, ["detector_binary", *_DATA],
             ["metrics_binary", "confusion_matrix_binary", "overlays_binary"],
             name="evaluate_binary_detector", tags=["evaluate"]),
        Node(evaluate_checkpoint, ["detector_semantic", *_DATA],
             ["metrics_semantic", "confusion_matrix_semantic", "overlays_semantic"],
             name="evaluate_semantic_detector", tags=["evaluate"]),
        Node(combine_metrics, ["metrics_binary", "metrics_semantic"], "evaluation_metrics",
             name="combine_metrics", tags=["evaluate"]),
    ])
