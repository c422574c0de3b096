"""Bad input at ingest and import: each bad item gets an error naming the file and the problem,
the rest of the run goes on, and the quarantined items are listed (``ingest_issues`` and the
``quarantine.md`` report). Every input is made here."""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError
from PIL import Image

from pipelines.datasets import decode_image
from pipelines.ingest.nodes import import_published, ingest_base_images, quarantine_report
from pipelines.ingest.sources import SourceError, annotation_mask, iter_coco_photos

GENERATORS = [{"name": "telea"}, {"name": "navier_stokes"}, {"name": "tiny-sd"}]

# name in photo_zoo -> words the quarantine reason must contain
REFUSED = {
    "zero_byte": "empty (0 bytes)",
    "truncated_jpeg": "truncated",
    "truncated_png": "truncated",
    "text_as_jpeg": "not an image file",
    "bomb": "decompression bomb",
    "tiny": "too small",
}


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_awkward_encodings_are_converted_and_broken_files_refused(photo_zoo):
    for name, (file_name, payload, expected) in photo_zoo.items():
        if expected is None:
            with pytest.raises(DatasetError) as err:
                decode_image(payload, "RGB", name=f"photos/{file_name}")
            assert f"photos/{file_name}:" in str(err.value) and REFUSED[name] in str(err.value), str(err.value)
            continue
        decoded = decode_image(payload, "RGB", name=file_name)
        assert decoded.dtype == np.uint8 and decoded.ndim == 3 and decoded.shape[2] == 3, name
        lossy = file_name.endswith(".jpg")
        assert _mean_abs(decoded, expected) <= (4.0 if lossy else 0.5), name
    # the EXIF-rotated photo comes out upright: portrait, and the unrotated reading is far off
    rotated = decode_image(photo_zoo["exif_rotated"][1], "RGB", name="rotated.jpg")
    assert rotated.shape[:2] == (128, 96)
    raw = decode_image(photo_zoo["exif_rotated"][1], "RGB", name="rotated.jpg", exif_transpose=False)
    assert raw.shape[:2] == (96, 128)


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(photo_zoo):
    payload = photo_zoo["bomb"][1]
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(DatasetError, match=r"bomb\.png: 50000x50000 pixels exceeds .*refused before decoding"):
        decode_image(payload, "RGB", name="bomb.png")
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 0.5 and peak < 8 << 20, (seconds, peak)  # 50k x 50k RGB would be 7.5 GB


