"""The stage features the BR-Gen recipe adds, each on small in-memory data: region kinds and
per-kind area caps in perceive, SAM 2 masks, every mask by every inpainter and the regeneration
loop in inpaint, CLIP for prompt-based outputs only and the shortfall report in filter, the
transfer split protocols (Table 4), the brgen evaluate protocol, and a list of ingest sources."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data

from models.metrics import brgen_table_row
from models.perception import Region
from models.quality.checks import QualityGate, applies, threshold_failures
from models.tiny_brgen import script_tiny_inpainter
from pipelines.contract.params import BrgenTables
from pipelines.contract.schemas import table
from pipelines.evaluate.brgen import brgen_tables
from pipelines.filter.nodes import assemble_filter, run_scoring
from pipelines.ingest.nodes import ingest_photos
from pipelines.inpaint.nodes import assemble_samples, plan_edits, run_edits
from pipelines.perceive.nodes import eligible_regions
from pipelines.split.nodes import make_splits

SIZE = 48


def _region(kind: str, area: float, label: str = "x") -> Region:
    mask = np.zeros((10, 10), dtype=bool)
    mask.flat[: int(round(area * 100))] = True
    return Region(mask=mask, label=label, kind=kind, score=1.0, source="test")


# ---- perceive -----------------------------------------------------------------------------------

def test_only_the_recipe_kinds_are_eligible_and_background_escapes_the_area_cap():
    candidates = [_region("thing", 0.2), _region("stuff", 0.3), _region("stuff", 0.7), _region("background", 0.9)]
    kept, cap = eligible_regions(candidates, ["stuff", "background"], 0.6, {"background": 1.0})
    assert [(r.kind, r.area_ratio) for r in kept] == [("stuff", 0.3), ("background", 0.9)]
    assert cap == 1.0  # select_regions then lets the background mask through
    # neutral defaults: the candidates and the cap pass unchanged (the default run)
    assert eligible_regions(candidates, None, 0.6, {}) == (candidates, 0.6)


def test_sam2_segmenter_gives_one_full_size_mask_per_box(tmp_path):
    from models.perception import create_perceiver
    from models.perception.grounded import Sam2Segmenter
    from models.perception.tiny import tiny_checkpoint

    folder = tiny_checkpoint("sam2", tmp_path)
    image = cv2.resize(skimage.data.astronaut(), (80, 60))
    masks = Sam2Segmenter(model=str(folder)).segment(image, [[5, 5, 40, 40], [0, 0, 80, 60]])
    assert len(masks) == 2
    assert all(mask.shape == (60, 80) and mask.dtype == bool and np.isfinite(score) for mask, score in masks)
    with pytest.raises(ValueError, match=r"\['sam', 'sam2'\], got 'sam3'"):
        create_perceiver("grounded_sam", segmenter={"architecture": "sam3"})
    with pytest.raises(ValueError, match="expected 'sam'"):  # a SAM 2 folder is not a SAM checkpoint
        create_perceiver("grounded_sam", segmenter={"model": str(folder)}).segmenter.load()


# ---- inpaint ------------------------------------------------------------------------------------

def _regions_table() -> pd.DataFrame:
    rows = []
    for base in ("b1", "b2"):
        for variant, kind in enumerate(("stuff", "background")):
            sid = f"{base}-v{variant}"
            rows.append({"region_id": f"{sid}-t1", "sample_id": sid, "base_id": base, "turn": 1, "label": "sky",
                         "kind": kind, "score": 1.0, "area_ratio": 0.25, "area_bucket": "0.20-0.40",
                         "edit_group": f"{sid}-g1", "edit_type": "attribute", "description": "the sky",
                         "perturbed": False, "prompt": "the starry sky", "perceiver": "test",
                         "label_source": "test", "prompt_source": "template"})
    return table("regions", rows)


@pytest.fixture()
def inpaint_inputs(tmp_path):
    lama = script_tiny_inpainter(tmp_path / "lama.pt", with_noise=False)
    mat = script_tiny_inpainter(tmp_path / "mat.pt", with_noise=True)
    generators = [{"name": "lama", "kwargs": {"model": str(lama)}},
                  {"name": "mat", "kwargs": {"model": str(mat), "resolution": 32}},
                  {"name": "telea"}]
    bases = {b: cv2.resize(image, (SIZE, SIZE)) for b, image in
             (("b1", skimage.data.astronaut()), ("b2", skimage.data.coffee()))}
    manifest = pd.DataFrame({"base_id": ["b1", "b2"], "group_id": ["b1", "b2"], "kind": ["real", "real"]})
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[8:30, 10:40] = 255
    regions = _regions_table()
    masks = {rid: (lambda m=mask: m) for rid in regions["region_id"]}
    return generators, {b: (lambda i=i: i) for b, i in bases.items()}, manifest, regions, masks


def test_every_mask_is_inpainted_by_every_generator_once(inpaint_inputs):
    generators, bases, manifest, regions, masks = inpaint_inputs
    params = {"generators": generators, "every_generator": True, "work_dir": None, "seed": 3}
    plan = plan_edits(regions, params)
    assert len(plan) == 4 * 3
    assert {(p["sample_id"], p["generators"][0]) for p in plan} == {
        (f"{sid}-{g}", g) for sid in regions["sample_id"] for g in ("lama", "mat", "telea")}
    assert all(p["turns"][0]["sample_id"] == p["sample_id"].rsplit("-", 1)[0] for p in plan)
    images, label_maps, samples, provenance = assemble_samples(run_edits(plan, bases, manifest, masks, params), {})
    assert len(samples) == 12 and (samples.groupby("base_id")["group_id"].nunique() == 1).all()
    assert sorted(provenance.groupby("region_id")["generator"].agg(sorted).iloc[0]) == ["lama", "mat", "telea"]
    # the default draws one generator per turn: one sample per mask
    assert len(plan_edits(regions, {**params, "every_generator": False})) == 4


def test_a_failing_sample_is_regenerated_with_new_seeds_up_to_max_attempts(inpaint_inputs):
    generators, bases, manifest, regions, masks = inpaint_inputs
    impossible = {"scorer": "sharpness", "min": 1e12}  # no image is this sharp
    params = {"generators": generators, "every_generator": True, "work_dir": None, "seed": 3,
              "regenerate": {"max_attempts": 3, "checks": [impossible]}}
    plan = plan_edits(regions.iloc[:1], params)
    _, _, _, provenance = assemble_samples(run_edits(plan, bases, manifest, masks, params), {})
    details = {g: json.loads(d) for g, d in zip(provenance["generator"], provenance["details"])}
    assert details["mat"]["attempts"] == 3 and not details["mat"]["passed"]
    assert len(details["mat"]["failed_attempts"]) == 2 and "sharpness" in details["mat"]["failed_attempts"][0][0]
    planned = {p["generators"][0]: p["seeds"][0] for p in plan}
    assert int(provenance.set_index("generator").at["mat", "seed"]) != planned["mat"]  # a new seed was used
    # LaMa / OpenCV ignore the seed: a retry would repeat the same picture, so none is made
    assert details["lama"]["attempts"] == 1 and details["telea"]["attempts"] == 1
    passable = {**params, "regenerate": {"max_attempts": 3, "checks": [{"scorer": "sharpness", "min": 0}]}}
    _, _, _, provenance = assemble_samples(run_edits(plan, bases, manifest, masks, passable), {})
    assert all(json.loads(d)["attempts"] == 1 and json.loads(d)["passed"] for d in provenance["details"])


# ---- filter -------------------------------------------------------------------------------------

def test_a_check_limited_to_prompt_based_generators_skips_the_others():
    rule = {"scorer": "clip", "min": 20, "generators": ["sdxl", "brushnet"]}
    assert applies(rule, ["sdxl"]) and not applies(rule, ["lama"]) and not applies(rule, [])
    assert applies({"scorer": "brisque", "max": 60}, ["lama"])
    assert threshold_failures("brisque", 63.14, None, 60) == ["brisque 63.1 > 60"]
    assert threshold_failures("brisque", float("nan"), None, 60) == []
    with pytest.raises(ValueError, match="list of names"):
        QualityGate([{"scorer": "sharpness", "min": 0, "generators": "sdxl"}])


def test_filter_scores_only_listed_generators_and_reports_the_shortfall():
    image = skimage.data.astronaut()[:64, :64]
    samples = table("samples", [
        {"sample_id": f"s{i}-{g}", "base_id": f"b{i}", "group_id": f"b{i}", "base_kind": "real", "n_turns": 1,
         "generators": [g], "last_generator": g, "edited_area_ratio": 0.2, "edit_types": ["attribute"],
         "region_kinds": ["stuff"]} for i in range(3) for g in ("lama", "sdxl")])
    provenance = table("provenance", [
        {"sample_id": sid, "turn": 1, "generator": sid.split("-")[1], "label": 1, "region_id": f"{sid}-t1",
         "kind": "stuff", "edit_type": "attribute", "prompt": "sky", "seed": 0, "mask_area_ratio": 0.2,
         "changed_pixel_ratio": 1.0, "registry": "", "model": "", "candidate_seeds": [0], "candidate_scores": [],
         "details": json.dumps({"attempts": 2 if sid == "s0-sdxl" else 1})} for sid in samples["sample_id"]])
    params = {"checks": [{"scorer": "sharpness", "min": 1e12, "generators": ["sdxl"]}], "work_dir": None,
              "target_per_generator": 3}
    scored, scores, checks = run_scoring({sid: (lambda: image) for sid in samples["sample_id"]}, samples, provenance,
                                         None, params, _cache())
    filtered, report = assemble_filter(scored, scores, checks, provenance, params)
    kept = dict(zip(filtered["sample_id"], filtered["kept"]))
    assert all(kept[f"s{i}-lama"] for i in range(3)) and not any(kept[f"s{i}-sdxl"] for i in range(3))
    assert filtered.loc[filtered["last_generator"] == "lama", "quality_sharpness"].isna().all()
    regen = report["regeneration"]["per_generator"]
    assert regen["lama"] == {"samples": 3, "kept": 3, "regenerated": 0, "mean_attempts": 1.0, "target": 3, "shortfall": 0}
    assert regen["sdxl"]["shortfall"] == 3 and regen["sdxl"]["regenerated"] == 1
    assert regen["sdxl"]["mean_attempts"] == pytest.approx(4 / 3)
    # no target and nothing regenerated (the default run): the report has no such section
    plain = provenance.assign(details="{}")
    assert "regeneration" not in assemble_filter(scored, scores, checks, plain, {**params, "target_per_generator": None})[1]


def _cache():
    from models.cache import ModelCache

    return ModelCache()


# ---- split --------------------------------------------------------------------------------------

FAMILIES = {"lama": "gan", "mat": "gan", "sdxl": "diffusion", "brushnet": "diffusion"}


def _filtered(n_bases: int = 20) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [{"sample_id": f"b{i}-v{v}-{g}", "base_id": f"b{i}", "group_id": f"b{i}", "base_kind": "real", "n_turns": 1,
             "generators": [g], "last_generator": g, "edited_area_ratio": 0.3, "edit_types": ["attribute"],
             "region_kinds": [kind], "drop_reason": "", "kept": True}
            for i in range(n_bases) for v, kind in enumerate(("stuff", "background")) for g in FAMILIES]
    manifest = pd.DataFrame({"base_id": [f"b{i}" for i in range(n_bases)], "group_id": [f"b{i}" for i in range(n_bases)],
                             "kind": "real"})
    return pd.DataFrame(rows), manifest


def test_transfer_protocols_train_on_one_type_and_test_on_the_other_over_the_in_domain_cut():
    samples, manifest = _filtered()
    params = {"names": ["train", "val", "test"], "ratios": [0.8, 0.1, 0.1], "use": "brgen", "seed": 0,
              "generators": list(FAMILIES),
              "protocols": {"brgen": {"kind": "random"}, "leave-out": None,
                            "gan-to-diffusion": {"kind": "transfer", "by": "generator_family", "source": "gan",
                                                 "target": "diffusion", "families": FAMILIES},
                            "stuff-to-background": {"kind": "transfer", "by": "region_kind", "source": "stuff",
                                                    "target": "background"}}}
    _, tables, summary = make_splits(samples, manifest, params)
    assert set(tables) == {"brgen", "gan-to-diffusion", "stuff-to-background"}  # a null protocol is dropped
    cut = tables["brgen"].groupby("group_id")["split"].first()
    g2d = tables["gan-to-diffusion"]
    assert (g2d.groupby("group_id")["split"].first() == cut).all()
    edited = g2d[g2d["kind"] == "edited"]
    assert set(edited.loc[edited["split"] == "train", "last_generator"]) == {"lama", "mat"}
    assert set(edited.loc[edited["split"] != "train", "last_generator"]) == {"sdxl", "brushnet"}
    assert set(g2d.loc[g2d["kind"] == "authentic", "split"]) == {"train", "val", "test"}
    s2b = tables["stuff-to-background"].merge(samples[["sample_id", "region_kinds"]], left_on="item_id",
                                              right_on="sample_id")
    assert {k[0] for k in s2b.loc[s2b["split"] == "train", "region_kinds"]} == {"stuff"}
    assert {k[0] for k in s2b.loc[s2b["split"] == "test", "region_kinds"]} == {"background"}
    row = summary.set_index("protocol").loc["gan-to-diffusion"]
    assert list(row["held_out"]) == ["sdxl", "brushnet"] and row["kind"] == "transfer"
    with pytest.raises(ValueError, match="needs by, source and target"):
        make_splits(samples, manifest, {**params, "protocols": {"brgen": {"kind": "random"}, "x": {"kind": "transfer"}}})


# ---- evaluate -----------------------------------------------------------------------------------

class _Predictions:
    def __init__(self, score, fake, iou):
        self.values = {"score": np.asarray(score, float), "is_fake": np.asarray(fake), "iou": np.asarray(iou, float)}

    def per_image(self):
        return self.values


def _items(generators, kinds, areas):
    kind = ["edited" if g else "authentic" for g in generators]
    return pd.DataFrame({"item_id": [f"i{k}" for k in range(len(generators))], "kind": kind,
                         "last_generator": generators, "region_kinds": [[k] if k else [] for k in kinds],
                         "edited_area_ratio": areas})


def test_brgen_protocol_fills_tables_3_and_7_and_table_4_only_for_its_training_run():
    generators = ["", "", "lama", "mat", "sdxl", "brushnet", "sdxl", "lama"]
    kinds = ["", "", "stuff", "background", "stuff", "background", "background", "stuff"]
    areas = [0, 0, 0.1, 0.9, 0.3, 0.7, 0.5, 0.15]
    score = [0.2, 0.7, 0.9, 0.4, 0.8, 0.6, 0.3, 0.95]
    fake = [0, 0, 1, 1, 1, 1, 1, 1]
    iou = [0, 0, 0.5, 0.2, 0.8, 0.1, 0.0, 0.9]
    cfg = BrgenTables(families=FAMILIES, cross_type={"gan-to-diffusion": {"by": "generator_family", "source": "gan",
                                                                          "target": "diffusion"}})
    items = _items(generators, kinds, areas)
    out = brgen_tables(_Predictions(score, fake, iou), items, cfg, 0.5, {"dataset": {"protocol": "brgen"}})
    family = np.array([FAMILIES.get(g) for g in generators], dtype=object)
    expected = brgen_table_row(score, fake, iou, family, np.array([k or None for k in kinds], dtype=object))
    assert out["table"] == pytest.approx(expected)
    assert out["table"]["r50_gan"] == pytest.approx(2 / 3) and out["table"]["r50_real"] == 0.5
    assert out["area_r50"]["<20%"] == 1.0 and out["area_r50"]["<100%"] == pytest.approx(4 / 6)
    assert "train.dataset.protocol=gan-to-diffusion" in out["cross_type"]["gan-to-diffusion"]["skipped"]
    trained = brgen_tables(_Predictions(score, fake, iou), items, cfg, 0.5, {"dataset": {"protocol": "gan-to-diffusion"}})
    entry = trained["cross_type"]["gan-to-diffusion"]
    assert entry["gen_r50"] == pytest.approx(2 / 3) and entry["real_r50"] == 0.5 and entry["n_forged"] == 3
    # an undefined cell says why (rendered as n/a with the reason)
    no_gan = brgen_tables(_Predictions(score[:2] + score[4:7], fake[:2] + fake[4:7], iou[:2] + iou[4:7]),
                          _items(generators[:2] + generators[4:7], kinds[:2] + kinds[4:7], areas[:2] + areas[4:7]),
                          cfg, 0.5, {})
    assert "GAN inpainter" in no_gan["table"]["r50_gan"]["skipped"]
    assert "<20%" in no_gan["area_r50"]["<20%"]["skipped"]


# ---- ingest -------------------------------------------------------------------------------------

def test_a_list_of_photo_sources_is_read_one_after_the_other(tmp_path):
    folder = tmp_path / "places" / "beach"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "x.png"), cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR))
    _, manifest, _ = ingest_photos({"source": ["sample", "folder"], "image_size": 32, "sample": {"names": ["chelsea"]},
                                    "folder": {"root": str(tmp_path)}})
    assert list(manifest["source"]) == ["sample", "folder"]
