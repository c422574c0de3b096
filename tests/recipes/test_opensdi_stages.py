"""OpenSDI's generation paths through the real stage nodes, on tiny random checkpoints:

- CLIP best-of-N through the inpaint stage: the kept seed is the best-scoring one (re-scored here
  with the same tiny CLIP) and provenance lists every candidate;
- full synthesis: the sample is made, kept by filter and labelled as its model's class in the
  label map, provenance, the split protocols and evaluate's groups;
- AutoPipelineForInpainting maps each recipe checkpoint family to the pipeline its entry runs.
"""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data

from models.cache import ModelCache
from models.generators import build_clip_candidate_scorer
from models.generators.tiny_zoo import build_tiny_sd
from pipelines.evaluate.protocols import breakdown_groups, item_table
from pipelines.filter.nodes import assemble_filter, run_scoring
from pipelines.inpaint.nodes import (
    assemble_samples,
    plan_edits,
    plan_full_synthesis,
    run_edits,
    run_full_synthesis,
)
from pipelines.split.nodes import make_splits
from tests.recipes.test_opensdi_recipe import build_tiny_clip

SIZE = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("opensdi-stage-models")
    return {"sd": str(build_tiny_sd(root / "sd1.5", inpainting=False, seed=0)), "clip": str(build_tiny_clip(root / "clip"))}


def entries(models):
    return [
        {"name": "SD15", "generator": "sd-inpaint", "label": "sd1.5",
         "kwargs": {"model": models["sd"], "resolution": SIZE, "steps": 2}},
        {"name": "sd15-whole", "generator": "sd-txt2img", "task": "text-to-image", "label": "sd1.5",
         "kwargs": {"model": models["sd"], "resolution": SIZE, "steps": 2}},
        {"name": "copy", "generator": "copy_move", "label": "sdxl"},
    ]


