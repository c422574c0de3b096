"""Perceive pipeline: base images -> region masks + regions table (kinds, edit types, prompts)."""

from kedro.pipeline import Node, Pipeline

from pipelines.perceive.nodes import perceive_regions


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(
            perceive_regions,
            inputs=["base_images", "base_annotations", "params:perceive"],
            outputs=["region_masks", "regions"],
            name="perceive_regions",
            tags=["perceive"],
        ),
    ])