def test_folder_ingest_quarantines_bad_photos_and_keeps_the_rest(tmp_path, photo_zoo):
    root = tmp_path / "photos"
    (root / "street").mkdir(parents=True)
    for _, (file_name, payload, _) in photo_zoo.items():
        (root / "street" / file_name).write_bytes(payload)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(photo_zoo["good"][1])
    os.symlink(outside, root / "street" / "escape.jpg")  # a link out of the declared root
    params = {"source": "folder", "folder": {"root": str(root)}, "image_size": 64, "crops_per_photo": 1, "seed": 0}

    images, manifest, _, issues = ingest_base_images(params)

    kept = {name for name, (_, _, expected) in photo_zoo.items() if expected is not None and name != "tiny"}
    assert len(manifest) == len(kept) == 7
    assert sorted(manifest["source_path"].map(lambda p: Path(p).name)) == sorted(photo_zoo[n][0] for n in kept)
    assert all(images[b]().shape == (64, 64, 3) for b in manifest["base_id"])
    rotated = manifest[manifest["source_path"].str.endswith("rotated.jpg")].iloc[0]
    assert (rotated["orig_height"], rotated["orig_width"]) == (128, 96)  # orientation applied before the crop
    reasons = {Path(item).name: reason for item, reason in zip(issues["item"], issues["reason"])}
    for name, words in REFUSED.items():
        file_name = photo_zoo[name][0]
        assert words in reasons[file_name], (file_name, reasons.get(file_name))
    assert "outside its root" in reasons["escape.jpg"]
    assert len(issues) == len(REFUSED) + 1
    report = quarantine_report(issues)
    assert "7 item(s) refused" in report
    assert all(f"{photo_zoo[n][0]} |" in report or photo_zoo[n][0] in report for n in REFUSED)


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_imported_lists_stay_inside_their_root_and_bad_entries_are_quarantined(tmp_path, photo_zoo):
    root = tmp_path / "casia"
    image = np.full((32, 32, 3), 120, np.uint8)
    image[8:24, 8:24] = 30
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    _png(root / "Tp" / "good.png", image)
    _png(root / "Gt" / "good.png", mask)
    _png(root / "Tp" / "grey.png", image[::-1].copy())
    _png(root / "Gt" / "grey.png", np.where(mask > 0, 128, 64).astype(np.uint8))  # not a binary mask
    _png(root / "Tp" / "size.png", image[:, ::-1].copy())
    _png(root / "Gt" / "size.png", mask[:16])
    _png(root / "Tp" / "a" / "same.png", np.full((32, 32, 3), 10, np.uint8))
    _png(root / "Tp" / "b" / "same.png", np.full((32, 32, 3), 20, np.uint8))  # same id, other image
    (root / "Tp" / "cut.png").write_bytes(photo_zoo["truncated_png"][1])
    (root / "Tp" / "bomb.png").write_bytes(photo_zoo["bomb"][1])
    secret = tmp_path / "secret.png"
    _png(secret, image)
    os.symlink(secret, root / "Tp" / "link.png")
    entries = [["Tp/good.png", "Gt/good.png"], ["Tp/grey.png", "Gt/grey.png"], ["Tp/size.png", "Gt/size.png"],
               ["../../etc/passwd", "Negative"], ["/etc/passwd", "Negative"], ["Tp/../../secret.png", "Negative"],
               ["Tp/link.png", "Negative"], ["Tp/missing.png", "Negative"], ["Tp/good.png", "Gt/good.png"],
               ["Tp/a/same.png", "Negative"], ["Tp/b/same.png", "Negative"], ["Tp/cut.png", "Negative"],
               ["Tp/bomb.png", "Negative"], ["Tp/good.png", "../Gt/../../outside_mask.png"]]
    (root / "list.json").write_text(json.dumps(entries))
    params = {"source": "imdl", "imdl": {"json": str(root / "list.json"), "generator": "telea"},
              "published": {"generators": GENERATORS, "image_size": None}}

    bases, manifest, _, edited, labels, _, samples, _, issues = import_published(params)

    assert list(samples["sample_id"]) == ["good"] and sorted(manifest["base_id"]) == ["same", "same-2"]
    assert set(np.unique(labels["good"]())) == {0, 1}
    by_entry = {int(item.rsplit("[", 1)[1].rstrip("]")): reason for item, reason in zip(issues["item"], issues["reason"])
                if item.startswith(str(root / "list.json"))}
    reasons = dict(zip(issues["item"], issues["reason"]))
    assert "mask has unexpected values" in reasons[str(root / "Tp" / "grey.png")]
    assert "mask is 32x16 but the image is 32x32" in reasons[str(root / "Tp" / "size.png")]
    for index in (3, 4, 5, 6, 13):
        assert "outside its root" in by_entry[index] and "refused" in by_entry[index], by_entry[index]
    assert "does not exist" in by_entry[7]
    assert "duplicate entry" in by_entry[8]
    assert "kept as same-2" in reasons[str(root / "Tp" / "b" / "same.png")]  # both kept, a note names the first
    assert str(root / "Tp" / "a" / "same.png") in reasons[str(root / "Tp" / "b" / "same.png")]
    assert "truncated" in reasons[str(root / "Tp" / "cut.png")]
    assert "decompression bomb" in reasons[str(root / "Tp" / "bomb.png")]
    report = quarantine_report(issues)
    assert "## Refused" in report and "## Kept with a note" in report and "etc/passwd" in report


