"""Node tests on tiny in-memory inputs: each stage's function, with no catalog and no files
other than the ones a test writes itself."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data

from models.perception import mask_iou
from pipelines.ingest.nodes import crop_boxes, decode_rle, ingest_photos
from pipelines.ingest.sources import SourceError
from pipelines.contract.labels import generator_names
from pipelines.inpaint.nodes import draw_generators
from pipelines.contract.ids import REAL_ONLY_KIND, pool_of, sample_rng
from pipelines.split.nodes import assign_groups, split_samples
from tests.stages import filter_samples, inpaint_samples, perceive_regions


def lazy(arrays):
    return {k: (lambda v=v: v) for k, v in arrays.items()}


def photo(name: str, size: int = 64) -> np.ndarray:
    image = getattr(skimage.data, name)()
    return cv2.resize(image[..., :3], (size, size), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- ingest
def test_crop_boxes_first_is_centre_square_and_all_inside():
    rng = np.random.default_rng(0)
    boxes = crop_boxes(300, 451, 5, rng)
    assert boxes[0] == (0, (451 - 300) // 2, 300)
    for top, left, side in boxes:
        assert 0 <= top and top + side <= 300 and 0 <= left and left + side <= 451


def test_ingest_sample_photos_makes_square_bases_with_unique_hashes():
    images, manifest, annotations = ingest_photos(
        {"source": "sample", "image_size": 48, "crops_per_photo": 2, "sample": {"names": ["chelsea", "motorcycle"]}})
    assert len(images) == len(manifest) == 6  # chelsea x2 crops, motorcycle 2 views x2 crops
    assert manifest["sha256"].is_unique
    assert set(manifest["group_id"]) == {"chelsea", "motorcycle"}  # both stereo views share one group
    for base_id in manifest["base_id"]:
        array = images[base_id]()
        assert array.shape == (48, 48, 3) and array.dtype == np.uint8
    assert annotations.empty


def test_ingest_unknown_source_and_unknown_photo_are_clear_errors():
    with pytest.raises(SourceError, match="sample, coco, folder"):
        ingest_photos({"source": "flickr", "image_size": 64})
    with pytest.raises(SourceError, match="unknown sample photo"):
        ingest_photos({"source": "sample", "image_size": 64, "sample": {"names": ["camera"]}})


def _write_coco(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "1.png"), cv2.cvtColor(photo("astronaut", 80)[:60], cv2.COLOR_RGB2BGR))
    (folder / "2.jpg").write_text("not a jpeg")  # unreadable: skipped, not fatal
    coco = {
        "images": [{"id": 1, "file_name": "1.png", "height": 60, "width": 80},
                   {"id": 2, "file_name": "2.jpg", "height": 60, "width": 80}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 106, "name": "sky-other", "supercategory": "sky"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 400,
             "segmentation": [[30, 10, 50, 10, 50, 40, 30, 40]], "bbox": [30, 10, 20, 30]},
            {"id": 11, "image_id": 1, "category_id": 106, "iscrowd": 0, "area": 300,
             "segmentation": [[0, 0, 80, 0, 80, 8, 0, 8]], "bbox": [0, 0, 80, 8]},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    return path, folder


def test_ingest_coco_keeps_things_and_stuff_masks_cropped_like_the_image(tmp_path):
    ann_path, folder = _write_coco(tmp_path)
    images, manifest, annotations = ingest_photos(
        {"source": "coco", "image_size": 32, "coco": {"annotations": str(ann_path), "images": str(folder)}})
    assert list(manifest["base_id"]) == ["coco-1"]  # the broken image was skipped
    assert set(annotations["category"]) == {"person", "sky-other"}
    assert dict(zip(annotations["category"], annotations["isthing"])) == {"person": True, "sky-other": False}
    person = decode_rle(annotations.loc[annotations["category"] == "person", "rle"].iloc[0])
    assert person.shape == (32, 32) and person.any()
    # The person polygon spans x 30..50 of the 80x60 photo -> the centre crop keeps x 10..70, so
    # x 20..40 of 60, and resizing to 32 puts it at columns 10.7..21.3.
    cols = np.where(person.any(axis=0))[0]
    assert 10 <= cols.min() <= 12 and 20 <= cols.max() <= 22


def test_ingest_real_pools_follow_the_bases_disjoint_and_unedited(tmp_path):
    """DiffSeg30k sec. 4: further real photos of the same COCO source (5k for segmentation
    training, 30k classifier negatives) after the edited bases, by image id, one photo in one place."""
    folder = tmp_path / "images"
    folder.mkdir()
    names = ["astronaut", "coffee", "chelsea", "rocket", "camera", "moon"]
    images_json = []
    for image_id, name in enumerate(names, start=1):
        cv2.imwrite(str(folder / f"{image_id}.png"), cv2.cvtColor(photo(name, 48), cv2.COLOR_RGB2BGR))
        images_json.append({"id": image_id, "file_name": f"{image_id}.png", "height": 48, "width": 48})
    person = {"id": 1, "image_id": 0, "category_id": 1, "iscrowd": 0, "area": 100,
              "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]], "bbox": [10, 10, 20, 20]}
    coco = {"images": images_json, "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
            "annotations": [{**person, "id": k, "image_id": k} for k in range(1, 7)]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    params = {"source": "coco", "image_size": 32,
              "coco": {"annotations": str(tmp_path / "instances.json"), "images": str(folder), "max_images": 2},
              "real_pools": {"authentic": 1, "negatives": 2}}
    images, manifest, annotations = ingest_photos(params)
    assert list(manifest["base_id"]) == ["coco-1", "coco-2", "coco-3=real-only-authentic", "coco-4=real-only-negatives",
                                         "coco-5=real-only-negatives"]  # photo 6: beyond every quota
    assert list(manifest["kind"]) == ["real", "real", REAL_ONLY_KIND, REAL_ONLY_KIND, REAL_ONLY_KIND]
    assert [pool_of(b) for b in manifest["base_id"]] == [None, None, "authentic", "negatives", "negatives"]
    assert set(manifest["group_id"]) == {f"coco-{k}" for k in range(1, 6)}  # disjoint by image id
    assert set(annotations["base_id"]) == {"coco-1", "coco-2"}  # pool photos carry no regions to edit
    assert images["coco-4=real-only-negatives"]().shape == (32, 32, 3)
    without = ingest_photos({**params, "real_pools": {}})[1]
    assert list(without["base_id"]) == ["coco-1", "coco-2"]  # the bases do not change with the pools
    with pytest.raises(ValueError, match="max_images"):
        ingest_photos({**params, "coco": {**params["coco"], "max_images": None}})


def test_ingest_coco_malformed_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SourceError, match="bad.json"):
        ingest_photos({"source": "coco", "image_size": 32, "coco": {"annotations": str(bad), "images": str(tmp_path)}})


def test_ingest_folder_uses_class_folders_as_categories(tmp_path):
    for cls in ("beach", "forest"):
        (tmp_path / cls).mkdir()
        cv2.imwrite(str(tmp_path / cls / "a.png"), photo("coffee" if cls == "beach" else "rocket", 40))
    (tmp_path / "forest" / "broken.jpg").write_bytes(b"")
    _, manifest, _ = ingest_photos({"source": "folder", "image_size": 32, "folder": {"root": str(tmp_path)}})
    assert sorted(manifest["category"]) == ["beach", "forest"]


# --------------------------------------------------------------------------- perceive
def test_perceive_chooses_one_to_three_distinct_regions_per_sample():
    bases = {"a": photo("astronaut"), "b": photo("coffee")}
    params = {"seed": 0, "perceiver": "auto", "fallback_perceiver": "superpixel", "variants_per_base": 3,
              "iou_threshold": 0.7, "turn_count_weights": [1, 4, 5], "min_area_ratio": 0.01,
              "max_area_ratio": 0.7, "edit_type_weights": {"attribute": 1, "addition": 1, "removal": 1}}
    masks, regions = perceive_regions(lazy(bases), pd.DataFrame(columns=["base_id"]), params)
    assert set(regions["base_id"]) == {"a", "b"}
    for _, group in regions.groupby("sample_id"):
        assert 1 <= len(group) <= 3
        assert list(group["turn"]) == list(range(1, len(group) + 1))
        # an addition is two turns (removal, then addition) on one region: one edit_group
        arrays = [masks[r]() > 127 for r in group.drop_duplicates("edit_group")["region_id"]]
        for i in range(len(arrays)):
            assert 0.01 <= arrays[i].mean() <= 0.7
            for j in range(i):
                assert mask_iou(arrays[i], arrays[j]) <= 0.7
    assert set(regions["edit_type"]) <= {"attribute", "addition", "removal"}
    assert regions["prompt"].str.len().min() > 0
    # same inputs, same result
    _, again = perceive_regions(lazy(bases), pd.DataFrame(columns=["base_id"]), params)
    pd.testing.assert_frame_equal(regions, again)


def test_sample_rng_depends_only_on_seed_and_key():
    assert sample_rng(0, "x").integers(1 << 30) == sample_rng(0, "x").integers(1 << 30)
    assert sample_rng(0, "x").integers(1 << 30) != sample_rng(0, "y").integers(1 << 30)


# --------------------------------------------------------------------------- inpaint
def _one_sample_inputs():
    base = photo("chelsea")
    m1 = np.zeros((64, 64), np.uint8)
    m1[8:40, 8:40] = 255
    m2 = np.zeros((64, 64), np.uint8)
    m2[24:56, 24:56] = 255
    regions = pd.DataFrame([
        {"region_id": "s-t1", "sample_id": "s", "base_id": "b", "turn": 1, "kind": "thing",
         "edit_type": "removal", "prompt": "remove it"},
        {"region_id": "s-t2", "sample_id": "s", "base_id": "b", "turn": 2, "kind": "stuff",
         "edit_type": "attribute", "prompt": "make it red"},
    ])
    manifest = pd.DataFrame([{"base_id": "b", "group_id": "g", "kind": "real"}])
    return base, {"s-t1": m1, "s-t2": m2}, regions, manifest


def test_inpaint_two_turns_label_map_and_untouched_pixels():
    base, masks, regions, manifest = _one_sample_inputs()
    params = {"seed": 0, "generators": [{"name": "telea"}, {"name": "navier_stokes"}],
              "distinct_generators_per_sample": True}
    edited, labels, samples, provenance = inpaint_samples(lazy({"b": base}), manifest, lazy(masks), regions, params)
    image, label_map = edited["s"](), labels["s"]()
    union = (masks["s-t1"] > 0) | (masks["s-t2"] > 0)
    assert np.array_equal(image[~union], base[~union])
    assert set(np.unique(label_map)) <= {0, 1, 2}
    assert (label_map[~union] == 0).all()
    order = samples.at[0, "generators"]
    assert sorted(order) == ["navier_stokes", "telea"]  # distinct generators per turn
    index = {"telea": 1, "navier_stokes": 2}
    assert (label_map[(masks["s-t2"] > 0)] == index[order[1]]).all()  # the later turn wins the overlap
    only_first = (masks["s-t1"] > 0) & ~(masks["s-t2"] > 0)
    assert (label_map[only_first] == index[order[0]]).all()
    assert list(provenance["turn"]) == [1, 2] and list(provenance["generator"]) == order


def test_generator_list_rules():
    assert generator_names([{"name": "a"}, {"name": "b"}]) == ["a", "b"]
    with pytest.raises(ValueError, match="unique"):
        generator_names([{"name": "a"}, {"name": "a"}])
    picks = draw_generators(np.random.default_rng(0), ["a", "b", "c"], 3, distinct=True)
    assert sorted(picks) == ["a", "b", "c"]


# --------------------------------------------------------------------------- filter
def test_filter_drops_by_brisque_and_keeps_the_reason():
    clean = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 80, clean.shape), 0, 255).astype(np.uint8)
    samples = pd.DataFrame({"sample_id": ["clean", "noisy"], "last_generator": ["telea", "telea"]})
    table, _ = filter_samples(lazy({"clean": clean, "noisy": noisy}), samples, {"checks": [{"scorer": "brisque", "max": 60}]})
    scores = dict(zip(table["sample_id"], table["quality_brisque"]))
    assert scores["clean"] < scores["noisy"]
    assert len(table) == 2  # dropped rows stay, with the reason
    row = table.set_index("sample_id").loc["noisy"]
    assert not row["kept"] and row["drop_reason"].startswith("brisque") and "> 60" in row["drop_reason"]
    assert table.set_index("sample_id").loc["clean", "kept"]


def test_filter_rejects_a_rule_without_threshold():
    with pytest.raises(ValueError, match="max"):
        filter_samples({}, pd.DataFrame({"sample_id": []}), {"checks": [{"scorer": "brisque"}]})


# --------------------------------------------------------------------------- split
@pytest.mark.parametrize("ratios,names", [([0.8, 0.2], ["train", "val"]), ([0.8, 0.1, 0.1], ["train", "val", "test"])])
def test_assign_groups_follows_ratios(ratios, names):
    groups = [f"g{i}" for i in range(100)]
    assignment = assign_groups(groups, names, ratios, seed=1)
    counts = pd.Series(assignment).value_counts()
    for name, ratio in zip(names, ratios):
        assert counts[name] == round(100 * ratio)
    assert assignment == assign_groups(list(reversed(groups)), names, ratios, seed=1)  # order-independent


def test_assign_groups_gives_each_split_a_group_when_possible():
    assignment = assign_groups(["a", "b", "c"], ["train", "val", "test"], [0.8, 0.1, 0.1], seed=0)
    assert sorted(assignment.values()) == ["test", "train", "val"]


def test_split_ratios_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        assign_groups(["a"], ["train", "val"], [0.8, 0.3], seed=0)


def test_split_keeps_groups_together_and_adds_authentic_negatives():
    manifest = pd.DataFrame({"base_id": [f"b{i}" for i in range(10)], "group_id": [f"g{i // 2}" for i in range(10)],
                             "kind": ["real"] * 10})
    samples = pd.DataFrame({"sample_id": [f"b{i}-v{v}" for i in range(10) for v in range(2)],
                            "base_id": [f"b{i}" for i in range(10) for _ in range(2)],
                            "group_id": [f"g{i // 2}" for i in range(10) for _ in range(2)],
                            "last_generator": "telea", "kept": [True, False] * 10})
    table = split_samples(samples, manifest, {"names": ["train", "val"], "ratios": [0.8, 0.2], "seed": 0})
    assert (table.groupby("group_id")["split"].nunique() == 1).all()
    assert (table["kind"] == "edited").sum() == 10  # only kept samples
    assert (table["kind"] == "authentic").sum() == 10
    assert set(table["split"]) == {"train", "val"}


def test_filter_records_an_unscorable_image_instead_of_crashing():
    flat = np.full((64, 64, 3), 128, np.uint8)
    samples = pd.DataFrame({"sample_id": ["flat"], "last_generator": ["telea"]})
    table, _ = filter_samples(lazy({"flat": flat}), samples, {"checks": [{"scorer": "brisque", "max": 60}]})
    assert not table.at[0, "kept"] and "unscorable" in table.at[0, "drop_reason"]


# --------------------------------------------------------------------------- filter: scorers with context, report
def _filter_inputs():
    base = cv2.resize(skimage.data.astronaut(), (128, 128), interpolation=cv2.INTER_AREA)
    small, large = base.copy(), base.copy()
    small[10:20, 10:20] = 0
    large[10:110, 10:110] = 0
    samples = pd.DataFrame({"sample_id": ["small", "large", "imported"], "base_id": ["b", "b", "x"],
                            "generators": [["telea"], ["telea", "tiny-sd"], ["sd2"]],
                            "last_generator": ["telea", "tiny-sd", "sd2"],
                            "edit_types": [["attribute"], ["removal", "addition"], []],
                            "origin": ["generated", "generated", "imdl"]})
    provenance = pd.DataFrame({"sample_id": ["small", "large", "large"], "turn": [1, 1, 2],
                               "prompt": ["make it red", "remove it", "add a cat"]})
    return lazy({"small": small, "large": large, "imported": base}), samples, provenance, lazy({"b": base})


def test_filter_passes_prompts_and_base_images_to_the_scorers_that_need_them():

    images, samples, provenance, bases = _filter_inputs()
    seen_prompts = []

    def vlm(image, prompt):
        seen_prompts.append(prompt)
        return "I cannot judge this." if image[50, 50].sum() == 0 else "4(score), the reason is that it looks natural."

    params = {"checks": [{"scorer": "perceptual", "max": 100.0, "name": "change"},
                         {"scorer": "vlm", "min": 3, "kwargs": {"model": vlm}}]}
    table, report = filter_samples(images, samples, params, bases, provenance)
    rows = table.set_index("sample_id")
    assert 0 < rows.at["small", "quality_change"] < rows.at["large", "quality_change"]
    assert rows.at["small", "kept"] and rows.at["small", "quality_vlm"] == 4.0
    # an unparseable VLM answer is recorded as unscorable, never a crash
    assert not rows.at["large", "kept"] and "vlm unscorable: VLM answer not parseable" in rows.at["large", "drop_reason"]
    # imported samples were filtered by their publisher: kept, not scored
    assert rows.at["imported", "kept"] and np.isnan(rows.at["imported", "quality_change"])
    assert report["n_samples"] == 3 and report["n_dropped"] == 1 and report["removal_rate"] == pytest.approx(1 / 3)
    assert report["per_generator"] == {"sd2": {"kept": 1, "dropped": 0}, "telea": {"kept": 1, "dropped": 1},
                                       "tiny-sd": {"kept": 0, "dropped": 1}}
    assert report["per_edit_type"]["removal"] == {"kept": 0, "dropped": 1}
    assert report["per_reason"] == {"vlm unscorable": 1}
    assert report["imported_unscored"] == 1
    assert {c["name"]: c["valid_range"] for c in report["checks"]} == {"change": [0.0, None], "vlm": [0.0, 5.0]}
    assert len(seen_prompts) == 2 and "X(score)" in seen_prompts[0]


def test_filter_report_counts_threshold_reasons():
    from pipelines.filter.nodes import summarise_filter

    table = pd.DataFrame({"sample_id": ["a", "b", "c"], "kept": [False, False, True],
                          "drop_reason": ["brisque 63.1 > 60", "brisque 70.2 > 60; clip 9.0 < 15", ""],
                          "generators": [["telea"], ["telea"], ["navier_stokes"]], "last_generator": ["telea"] * 3,
                          "edit_types": [["attribute"], ["removal", "addition"], ["attribute"]]})
    report = summarise_filter(table, [])
    assert report["per_reason"] == {"brisque > 60": 2, "clip < 15": 1}
    assert report["per_edit_type"] == {"addition": {"kept": 0, "dropped": 1}, "attribute": {"kept": 1, "dropped": 1},
                                       "removal": {"kept": 0, "dropped": 1}}


def test_ingest_sends_published_formats_to_the_import_pipeline():
    with pytest.raises(SourceError, match="--pipeline published"):
        ingest_photos({"source": "brgen", "image_size": 64})