@pytest.fixture(scope="module")
def bases():
    photos = {f"b{k}": cv2.resize(getattr(skimage.data, n)(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
              for k, n in enumerate(["astronaut", "chelsea", "coffee", "rocket"])}
    manifest = pd.DataFrame([{"base_id": b, "group_id": f"g{b}", "kind": "real", "caption": "a photo of a cat"}
                             for b in photos])
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[16:44, 12:40] = 255
    regions = pd.DataFrame([{"region_id": f"{b}-v0-r1", "sample_id": f"{b}-v0", "base_id": b, "turn": 1,
                             "prompt": "a red apple", "edit_type": "attribute", "kind": "thing"} for b in photos])
    loaders = {b: (lambda image=image: image) for b, image in photos.items()}
    return loaders, manifest, regions, {r: (lambda: mask) for r in regions["region_id"]}


def test_clip_best_of_n_through_the_inpaint_stage(models, bases):
    images, manifest, regions, masks = bases
    params = {"generators": entries(models)[:1], "candidates_per_edit": 3, "clip_model": models["clip"],
              "clip_region": "image", "work_dir": None, "seed": 0}
    results = run_edits(plan_edits(regions, params), images, manifest, masks, params)
    edited, label_maps, samples, provenance = assemble_samples(results, {})
    scorer = build_clip_candidate_scorer(models["clip"], region="image")
    assert len(provenance) == len(regions)
    for row in provenance.itertuples():
        assert len(row.candidate_seeds) == 3 and len(set(row.candidate_seeds)) == 3  # every candidate listed
        assert len(row.candidate_scores) == 3
        best = int(np.argmax(row.candidate_scores))
        assert row.seed == row.candidate_seeds[best] and row.label == 1
        # the kept image IS the best candidate: its own CLIP score is the highest one recorded
        kept = edited[row.sample_id]()
        assert scorer(kept, masks[row.region_id]() > 127, row.prompt) == pytest.approx(max(row.candidate_scores), abs=1e-3)
        assert len(set(np.round(row.candidate_scores, 4))) > 1  # the seeds really differ


def test_full_synthesis_is_kept_and_labelled_as_its_model_everywhere(models, bases):
    images, manifest, regions, masks = bases
    gens = entries(models)
    params = {"generators": gens, "full_synthesis": {"ratio": 1.0, "prompt": "a photo"}, "work_dir": None, "seed": 0}
    plan = plan_full_synthesis(manifest, params)
    assert [p["generator"] for p in plan] == ["sd15-whole"] * 4 and all(p["prompt"] == "a photo of a cat" for p in plan)
    whole = run_full_synthesis(plan, images, manifest, params)
    edit_params = {**params, "generators": [gens[0], gens[2]]}
    edits = run_edits(plan_edits(regions, edit_params), images, manifest, masks, {**edit_params, "generators": gens})
    edited, label_maps, samples, provenance = assemble_samples(edits, whole)
    full = samples[samples["edit_types"].map(lambda t: t == ["full_synthesis"])]
    assert len(full) == 4 and set(full["generators"].map(tuple)) == {("sd15-whole",)}
    for sample_id in full["sample_id"]:
        assert (label_maps[sample_id]() == 1).all()  # class sd1.5 (label 1), every pixel
        assert edited[sample_id]().shape == (SIZE, SIZE, 3)
    assert set(provenance.loc[provenance["generator"] == "sd15-whole", "label"]) == {1}

    # filter (the recipe's: no check) keeps it; the split puts it with its class
    scored, scores, checks = run_scoring(edited, samples, provenance, images, {"checks": [], "work_dir": None},
                                         ModelCache())
    filtered, _ = assemble_filter(scored, scores, checks)
    assert filtered.set_index("sample_id").loc[full["sample_id"], "kept"].all()
    split_params = {"seed": 0, "names": ["train", "test"], "ratios": [0.5, 0.5], "generators": gens, "use": "random",
                    "protocols": {"random": {}, "train-on": {"kind": "train_on_one", "train_on": "sd1.5"}}}
    _, tables, _ = make_splits(filtered, manifest, split_params)
    table = tables["train-on-sd1.5"]
    train_groups = set(table.loc[table["split"] == "train", "group_id"])
    expected = {s for s, g in zip(full["sample_id"], full["group_id"]) if g in train_groups}
    trained = set(table.loc[(table["split"] == "train") & (table["kind"] == "edited"), "item_id"])
    assert expected and expected <= trained  # whole images of class sd1.5 train with it

    rows = table[table["split"] == "test"].reset_index(drop=True)
    items = item_table(rows, samples, provenance, {g["name"]: g["label"] for g in gens})
    groups = breakdown_groups(items, "generator", include_authentic=False)
    local = breakdown_groups(items, "generator_local")
    whole_test = set(rows.loc[rows["item_id"].isin(full["sample_id"]), "item_id"])
    assert whole_test <= set(items.loc[groups.get("sd1.5", []), "item_id"])
    assert not whole_test & set(items.loc[[p for g in local.values() for p in g], "item_id"])  # not in pixel sets


@pytest.mark.parametrize("builder, entry", [("sd", "sd-inpaint"), ("sdxl", "sdxl-inpaint"), ("sd3", "sd3-inpaint"),
                                            ("flux", "flux-inpaint")])
def test_autopipeline_for_inpainting_maps_each_base_checkpoint_to_its_entry(builder, entry, tmp_path):
    from diffusers import AutoPipelineForInpainting

    from models.generators import GENERATORS
    from models.generators import tiny_zoo

    folder = tmp_path / builder
    {"sd": lambda: tiny_zoo.build_tiny_sd(folder, inpainting=False), "sdxl": lambda: tiny_zoo.build_tiny_sdxl(folder, inpainting=False),
     "sd3": lambda: tiny_zoo.build_tiny_sd3(folder), "flux": lambda: tiny_zoo.build_tiny_flux(folder, fill=False)}[builder]()
    pipe = AutoPipelineForInpainting.from_pretrained(str(folder))
    assert type(pipe).__name__ == GENERATORS.meta(entry)["pipeline"]