def test_coco_annotation_problems_are_reported_and_the_rest_used(tmp_path, photo_zoo):
    images = tmp_path / "val2017"
    images.mkdir()
    (images / "good.jpg").write_bytes(photo_zoo["good"][1])
    square = [10, 10, 60, 10, 60, 40, 10, 40]
    dataset = {
        "images": [{"id": 1, "file_name": "good.jpg", "height": 96, "width": 128},
                   {"id": 2, "file_name": "../../../etc/passwd", "height": 10, "width": 10},
                   {"id": 3, "file_name": "missing.jpg", "height": 96, "width": 128},
                   {"file_name": "no_id.jpg"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [square], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 1, "segmentation": [[100, 50, 200, 50, 200, 120, 100, 120]], "iscrowd": 0},
            {"id": 12, "image_id": 1, "category_id": 1, "segmentation": [[300, 300, 400, 300, 400, 400]], "iscrowd": 0},
            {"id": 13, "image_id": 99, "category_id": 1, "segmentation": [square], "iscrowd": 0},
            {"id": 14, "image_id": 1, "category_id": 1, "iscrowd": 0},
            {"id": 15, "image_id": 1, "category_id": 1, "segmentation": {"size": [10, 10], "counts": "abc"}},
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps(dataset))
    issues: list[dict[str, str]] = []

    photos = list(iter_coco_photos(str(annotations), str(images), issues=issues))

    assert [p.photo_id for p in photos] == ["coco-1"]
    masks = [annotation_mask(a) for a in photos[0].annotations]
    assert len(masks) == 2 and masks[1][50:96, 100:128].all()  # the clipped polygon covers the image's edge
    reasons = {i["item"].rsplit("/", 1)[-1]: i["reason"] for i in issues}
    assert "outside its root" in reasons["passwd"]
    assert reasons["missing.jpg"] == "file not found"
    assert "without an 'id'" in reasons["instances.json#images[3]"]
    assert reasons["instances.json#annotation=11"].startswith("note: polygon has 3 point(s) outside")
    assert "entirely outside" in reasons["instances.json#annotation=12"]
    assert "image id 99, which is not in 'images'" in reasons["instances.json#annotation=13"]
    assert "without the field(s) ['segmentation']" in reasons["instances.json#annotation=14"]
    assert "RLE segmentation is 10x10 but the image is 128x96" in reasons["instances.json#annotation=15"]

    (tmp_path / "broken.json").write_text('{"images": [')
    with pytest.raises(SourceError, match=r"broken\.json: not valid JSON"):
        list(iter_coco_photos(str(tmp_path / "broken.json"), str(images)))
    (tmp_path / "partial.json").write_text(json.dumps({"images": [], "categories": []}))
    with pytest.raises(SourceError, match=r"partial\.json: missing the COCO field 'annotations'"):
        list(iter_coco_photos(str(tmp_path / "partial.json"), str(images)))


@pytest.mark.slow
def test_a_kedro_run_lists_the_quarantine_in_data_and_in_its_report(project_copy: Path, photo_zoo):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = project_copy / "data" / "01_raw" / "folder" / "misc"
    root.mkdir(parents=True)
    for name in ("good", "rgba", "exif_rotated", "zero_byte", "bomb", "text_as_jpeg"):
        (root / photo_zoo[name][0]).write_bytes(photo_zoo[name][1])
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="tiny",
                             runtime_params={"ingest": {"source": "folder"}}) as session:
        session.run(pipeline_name="ingest")
    import pandas as pd

    reporting = project_copy / "data" / "08_reporting"
    issues = pd.read_parquet(reporting / "ingest_issues.parquet")
    assert sorted(Path(p).name for p in issues["item"]) == ["bomb.png", "notes.jpg", "zero.jpg"]
    report = (reporting / "quarantine.md").read_text()
    assert "3 item(s) refused" in report and all(n in report for n in ("bomb.png", "notes.jpg", "zero.jpg"))
    manifest = pd.read_parquet(project_copy / "data" / "02_intermediate" / "base_manifest.parquet")
    assert sorted(Path(p).name for p in manifest["source_path"]) == ["alpha.png", "good.jpg", "rotated.jpg"]


def test_a_symlink_out_of_an_imported_folder_is_refused(tmp_path):
    root = tmp_path / "imdl"
    image = np.full((32, 32, 3), 90, np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:20, 4:20] = 255
    _png(root / "Tp" / "inside.png", image)
    _png(root / "Gt" / "inside.png", mask)
    _png(tmp_path / "private" / "photo.png", image[::-1].copy())
    os.symlink(tmp_path / "private" / "photo.png", root / "Tp" / "escape.png")
    _png(root / "Gt" / "escape.png", mask)
    params = {"source": "imdl", "imdl": {"root": str(root), "generator": "telea"},
              "published": {"generators": GENERATORS, "image_size": None}}
    *_, samples, _, issues = import_published(params)
    assert list(samples["sample_id"]) == ["inside"]
    reasons = dict(zip(issues["item"], issues["reason"]))
    assert "outside its root" in reasons[str(root / "Tp" / "escape.png")]


@pytest.mark.parametrize("path, roots, expected", [
    ("Tp/a.png", ["s3://bucket/casia"], "s3://bucket/casia/Tp/a.png"),
    ("s3://bucket/casia/Gt/a.png", ["s3://bucket/casia"], "s3://bucket/casia/Gt/a.png"),
    ("../../etc/passwd", ["s3://bucket/casia"], None),
    ("/etc/passwd", ["s3://bucket/casia"], None),
    ("s3://other/x.png", ["s3://bucket/casia"], None),
    ("s3://bucket/casia-evil/x.png", ["s3://bucket/casia"], None),  # a sibling with the root as prefix
    ("gs://bucket/casia/x.png", ["s3://bucket/casia"], None),
])
def test_remote_paths_resolve_inside_their_root(path, roots, expected):
    from pipelines.ingest.sources import resolve_inside

    if expected is None:
        with pytest.raises(SourceError, match="refused"):
            resolve_inside(path, roots, "list.json[0]")
    else:
        assert resolve_inside(path, roots, "list.json[0]") == expected
