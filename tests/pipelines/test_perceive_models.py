"""The perceive stage with models: the conf/gpu set-up (Qwen VLMs drawn per sample, VLM object
names grounded by GroundingDINO + SAM) run on tiny random checkpoints of the same architectures,
dataset-level balancing on synthetic candidates, and addition edits (removal + addition turns on
one region) going through the unchanged inpaint node."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from models.cache import ModelCache
from models.perception import Perceiver, Region, mask_iou
from models.perception.tiny import tiny_checkpoint
from pipelines.perceive import nodes as perceive_nodes
from pipelines.contract.schemas import REGION_COLUMNS
from pipelines.pipeline_registry import register_pipelines
from tests.stages import inpaint_samples, perceive_regions

REPO = Path(__file__).resolve().parents[2]
SIZE = 96


def lazy(arrays):
    return {k: (lambda v=v: v) for k, v in arrays.items()}


def photo(name: str) -> np.ndarray:
    return cv2.resize(getattr(skimage.data, name)(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


NO_ANNOTATIONS = pd.DataFrame(columns=["base_id"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "tiny-perception"
    return {a: str(tiny_checkpoint(a, root)) for a in ("qwen2.5-vl", "qwen2-vl", "llava", "grounding-dino", "sam")}


def gpu_params(tiny: dict[str, str]) -> dict:
    """conf/gpu's perceive parameters (merged over conf/base), with every checkpoint swapped for
    the tiny one of the same architecture and CUDA for the CPU."""
    loader = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="local", env="gpu",
                               merge_strategy={"parameters": "soft", "globals": "soft"})
    params = copy.deepcopy(loader["parameters"]["perceive"])
    grounded = params["perceiver_kwargs"]["grounded_sam"]
    assert grounded["detector"]["model"].startswith("IDEA-Research/grounding-dino")
    assert grounded["segmenter"]["model"].startswith("facebook/sam")
    assert {v["vlm"] for v in params["vlms"]} == {"qwen2.5-vl", "qwen2-vl", "llava"}
    grounded["detector"].update(model=tiny["grounding-dino"], device="cpu", box_threshold=0.0)
    grounded["segmenter"].update(model=tiny["sam"], device="cpu")
    for entry in params["vlms"]:
        assert entry["kwargs"]["model"].startswith(("Qwen/", "llava-hf/"))
        entry["kwargs"].update(model=tiny[entry["vlm"]], device="cpu", dtype="float32", max_new_tokens=12)
        if entry["vlm"].startswith("qwen"):
            entry["kwargs"]["max_pixels"] = 16 * 28 * 28
    return params


def test_gpu_conf_perceive_runs_on_tiny_models(tiny):
    """`kedro run --pipeline perceive --env gpu`, with tiny checkpoints in place of the real ones."""
    params = gpu_params(tiny)
    params["variants_per_base"] = 3
    params["max_area_ratio"] = 1.0  # random SAM masks cover most of the image
    catalog = DataCatalog()
    catalog["base_images"] = MemoryDataset(lazy({n: photo(n) for n in ("astronaut", "coffee")}))
    catalog["base_annotations"] = MemoryDataset(NO_ANNOTATIONS)
    catalog["params:perceive"] = MemoryDataset(params)
    catalog["model_cache"] = MemoryDataset(ModelCache(), copy_mode="assign")
    catalog["region_masks"] = MemoryDataset()
    catalog["regions"] = MemoryDataset()
    SequentialRunner().run(register_pipelines()["perceive"], catalog)
    regions, masks = catalog.load("regions"), catalog.load("region_masks")

    assert list(regions.columns) == REGION_COLUMNS and regions["region_id"].is_unique
    assert set(regions["perceiver"]) == {"grounded_sam"} and len(regions["sample_id"].unique()) == 6
    # Random VLMs answer byte soup: every VLM answer is a recorded parse failure and the run goes on.
    names = [v["name"] for v in params["vlms"]]
    assert set(regions["prompt_source"]) <= {f"vlm:{n}:parse_failed->template" for n in names}
    things = regions[regions["kind"] != "background"]
    assert len(things) and set(regions["kind"]) <= {"thing", "stuff", "background"}
    assert set(things["label_source"]) <= {f"vlm:{n}:parse_failed->vocabulary" for n in names}
    assert (regions["prompt"].str.len() > 0).all()
    for sample_id, turns in regions.groupby("sample_id"):
        assert 1 <= len(turns) <= 3 and list(turns["turn"]) == list(range(1, len(turns) + 1))
        arrays = {r.region_id: masks[r.region_id]() for r in turns.itertuples()}
        assert all(a.shape == (SIZE, SIZE) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 255}
                   for a in arrays.values())
        groups = turns.groupby("edit_group", sort=False)
        for _, group in groups:
            if len(group) == 2:  # an addition: removal first, then the addition, same mask
                assert list(group["edit_type"]) == ["removal", "addition"]
                a, b = (arrays[r] for r in group["region_id"])
                assert np.array_equal(a, b)
            else:
                assert len(group) == 1 and group["edit_type"].iloc[0] != "addition"
        firsts = [arrays[r] > 0 for r in turns.drop_duplicates("edit_group")["region_id"]]
        assert all(mask_iou(firsts[i], firsts[j]) <= 0.7 for i in range(len(firsts)) for j in range(i))


def test_vlms_are_drawn_per_sample_by_weight(tiny):
    entries = gpu_params(tiny)["vlms"]
    vlms = perceive_nodes.build_vlms(entries, ModelCache())  # builds adapters, loads nothing
    draws = [perceive_nodes.draw_vlm(0, f"prompt:s{i}", vlms) for i in range(3000)]
    total = sum(e["weight"] for e in entries)
    for entry in entries:
        assert draws.count(entry["name"]) / len(draws) == pytest.approx(entry["weight"] / total, abs=0.03)
    assert draws[:50] == [perceive_nodes.draw_vlm(0, f"prompt:s{i}", vlms) for i in range(50)]
    assert perceive_nodes.draw_vlm(0, "x", {}) is None
    with pytest.raises(ValueError, match="unique"):
        perceive_nodes.build_vlms([{"name": "a", "vlm": "qwen2-vl"}, {"name": "a", "vlm": "qwen2-vl"}], ModelCache())


class ScriptedQwen:
    """Stands in for a loaded VLM adapter: answers like a real Qwen2.5-VL (used to check what the
    node records when the answers can be read)."""

    def list_objects(self, image, seed=0):
        return ["astronaut", "space-suit"]  # grounded as "space suit"

    def describe(self, image, region, seed=0):
        return "$an astronaut$ in front of a flag" if region.kind == "background" else f"the grey {region.label}"

    def perturb_description(self, image, region, description, seed=0):
        return "an astronaut on the moon" if region.kind == "background" else f"the starry {region.label}"

    def edit_prompt(self, image, region, edit_type, description=None, seed=0):
        return f"{edit_type} prompt for {region.label}"


def test_vlm_answers_are_recorded_as_vlm_prompts(tiny):
    params = gpu_params(tiny)
    # Random SAM masks are large: let any size through so that listed names get chosen.
    params.update(variants_per_base=4, max_area_ratio=1.0, vlms=params["vlms"][:1], perceiver_kwargs={"grounded_sam": {
        **params["perceiver_kwargs"]["grounded_sam"], "vocabulary": ["sky", "grass"]}})
    models = ModelCache()  # the node takes its VLM from the cache: a scripted one under the entry's key
    models.put(perceive_nodes.vlm_key(params["vlms"][0]), ScriptedQwen())
    _, regions = perceive_regions(lazy({"astronaut": photo("astronaut")}), NO_ANNOTATIONS, params, model_cache=models)
    name = params["vlms"][0]["name"]
    assert set(regions["prompt_source"]) == {f"vlm:{name}"}
    assert set(regions["label"]) <= {"astronaut", "space suit", "sky", "grass", "background"}
    listed = regions[regions["label"].isin(["astronaut", "space suit"])]
    assert len(listed) and set(listed["label_source"]) == {f"vlm:{name}"}
    assert set(regions.loc[regions["label"].isin(["sky", "grass"]), "label_source"]) <= {"vocabulary"}
    brgen = regions[regions["kind"].isin(["stuff", "background"]) & (regions["edit_type"] == "attribute")]
    assert (brgen["prompt"] == brgen["description"]).all()
    diffseg = regions.drop(brgen.index)
    expected = [f"{t} prompt for {lab}" for t, lab in zip(diffseg["edit_type"], diffseg["label"])]
    assert list(diffseg["prompt"]) == expected


# --- dataset-level balance through the node ---------------------------------------------------


class SyntheticPerceiver(Perceiver):
    """A person that always ranks first, and four other categories of several sizes."""

    name = "synthetic"

    def propose(self, image, annotations=None):
        rng = np.random.default_rng(int(image[0, 0, 0]))
        regions = []
        for label, side, score in (("person", 18, 6.0), ("dog", 8, 1.0), ("car", 12, 1.0), ("tree", 14, 0.8),
                                   ("cup", 5, 0.5)):
            mask = np.zeros(image.shape[:2], dtype=bool)
            top, left = rng.integers(0, image.shape[0] - side, size=2)
            mask[top:top + side, left:left + side] = True
            regions.append(Region(mask=mask, label=label, kind="thing", score=score, source=self.name))
        return sorted(regions, key=lambda r: -r.score)


def _label_shares(strength: float) -> np.ndarray:
    models = ModelCache()  # the node's perceiver "synthetic" comes from the cache, not the registry
    models.put(ModelCache.key("perceiver", "synthetic", {}), SyntheticPerceiver())
    bases = {f"b{i:03d}": np.full((32, 32, 3), i, dtype=np.uint8) for i in range(120)}
    params = {"seed": 0, "perceiver": "synthetic", "variants_per_base": 1, "iou_threshold": 0.7,
              "turn_count_weights": [1], "min_area_ratio": 0.0, "max_area_ratio": 1.0,
              "edit_type_weights": {"attribute": 1, "removal": 1}, "balance": {"strength": strength}}
    _, regions = perceive_regions(lazy(bases), NO_ANNOTATIONS, params, model_cache=models)
    labels = list(regions["label"])
    return np.array([labels.count(c) for c in ("person", "dog", "car", "tree", "cup")]) / len(labels)


def test_node_balances_categories_across_the_dataset():
    unbalanced, balanced = _label_shares(0.0), _label_shares(1.0)
    assert unbalanced[0] > 0.5 and unbalanced.min() < 0.1
    assert balanced.min() > 0.1 and balanced[0] < 0.4


# --- additions through the inpaint node -------------------------------------------------------


def test_addition_is_two_inpaint_turns_on_one_region():
    params = {"seed": 0, "perceiver": "superpixel", "variants_per_base": 2, "iou_threshold": 0.7,
              "turn_count_weights": [0, 0, 1], "min_area_ratio": 0.02, "max_area_ratio": 0.6,
              "edit_type_weights": {"addition": 1, "removal": 1}}
    bases = {"astronaut": photo("astronaut"), "coffee": photo("coffee")}
    masks, regions = perceive_regions(lazy(bases), NO_ANNOTATIONS, params)
    assert (regions.groupby("sample_id").size() <= 3).all() and "addition" in set(regions["edit_type"])
    manifest = pd.DataFrame([{"base_id": b, "group_id": b, "kind": "real"} for b in bases])
    generators = [{"name": "telea"}, {"name": "navier_stokes"}, {"name": "copy", "generator": "telea"}]
    inpaint = {"seed": 0, "generators": generators, "distinct_generators_per_sample": True}
    _, label_maps, samples, provenance = inpaint_samples(lazy(bases), manifest, masks, regions, inpaint)
    assert len(provenance) == len(regions) and list(provenance["region_id"]) == list(regions["region_id"])
    assert list(provenance["edit_type"]) == list(regions["edit_type"])
    index = {"telea": 1, "navier_stokes": 2, "copy": 3}
    additions = regions[regions["edit_type"] == "addition"]
    for row in additions.itertuples():
        removal = regions[(regions["edit_group"] == row.edit_group) & (regions["edit_type"] == "removal")]
        assert len(removal) == 1 and removal["turn"].iloc[0] == row.turn - 1
        later = regions[(regions["sample_id"] == row.sample_id) & (regions["turn"] > row.turn)]["region_id"]
        covered = masks[row.region_id]() > 0
        for region_id in later:
            covered &= ~(masks[region_id]() > 0)
        added_by = provenance.loc[provenance["region_id"] == row.region_id, "generator"].iloc[0]
        assert (label_maps[row.sample_id]()[covered] == index[added_by]).all()  # the addition wins its mask
