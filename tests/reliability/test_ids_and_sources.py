"""Inputs that used to stop a run after ingest, or slip through (issue 20): names that are not ids,
names that collide, ids that are paths, mixed COCO ids, a COCO file too big to hold as masks,
JSON nested too deep, a folder with nothing usable, and reasons that said too much or too little.
Every input is made here."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DatasetError
from PIL import Image

from pipelines.datasets import ParallelPartitionedDataset, decode_image
from pipelines.ingest.nodes import import_published, ingest_base_images
from pipelines.contract.ids import UniqueIds, safe_id
from pipelines.ingest.sources import SourceError, iter_coco_photos, iter_folder_photos
from pipelines.io.resume import SAFE_KEY, WorkStore

GENERATORS = [{"name": "telea"}, {"name": "navier_stokes"}, {"name": "tiny-sd"}]


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def gradient_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colour photo stand-in; ``seed`` changes its pixels (distinct sha256 per seed)."""
    array = np.zeros((height, width, 3), np.uint8)
    array[..., 0] = np.linspace(0, 255, width)[None]
    array[..., 1] = np.linspace(0, 255, height)[:, None]
    array[height // 4: height // 2, width // 4: width // 2] = np.random.default_rng(seed).integers(0, 255, 3)
    return array


def _photo(path: Path, seed: int, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(Image.fromarray(gradient_photo(64, 80, seed=seed)), fmt))


def _folder_ingest(root: Path, **extra) -> tuple:
    return ingest_base_images({"source": "folder", "folder": {"root": str(root), **extra}, "image_size": 32,
                               "crops_per_photo": 1, "seed": 0})


# ------------------------------------------------------------------------------ 1, 2: file names
def test_any_file_name_gives_a_valid_stable_id_that_later_stages_accept(tmp_path):
    root = tmp_path / "photos"
    names = ["unicode naïve ñame.png", "with space.png", "日本語.png", "quote'semi;colon.png", "-dash.png", "a..b.png"]
    for seed, name in enumerate(names):
        _photo(root / "misc" / name, seed)

    images, manifest, _, issues = _folder_ingest(root)
    again = _folder_ingest(root)[1]

    assert len(manifest) == len(names) and manifest["base_id"].is_unique
    for base_id in manifest["base_id"]:
        assert SAFE_KEY.match(base_id) and WorkStore.check_key(f"{base_id}-v0")  # perceive's work-store rule
    assert list(manifest["base_id"]) == list(again["base_id"])  # stable from run to run
    ids = dict(zip(manifest["source_path"].map(lambda p: Path(p).name), manifest["base_id"]))
    assert ids["unicode naïve ñame.png"].startswith("folder-misc-unicode-naive-name-")  # readable, not only a hash
    assert set(images) == set(manifest["base_id"])
    notes = issues[issues["reason"].str.startswith("note: name")]
    renamed = [n for n in names if not SAFE_KEY.match("misc-" + n.rsplit(".", 1)[0]) or ".." in n]
    assert len(notes) == len(renamed) == 5  # each renamed file says to what ('misc--dash' is valid as it is)


def test_two_photos_that_map_to_one_id_are_both_kept_with_distinct_ids_and_a_note(tmp_path):
    root = tmp_path / "photos"
    _photo(root / "collide.png", 1)
    _photo(root / "collide.jpg", 2, "JPEG")
    _photo(root / "cls" / "x.png", 3)
    _photo(root / "cls-x.png", 4)

    images, manifest, _, issues = _folder_ingest(root)

    assert len(manifest) == 4 and manifest["base_id"].is_unique and set(images) == set(manifest["base_id"])
    assert manifest["sha256"].is_unique
    for base_id, sha in zip(manifest["base_id"], manifest["sha256"]):
        import hashlib

        assert hashlib.sha256(np.ascontiguousarray(images[base_id]()).tobytes()).hexdigest() == sha
    notes = sorted(issues.loc[issues["reason"].str.contains("kept as"), "reason"])
    assert len(notes) == 2  # the second of each pair is kept under a new id; the note names the first
    assert notes[0].endswith("kept as folder-cls-x-2") and "cls-x.png" in notes[0]
    assert notes[1].endswith("kept as folder-collide-2") and "collide.jpg" in notes[1]


def test_safe_id_and_unique_ids_contract():
    assert safe_id("coco-000123.jpg") == "coco-000123.jpg"  # already valid: unchanged
    for raw in ("../../../tmp/x", "/etc/passwd", "a/b", "..", "", " ", "ñ" * 500, "x\udcff"):
        mapped = safe_id(raw)
        assert SAFE_KEY.match(mapped) and "/" not in mapped and ".." not in mapped, (raw, mapped)
        assert safe_id(raw) == mapped
    assert safe_id("a/b") != safe_id("a-b") and safe_id("a b") != safe_id("a_b")
    issues: list = []
    ids = UniqueIds("test", issues)
    assert [ids("x", "one"), ids("x", "two"), ids("x-2", "three")] == ["x", "x-2", "x-2-2"]
    assert ids.first("x") == "x" and ids.first("nope") == ""
    assert all(i["reason"].startswith("note:") for i in issues) and len(issues) == 2


# ------------------------------------------------------------------------------- 4: ids that are paths
def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_ids_that_are_paths_are_mapped_at_the_door_and_saved_inside_their_folder(tmp_path):
    images_dir = tmp_path / "coco" / "images"
    _photo(images_dir / "a.png", 1)
    _photo(images_dir / "b.png", 2)
    coco = {"images": [{"id": "../../../tmp/x", "file_name": "a.png", "height": 64, "width": 80},
                       {"id": 7, "file_name": "b.png", "height": 64, "width": 80}],
            "annotations": [], "categories": []}
    (tmp_path / "coco" / "instances.json").write_text(json.dumps(coco))
    photos = list(iter_coco_photos(str(tmp_path / "coco" / "instances.json"), str(images_dir)))
    assert photos[0].photo_id == "coco-7"  # numbers first, then strings (issue item 6 too)
    assert SAFE_KEY.match(photos[1].photo_id) and "/" not in photos[1].photo_id

    image = gradient_photo(48, 48)
    mask = np.zeros((48, 48), np.uint8)
    mask[10:30, 10:30] = 255
    rows = [{"key": "../../../tmp/x", "image": {"bytes": _png_bytes(image), "path": "x.png"},
             "mask": {"bytes": _png_bytes(mask), "path": "m.png"}, "label": 1},
            {"key": "../../../tmp/y", "image": {"bytes": _png_bytes(image[::-1].copy()), "path": "y.png"},
             "mask": None, "label": 0}]
    pd.DataFrame(rows).to_parquet(tmp_path / "opensdid.parquet")
    bases, manifest, _, edited, labels, _, samples, _, issues = import_published(
        {"source": "opensdid", "opensdid": {"files": [str(tmp_path / "opensdid.parquet")]},
         "published": {"generators": GENERATORS, "image_size": None}})
    for key in [*bases, *edited]:
        assert SAFE_KEY.match(key) and "/" not in key, key

    folder = tmp_path / "out" / "edited_images"
    dataset = ParallelPartitionedDataset(path=str(folder), dataset={"type": "pipelines.datasets.PNGDataset"},
                                         filename_suffix=".png", overwrite=True)
    dataset.save(edited)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{k}.png" for k in edited)
    assert not (tmp_path / "tmp").exists() and not Path("/tmp/x.png").exists()


def test_a_failed_partition_save_leaves_the_previous_folder_whole(tmp_path):
    folder = tmp_path / "base_images"
    dataset = ParallelPartitionedDataset(path=str(folder), dataset={"type": "pipelines.datasets.PNGDataset"},
                                         filename_suffix=".png", overwrite=True, save_workers=2)
    old = {f"old-{i}": np.full((8, 8, 3), i, np.uint8) for i in range(3)}
    dataset.save(old)

    def broken():
        raise ValueError("encoder failed")

    with pytest.raises(DatasetError, match="new-1"):
        dataset.save({"new-0": lambda: np.zeros((8, 8, 3), np.uint8), "new-1": broken})
    assert sorted(p.name for p in folder.iterdir()) == [f"old-{i}.png" for i in range(3)]  # still the manifest's
    with pytest.raises(DatasetError, match="not a name inside the folder"):
        dataset.save({"ok": lambda: np.zeros((8, 8, 3), np.uint8), "../escape": lambda: np.zeros((8, 8, 3), np.uint8)})
    assert sorted(p.name for p in folder.iterdir()) == [f"old-{i}.png" for i in range(3)]
    assert [p.name for p in tmp_path.iterdir()] == ["base_images"]  # no staging folder left behind
    dataset.save({"new-0": lambda: np.zeros((8, 8, 3), np.uint8)})
    assert [p.name for p in folder.iterdir()] == ["new-0.png"]


# --------------------------------------------------------------------------- 6, 7, 8: COCO and JSON
def test_coco_with_mixed_integer_and_string_image_ids(tmp_path):
    images_dir = tmp_path / "images"
    for i, name in enumerate(("a", "b", "c")):
        _photo(images_dir / f"{name}.png", i)
    square = [[10, 10, 40, 10, 40, 40, 10, 40]]
    coco = {"images": [{"id": "b-id", "file_name": "b.png", "height": 64, "width": 80},
                       {"id": 3, "file_name": "a.png", "height": 64, "width": 80},
                       {"id": "1", "file_name": "c.png", "height": 64, "width": 80}],
            "annotations": [{"id": 1, "image_id": "b-id", "category_id": 1, "segmentation": square},
                            {"id": 2, "image_id": 3, "category_id": 1, "segmentation": square}],
            "categories": [{"id": 1, "name": "person"}]}
    (tmp_path / "instances.json").write_text(json.dumps(coco))

    photos = list(iter_coco_photos(str(tmp_path / "instances.json"), str(images_dir)))

    assert [p.photo_id for p in photos] == ["coco-3", "coco-1", "coco-b-id"]
    assert [len(p.annotations) for p in photos] == [1, 0, 1]


def _large_coco(tmp_path: Path, n_images: int, per_image: int, side: int) -> Path:
    images_dir = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(n_images):
        _photo(images_dir / f"{i}.png", i)
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(images_dir / f"{i}.png")
    anns, k = [], 0
    for i in range(n_images):
        for _ in range(per_image):
            x, y = rng.uniform(2, side - 20, size=2).round(1)
            anns.append({"id": k, "image_id": i, "category_id": 1 + k % 3, "iscrowd": 0,
                         "segmentation": [[x, y, x + 15, y, x + 18, y + 9, x + 15, y + 17, x, y + 17, x - 2, y + 8]]})
            k += 1
    coco = {"images": [{"id": i, "file_name": f"{i}.png", "height": side, "width": side} for i in range(n_images)],
            "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    return path


def test_a_large_coco_json_streams_in_bounded_memory(tmp_path):
    """20k polygon annotations on 2 images of 320 px, read in a fresh process: main kept 10k
    full-size masks per photo (1 GB) and the whole parsed JSON; streamed, the memory is one
    compressed RLE per annotation plus one decoded mask at a time."""
    path = _large_coco(tmp_path, n_images=2, per_image=10_000, side=320)
    code = """
import resource, sys, time
from pipelines.ingest import sources
annotation_mask = getattr(sources, "annotation_mask", lambda annotation: annotation["mask"])
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started, count = time.perf_counter(), 0
for photo in sources.iter_coco_photos(sys.argv[1], sys.argv[2]):
    count += len(photo.annotations)
    assert annotation_mask(photo.annotations[0]).shape == (320, 320)
print(count, time.perf_counter() - started, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) * 1024)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "images")], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    count, seconds, grown = result.stdout.split()
    assert int(count) == 20_000
    assert int(grown) < 120 << 20, f"memory grew by {int(grown) >> 20} MB for a {path.stat().st_size >> 20} MB JSON"
    assert float(seconds) < 20, seconds


def test_json_nested_too_deep_names_the_file(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(deep)
    (tmp_path / "deep_coco.json").write_text('{"images": ' + deep + ', "annotations": [], "categories": []}')
    with pytest.raises(SourceError, match=r"deep\.json: .*(nested too deeply|must be a list|not valid JSON)"):
        list(import_published({"source": "imdl", "imdl": {"json": str(tmp_path / "deep.json")},
                               "published": {"generators": GENERATORS}}))
    with pytest.raises(SourceError, match=r"deep_coco\.json: "):
        list(iter_coco_photos(str(tmp_path / "deep_coco.json"), str(tmp_path)))
    root = tmp_path / "diffseg"
    root.mkdir()
    (root / "labels.json").write_text(deep)
    (root / "00000000.image.png").write_bytes(_png_bytes(gradient_photo(32, 32)))
    (root / "00000000.mask.png").write_bytes(_png_bytes(np.zeros((32, 32), np.uint8)))
    with pytest.raises(SourceError, match=r"labels\.json: JSON nested too deeply"):
        import_published({"source": "diffseg30k", "diffseg30k": {"root": str(root)}, "published": {"generators": GENERATORS}})


# -------------------------------------------------------------------------------- 10, 19: folders
def test_folder_sources_give_a_reason_for_every_file_they_leave_out(tmp_path):
    root = tmp_path / "photos"
    _photo(root / "good.png", 0)
    (root / "anim.gif").write_bytes(encode(Image.fromarray(gradient_photo(64, 64)), "GIF"))
    (root / "notes.txt").write_text("not a photo")
    os.symlink(root / "loop.jpg", root / "loop.jpg")  # a symlink loop
    png = bytearray(encode(Image.fromarray(gradient_photo(64, 64)), "PNG"))
    png[29] ^= 0xFF  # IHDR chunk CRC broken
    (root / "broken_chunk.png").write_bytes(bytes(png))
    (root / "garbage.png").write_bytes(b"not an image at all")
    issues: list = []

    photos = list(iter_folder_photos(str(root), issues=issues))

    assert [p.photo_id for p in photos] == ["folder-good"]
    reasons = {Path(i["item"]).name: i["reason"] for i in issues}
    assert "GIF" in reasons["anim.gif"] and "not an image file name" in reasons["notes.txt"]
    assert reasons["loop.jpg"] == "symlink loop (too many levels of symbolic links)"
    assert reasons["broken_chunk.png"] == "not a readable image: corrupt PNG data"
    assert reasons["garbage.png"] == "not a readable image: not an image file (format not recognised)"
    for item, reason in ((i["item"], i["reason"]) for i in issues):
        assert item not in reason and "0x" not in reason and "Errno" not in reason, reason
    with pytest.raises(DatasetError) as error:
        decode_image(b"not an image", "RGB", name="x.png")
    assert "object at" not in str(error.value)


def test_an_unreadable_sub_folder_is_reported(tmp_path):
    """Root reads every folder: where the tests run as root, the listing runs in a child process
    without the capabilities that bypass file permissions (util-linux ``setpriv``)."""
    import shutil

    prefix: list[str] = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without util-linux setpriv: no folder is unreadable to root")
        prefix = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    root = tmp_path / "photos"
    _photo(root / "open" / "a.png", 0)
    _photo(root / "closed" / "b.png", 1)
    os.chmod(root / "closed", 0o000)
    code = ("import json, sys; from pipelines.ingest.sources import iter_folder_photos; issues = []; "
            "ids = [p.photo_id for p in iter_folder_photos(sys.argv[1], issues=issues)]; "
            "print(json.dumps([ids, issues]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        result = subprocess.run([*prefix, sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                                env=env, timeout=120)
    finally:
        os.chmod(root / "closed", 0o755)
    assert result.returncode == 0, result.stderr[-2000:]
    ids, issues = json.loads(result.stdout.strip().splitlines()[-1])
    assert ids == ["folder-open-a"]
    assert [(Path(i["item"]).name, i["reason"]) for i in issues] == [("closed", "folder not readable: permission denied")]


@pytest.mark.slow
def test_a_folder_with_no_usable_photo_fails_clearly_and_rewrites_the_quarantine_page(project_copy: Path, photo_zoo):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    root = project_copy / "data" / "01_raw" / "folder" / "misc"
    root.mkdir(parents=True)
    for name in ("zero_byte", "text_as_jpeg"):
        (root / photo_zoo[name][0]).write_bytes(photo_zoo[name][1])
    reporting = project_copy / "data" / "08_reporting"
    reporting.mkdir(parents=True)
    (reporting / "quarantine.md").write_text("# Quarantine\n\nstale page of an earlier run\n")
    bootstrap_project(project_copy)
    with pytest.raises(SourceError, match=r"produced no images \(2 item\(s\) refused"):
        with KedroSession.create(project_path=project_copy, env="tiny",
                                 runtime_params={"ingest": {"source": "folder"}}) as session:
            session.run(pipeline_name="ingest")
    page = (reporting / "quarantine.md").read_text()
    assert "stale" not in page and "2 item(s) refused" in page and "The run stopped" in page
    assert sorted(Path(p).name for p in pd.read_parquet(reporting / "ingest_issues.parquet")["item"]) == \
        sorted(photo_zoo[n][0] for n in ("zero_byte", "text_as_jpeg"))
