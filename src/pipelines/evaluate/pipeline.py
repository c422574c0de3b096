"""Evaluate pipeline: detectors + evaluation split -> metrics JSON (every protocol), confusion
matrices, overlays, qualitative grids, the HTML report and the comparison page; every
``train.variants`` detector on its own split table (``metrics_variants``, in metrics.json)."""

from kedro.pipeline import Node, Pipeline

from pipelines.evaluate.learning_curve import learning_curve_figure
from pipelines.evaluate.nodes import (
    build_comparison,
    build_report,
    combine_metrics,
    evaluate_checkpoint,
    evaluate_variants,
    render_paper_tables,
)

_DATA = ["splits", "samples", "provenance", "edited_images", "label_maps", "base_images", "params:evaluate"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(evaluate_checkpoint, ["detector_binary", *_DATA],
             ["metrics_binary", "confusion_matrix_binary", "overlays_binary", "qualitative_examples_binary"],
             name="evaluate_binary_detector", tags=["evaluate"]),
        Node(evaluate_checkpoint, ["detector_semantic", *_DATA],
             ["metrics_semantic", "confusion_matrix_semantic", "overlays_semantic", "qualitative_examples_semantic"],
             name="evaluate_semantic_detector", tags=["evaluate"]),
        Node(evaluate_variants, ["detector_variants", "splits", "split_tables", *_DATA[1:]], "metrics_variants",
             name="evaluate_variant_detectors", tags=["evaluate"]),
        Node(combine_metrics, ["metrics_binary", "metrics_semantic", "metrics_variants"], "evaluation_metrics",
             name="combine_metrics", tags=["evaluate"]),
        Node(build_report, ["metrics_binary", "metrics_semantic", "qualitative_examples_binary",
                            "qualitative_examples_semantic", "params:evaluate", "detector_binary", "detector_semantic",
                            "metrics_variants"],
             "evaluation_report",
             name="build_evaluation_report", tags=["evaluate", "report"]),
        Node(render_paper_tables, ["evaluation_metrics", "params:evaluate"], "paper_tables",
             name="render_paper_tables", tags=["evaluate", "report"]),
        Node(build_comparison, ["metrics_binary", "metrics_semantic", "params:evaluate"], "evaluation_comparison",
             name="build_evaluation_comparison", tags=["evaluate", "report"]),
        Node(learning_curve_figure, ["detector_binary", "detector_semantic"], "learning_curve",
             name="plot_learning_curve", tags=["evaluate", "report"]),
    ])
