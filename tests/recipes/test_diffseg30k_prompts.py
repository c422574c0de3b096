"""DiffSeg30k sec. 3.1, stage 2: turn k's prompt is written by the VLM looking at the image as
edited by turns < k. The perceive and inpaint stages run as Kedro wires them, with a tiny random
Qwen2.5-VL (models.perception.tiny) shared through the model cache, and the OpenCV inpainters
(deterministic, no download). A spy around the real adapter's ``ask`` records what it was shown."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data

from models.cache import ModelCache
from models.generators import EditSpec, apply_edits, create_generator
from models.perception import Region, mark_region
from models.perception.tiny import tiny_checkpoint
from tests.stages import perceive_regions, run_stage

SIZE = 64


@pytest.fixture(scope="module")
def vlm_entry(tmp_path_factory):
    folder = tiny_checkpoint("qwen2.5-vl", tmp_path_factory.mktemp("tiny-vlm"))
    return {"name": "qwen", "vlm": "qwen2.5-vl",
            "kwargs": {"model": str(folder), "device": "cpu", "dtype": "float32", "max_pixels": 16 * 28 * 28,
                       "max_new_tokens": 4}}


def _bases():
    photos = {name: cv2.resize(getattr(skimage.data, name)(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
              for name in ("astronaut", "coffee")}
    manifest = pd.DataFrame({"base_id": list(photos), "group_id": list(photos), "kind": "real",
                             "caption": "", "sha256": list(photos)})
    return photos, manifest


def _run(vlm_entry, prompt_vlms: bool, spy: list | None = None):
    photos, manifest = _bases()
    loaders = {k: (lambda v=v: v) for k, v in photos.items()}
    models = ModelCache()
    perceive = {"perceiver": "superpixel", "variants_per_base": 2, "turn_count_weights": [0, 1, 0],
                "edit_type_weights": {"attribute": 1, "addition": 0, "removal": 1}, "perturbation": {"p": None},
                "vlms": [vlm_entry], "work_dir": None, "max_area_ratio": 0.9}
    masks, regions = perceive_regions(loaders, pd.DataFrame(columns=["base_id"]), perceive, model_cache=models)
    if spy is not None:  # record every image the (one, shared) adapter is shown from here on
        vlm = models.get(ModelCache.key("vlm", "qwen2.5-vl", vlm_entry["kwargs"]), lambda: None)  # perceive's
        ask = vlm.ask
        vlm.ask = lambda image, question, **kw: (spy.append(image.copy()), ask(image, question, **kw))[1]
    inpaint = {"generators": ["telea", "navier_stokes"], "work_dir": None, "seed": 0,
               "prompt_vlms": [vlm_entry] if prompt_vlms else []}
    out = run_stage("inpaint", {"base_images": loaders, "base_manifest": manifest, "region_masks": masks,
                                "regions": regions, "model_cache": models}, inpaint)
    return photos, masks, regions, out["provenance"]


def test_turn_2_prompt_is_written_from_turn_1_output(vlm_entry):
    shown: list[np.ndarray] = []
    photos, masks, regions, provenance = _run(vlm_entry, prompt_vlms=True, spy=shown)
    assert (regions.groupby("sample_id")["turn"].max() >= 2).all()
    telea = {name: create_generator(name) for name in ("telea", "navier_stokes")}
    rows = regions.set_index("region_id")
    checked = 0
    for sample_id, turns in provenance.sort_values("turn").groupby("sample_id"):
        first, second = turns.iloc[0], turns.iloc[1]
        # turn 1: perceive's prompt, written from the base image
        assert first["prompt"] == rows.at[first["region_id"], "prompt"]
        assert first["prompt_image"] == "base image" and first["prompt_source"].startswith("vlm:qwen")
        # turn 2: the VLM was shown the image after turn 1 (with turn 2's region marked on it)
        assert second["prompt_image"] == "turn 1 output" and second["prompt_source"].startswith("vlm:qwen")
        base = photos[rows.at[first["region_id"], "base_id"]]
        mask_1, mask_2 = masks[first["region_id"]]() > 127, masks[second["region_id"]]() > 127
        after_1, _, _ = apply_edits(base, [EditSpec(first["generator"], mask_1, first["prompt"], first["edit_type"],
                                                     seed=int(first["seed"]), region_id=first["region_id"])],
                                    telea, {"telea": 1, "navier_stokes": 2})
        row = rows.loc[second["region_id"]]
        region = Region(mask=mask_2, label=row["label"], kind=row["kind"], score=float(row["score"]), source="t")
        expected, stale = mark_region(after_1, region), mark_region(base, region)
        assert not np.array_equal(expected, stale)  # turn 1 changed what turn 2's writer sees
        assert any(np.array_equal(image, expected) for image in shown), sample_id
        assert not any(np.array_equal(image, stale) for image in shown), sample_id
        checked += 1
    assert checked == provenance["sample_id"].nunique() == 4


def test_per_turn_prompts_are_deterministic_and_off_by_default(vlm_entry):
    _, _, regions, once = _run(vlm_entry, prompt_vlms=True)
    _, _, _, again = _run(vlm_entry, prompt_vlms=True)
    pd.testing.assert_frame_equal(once, again)
    _, _, _, off = _run(vlm_entry, prompt_vlms=False)
    # without inpaint.prompt_vlms every prompt is perceive's, written from the base image
    assert (off["prompt"].to_numpy() == regions.sort_values(["sample_id", "turn"])["prompt"].to_numpy()).all()
    assert set(off["prompt_image"]) == {"base image"}
