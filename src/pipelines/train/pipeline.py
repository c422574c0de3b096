"""Train pipeline: a split -> one detector checkpoint per task (binary, semantic); ``train.task``
chooses which are trained, the other gets a marked untrained placeholder (see nodes.py); every
``train.variants`` entry is a further detector trained the same way (``detector_variants``)."""

from kedro.pipeline import Node, Pipeline

from pipelines.train.nodes import train_binary_detector, train_semantic_detector, train_variants

_INPUTS = ["splits", "split_tables", "split_protocols", "edited_images", "label_maps", "base_images", "params:train"]


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(train_binary_detector, _INPUTS, "detector_binary", name="train_binary_detector", tags=["train"]),
        Node(train_semantic_detector, _INPUTS, "detector_semantic", name="train_semantic_detector", tags=["train"]),
        # train.variants: the further detectors a recipe's tables need, in the same run
        Node(train_variants, _INPUTS, "detector_variants", name="train_variant_detectors", tags=["train"]),
    ])
