"""Inpaint pipeline: base images + regions -> edited images, label maps, samples, provenance."""

from kedro.pipeline import Node, Pipeline

from pipelines.inpaint.nodes import inpaint_samples


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            inpaint_samples,
            inputs=["base_images", "base_manifest", "region_masks", "regions", "params:inpaint"],
            outputs=["edited_images", "label_maps", "samples", "provenance"],
            name="inpaint_samples",
            tags=["inpaint"],
        ),
    ])
