"""Inpaint pipeline: base images + regions -> edited images, label maps, samples, provenance.

plan_edits / plan_full_synthesis draw every random choice up front; run_edits /
run_full_synthesis do the (resumable, shardable) work; assemble_samples builds the tables.
"""

from kedro.pipeline import Node, Pipeline

from pipelines.inpaint.nodes import (
    assemble_samples,
    plan_edits,
    plan_full_synthesis,
    run_edits,
    run_full_synthesis,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(plan_edits, ["regions", "params:inpaint"], "inpaint_plan", name="plan_edits", tags=["inpaint"]),
        Node(plan_full_synthesis, ["base_manifest", "params:inpaint"], "full_synthesis_plan",
             name="plan_full_synthesis", tags=["inpaint"]),
        Node(run_edits, ["inpaint_plan", "base_images", "base_manifest", "region_masks", "params:inpaint", "model_cache"],
             "edit_results", name="run_edits", tags=["inpaint"]),
        Node(run_full_synthesis, ["full_synthesis_plan", "base_images", "base_manifest", "params:inpaint"],
             "full_synthesis_results", name="run_full_synthesis", tags=["inpaint"]),
        Node(assemble_samples, ["edit_results", "full_synthesis_results"],
             ["edited_images", "label_maps", "samples", "provenance"], name="assemble_samples", tags=["inpaint"]),
    ])
