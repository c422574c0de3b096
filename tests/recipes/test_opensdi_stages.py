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


# --- classic edits "at random intervals" (section 3) ----------------------------------------------

CLASSIC_ENTRIES = [
    {"name": "sd1.5", "generator": "sd-inpaint"},
    {"name": "sd3", "generator": "sd3-inpaint", "weight": 2.0},
    {"name": "sd1.5-copy_move", "generator": "copy_move", "label": "sd1.5"},
    {"name": "sd3-splicing", "generator": "splicing", "label": "sd3", "weight": 3.0},
]


def _one_turn_regions(n: int) -> pd.DataFrame:
    return pd.DataFrame([{"region_id": f"s{k:05d}-r1", "sample_id": f"s{k:05d}", "base_id": f"b{k:05d}", "turn": 1,
                          "prompt": "p", "edit_type": "removal", "kind": "thing"} for k in range(n)])


def _classic_positions(plan) -> list[int]:
    names = [g for p in sorted(plan, key=lambda p: p["sample_id"]) for g in p["generators"]]
    return [i for i, name in enumerate(names) if name in {"sd1.5-copy_move", "sd3-splicing"}]


def test_classic_edits_follow_the_configured_interval_distribution():
    regions = _one_turn_regions(3000)
    params = {"generators": CLASSIC_ENTRIES, "seed": 0, "classic_intervals": {"generators": ["copy_move", "splicing"],
                                                                            "gap": [2, 6]}}
    plan = plan_edits(regions, params)
    positions = _classic_positions(plan)
    # k diffusion edits, then one classic edit: the first after 2..6 edits, then gaps of k + 1
    gaps = [positions[0]] + [b - a - 1 for a, b in zip(positions, positions[1:])]
    assert set(gaps) <= set(range(2, 7)) and set(gaps) == set(range(2, 7))
    counts = np.bincount(gaps, minlength=7)[2:]
    expected = len(gaps) / 5  # uniform over 2..6
    assert ((counts - expected) ** 2 / expected).sum() < 18.5  # chi-square, 4 dof, p = 0.001
    assert len(positions) / 3000 == pytest.approx(1 / 5, abs=0.02)  # one in E[k] + 1 = 5 edits
    # the classic entry by weight among the classic entries (1 : 3), the others by theirs (1 : 2)
    kinds = pd.Series([p["generators"][0] for p in plan]).value_counts()
    assert kinds["sd3-splicing"] / len(positions) == pytest.approx(0.75, abs=0.05)
    assert kinds["sd3"] / (kinds["sd3"] + kinds["sd1.5"]) == pytest.approx(2 / 3, abs=0.04)

    # reproducible per seed, another seed another schedule; shards agree with the whole run
    assert plan_edits(regions, params) == plan
    assert _classic_positions(plan_edits(regions, {**params, "seed": 1})) != positions
    sharded = [p for i in range(3) for p in plan_edits(regions, {**params, "shard": {"index": i, "count": 3}})]
    assert sorted(sharded, key=lambda p: p["sample_id"]) == plan
    # a non-classic turn draws exactly what it draws without the schedule (the schedule only replaces)
    free = plan_edits(regions, {**params, "generators": CLASSIC_ENTRIES[:2], "classic_intervals": None})
    classic_ids = {plan[i]["sample_id"] for i in positions}
    assert all(a["generators"] == b["generators"] for a, b in zip(plan, free) if a["sample_id"] not in classic_ids)


def test_classic_intervals_refuse_bad_settings():
    regions = _one_turn_regions(20)
    intervals = {"generators": ["copy_move", "splicing"], "gap": [1, 9]}
    with pytest.raises(ValueError, match="gap"):
        plan_edits(regions, {"generators": CLASSIC_ENTRIES, "classic_intervals": {**intervals, "gap": [5, 2]}})
    with pytest.raises(ValueError, match="no generator entry runs"):
        plan_edits(regions, {"generators": CLASSIC_ENTRIES[:2], "classic_intervals": intervals})
    with pytest.raises(ValueError, match="every_generator"):
        plan_edits(regions, {"generators": CLASSIC_ENTRIES, "classic_intervals": intervals, "every_generator": True})


def test_internvl2_still_has_no_transformers_port():
    """The card's InternVL2 -> InternVL3 deviation: InternVL2's checkpoints are `internvl_chat`
    (remote code only); transformers' port is `internvl` (InternVL2.5 / 3 "-hf" checkpoints). When
    this fails, transformers ports InternVL2 and the recipe should name it."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    from models.perception.vlm import InternVL

    assert CONFIG_MAPPING_NAMES["internvl"] == "InternVLConfig" and InternVL.model_types == ("internvl",)
    assert "internvl_chat" not in CONFIG_MAPPING_NAMES and "internvl2" not in CONFIG_MAPPING_NAMES
    assert not hasattr(transformers, "InternVLChatModel") and not hasattr(transformers, "InternVL2ForConditionalGeneration")
