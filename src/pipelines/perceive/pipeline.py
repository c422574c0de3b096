"""Perceive pipeline: base images -> region masks + regions table (kinds, edit types, prompts).

run_perception proposes and chooses the regions of every base (resumable); assemble_regions
builds the table and the mask partitions.
"""

from kedro.pipeline import Node, Pipeline

from pipelines.perceive.nodes import assemble_regions, run_perception


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(run_perception, ["base_images", "base_annotations", "params:perceive", "model_cache"], "perceive_results",
             name="run_perception", tags=["perceive"]),
        Node(assemble_regions, "perceive_results", ["region_masks", "regions"], name="assemble_regions",
             tags=["perceive"]),
    ])
