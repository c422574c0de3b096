"""AI-generated bases at ingest (DiffSeg30k): a tiny random Stable Diffusion text-to-image model,
saved with save_pretrained and loaded through the same code path as a real checkpoint."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from models.generators.tiny_zoo import build_tiny_sd
from pipelines.ingest.nodes import ingest_base_images
from pipelines.ingest.synthesize import plan_ai_bases
from pipelines.split.nodes import split_samples


@pytest.fixture(scope="module")
def t2i_folder(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd-t2i") / "sd", inpainting=False)


def _generators(folder) -> list[dict]:
    return [
        {"name": "telea"},
        {"name": "sd-full", "generator": "sd-txt2img", "task": "text-to-image", "label": "sd",
         "kwargs": {"model": str(folder), "steps": 2, "resolution": None}},
    ]


def _params(folder, ratio: float) -> dict:
    return {"source": "sample", "sample": {"names": ["astronaut", "coffee", "chelsea"]}, "image_size": 64,
            "crops_per_photo": 1, "seed": 3,
            "ai_bases": {"ratio": ratio, "generators": _generators(folder), "prompt": "a photo", "batch_size": 2}}


def test_every_real_base_gets_an_ai_companion_in_its_group(t2i_folder):
    images, manifest, annotations, _ = ingest_base_images(_params(t2i_folder, 1.0))
    real = manifest[manifest["kind"] == "real"]
    ai = manifest[manifest["kind"] == "ai"]
    assert len(real) == 3 and len(ai) == 3
    assert set(ai["base_id"]) == {f"{b}-ai" for b in real["base_id"]}
    pairs = ai.assign(real_id=ai["base_id"].str.removesuffix("-ai")).merge(real, left_on="real_id", right_on="base_id")
    assert (pairs["group_id_x"] == pairs["group_id_y"]).all()
    assert set(ai["source"]) == {"t2i:sd-full"}
    for row in ai.itertuples():
        image = images[row.base_id]()
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 1.0
        assert hashlib.sha256(image.tobytes()).hexdigest() == row.sha256
    # Generated bases are not photos: no annotations point at them.
    assert not set(annotations["base_id"]) & set(ai["base_id"])
    # Same config and seed: the same images.
    again, manifest_again, _, _ = ingest_base_images(_params(t2i_folder, 1.0))
    pd.testing.assert_frame_equal(manifest, manifest_again)


def test_the_ratio_draws_per_base_and_zero_makes_none(t2i_folder):
    manifest = pd.DataFrame({"base_id": [f"b{i}" for i in range(400)], "kind": "real", "caption": ""})
    cfg = _params(t2i_folder, 0.5)["ai_bases"]
    plan = plan_ai_bases(manifest, cfg, seed=0)
    assert 150 < len(plan) < 250  # about half
    assert {name for _, name, _, _ in plan} == {"sd-full"} and {p for _, _, p, _ in plan} == {"a photo"}
    # The draw for a base does not depend on the others (shards give the same plan).
    half = plan_ai_bases(manifest.iloc[::2], cfg, seed=0)
    assert set(half) == {p for p in plan if int(p[0][1:]) % 2 == 0}
    assert plan_ai_bases(manifest, {**cfg, "ratio": 0.0}, seed=0) == []


def test_bad_ai_base_settings_are_named(t2i_folder):
    manifest = pd.DataFrame({"base_id": ["b0"], "kind": "real", "caption": ""})
    with pytest.raises(ValueError, match="ratio must be in"):
        plan_ai_bases(manifest, {"ratio": 1.5, "generators": _generators(t2i_folder)}, seed=0)
    with pytest.raises(ValueError, match="task: text-to-image"):
        plan_ai_bases(manifest, {"ratio": 0.5, "generators": [{"name": "telea"}]}, seed=0)


def test_ai_bases_are_never_authentic_negatives():
    manifest = pd.DataFrame({
        "base_id": ["p0", "p0-ai", "p1", "p1-ai"], "group_id": ["g0", "g0", "g1", "g1"],
        "kind": ["real", "ai", "real", "ai"], "source": "x", "caption": "",
    })
    samples = pd.DataFrame({
        "sample_id": ["p0-ai-s0", "p1-s0"], "base_id": ["p0-ai", "p1"], "group_id": ["g0", "g1"], "kept": True,
        "generators": [["telea"], ["telea"]], "last_generator": ["telea", "telea"], "n_turns": 1, "edited_area_ratio": 0.1,
        "edit_types": [["removal"], ["removal"]], "region_kinds": [["thing"], ["thing"]],
    })
    tables = split_samples(samples, manifest, {"names": ["train", "val"], "ratios": [0.5, 0.5], "seed": 0,
                                               "add_authentic": True})
    splits = tables[0] if isinstance(tables, tuple) else tables
    authentic = splits[splits["kind"] == "authentic"]
    assert set(authentic["base_id"]) == {"p0", "p1"}
    # A photo and its generated companion stay on the same side.
    sides = splits.groupby("group_id")["split"].nunique()
    assert (sides == 1).all()
