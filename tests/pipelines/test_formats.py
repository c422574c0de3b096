"""Published formats in and out: every export re-imports to the same samples, splits and labels;
imports report bad entries instead of failing; URL ingest downloads with retries, a concurrency
limit and checksums from a local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import skimage.data
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from PIL import Image

from pipelines.export.nodes import export_dataset
from pipelines.ingest.nodes import import_published, ingest_base_images
from pipelines.split.nodes import make_splits

REPO = Path(__file__).resolve().parents[2]
SIZE = 48
GENERATORS = [{"name": "telea"}, {"name": "navier_stokes"}, {"name": "tiny-sd"}]
NAMES = [g["name"] for g in GENERATORS]


def lazy(arrays):
    return {k: (lambda v=v: v) for k, v in arrays.items()}


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def dataset():
    """Four real bases, two edited samples each (multi-turn semantic label maps), split 8:2 with
    authentic negatives: the tables the generate stages would hand to export."""
    rng = np.random.default_rng(0)
    bases, edited, labels, samples, manifest = {}, {}, {}, [], []
    for name in ("astronaut", "coffee", "rocket", "chelsea"):
        base_id = f"{name}-c0"
        base = cv2.resize(getattr(skimage.data, name)()[..., :3], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        bases[base_id] = base
        manifest.append({"base_id": base_id, "group_id": name, "source": "sample", "kind": "real"})
        for v in range(2):
            sample_id = f"{base_id}-v{v}"
            label = np.zeros((SIZE, SIZE), np.uint8)
            gens = [NAMES[(v + k) % 3] for k in range(2)]
            for turn, gen in enumerate(gens):
                top, left = rng.integers(0, SIZE - 16, size=2)
                label[top:top + 16, left:left + 16] = NAMES.index(gen) + 1
            image = base.copy()
            image[label > 0] = rng.integers(0, 255, size=(int((label > 0).sum()), 3))
            edited[sample_id], labels[sample_id] = image, label
            samples.append({"sample_id": sample_id, "base_id": base_id, "group_id": name, "n_turns": 2,
                            "generators": list(gens), "last_generator": gens[-1], "edit_types": ["attribute", "removal"],
                            "region_kinds": ["thing", "stuff"], "kept": True, "drop_reason": ""})
    samples, manifest = pd.DataFrame(samples), pd.DataFrame(manifest)
    splits, _, _ = make_splits(samples, manifest, {"seed": 0, "names": ["train", "val"], "ratios": [0.75, 0.25],
                                                   "generators": GENERATORS})
    return {"base_images": bases, "edited_images": edited, "label_maps": labels, "samples": samples,
            "manifest": manifest, "splits": splits}


@pytest.fixture(scope="module")
def exported(dataset, tmp_path_factory):
    """export_dataset's outputs saved through the real catalog entries (conf/base/catalog.yml)."""
    root = tmp_path_factory.mktemp("export-project")
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("credentials.yml"))
    (root / "conf" / "local").mkdir(exist_ok=True)
    (root / "conf" / "base" / "globals.yml").write_text(
        (REPO / "conf" / "base" / "globals.yml").read_text().replace("data_root: data", f"data_root: {root / 'data'}"))
    catalog_conf = OmegaConfigLoader(str(root / "conf"), base_env="base", default_run_env="local")["catalog"]
    catalog = DataCatalog.from_config({k: v for k, v in catalog_conf.items() if k.startswith("export_")},
                                      credentials={"storage": {}})
    outputs = export_dataset(dataset["splits"], lazy(dataset["edited_images"]), lazy(dataset["label_maps"]),
                             lazy(dataset["base_images"]), dataset["samples"], dataset["manifest"],
                             {"formats": ["imdl", "brgen", "diffseg30k", "hf"], "generators": GENERATORS})
    names = ["export_imdl", "export_imdl_lists", "export_brgen", "export_brgen_lists", "export_diffseg30k",
             "export_diffseg30k_index", "export_hf"]
    for name, value in zip(names, outputs):
        catalog.save(name, value)
    return root / "data" / "07_model_output" / "export"


def reimport(source: str, config: dict) -> dict:
    params = {"source": source, source: config, "published": {"generators": GENERATORS, "image_size": None}}
    (bases, manifest, _, edited, labels, regions, samples, provenance, issues) = import_published(params)
    samples = samples.assign(kept=True, drop_reason="")
    splits, _, _ = make_splits(samples, manifest, {"seed": 0, "use": "published", "generators": GENERATORS,
                                                   "protocols": {"published": {"kind": "published"}}})
    return {"bases": bases, "manifest": manifest, "edited": edited, "labels": labels, "samples": samples,
            "provenance": provenance, "issues": issues, "splits": splits}


def item_signatures(splits, edited, labels, bases, binary: bool) -> set[tuple]:
    """(split, kind, image pixels, labels) for every item: what 'the same samples' means."""
    out = set()
    for row in splits.itertuples():
        image = (edited if row.kind == "edited" else bases)[row.image_key]()
        label = labels[row.label_key]() if row.kind == "edited" else np.zeros(image.shape[:2], np.uint8)
        out.add((row.split, row.kind, digest(image), digest((label > 0) if binary else label)))
    return out


def original_signatures(dataset, binary):
    return item_signatures(dataset["splits"], lazy(dataset["edited_images"]), lazy(dataset["label_maps"]),
                           lazy(dataset["base_images"]), binary)


@pytest.mark.parametrize("fmt", ["imdl-json", "imdl-folders", "brgen", "diffseg30k", "hf"])
def test_export_reimports_to_the_same_samples_splits_and_labels(dataset, exported, fmt):
    binary = fmt in ("imdl-json", "imdl-folders", "brgen")
    if fmt == "imdl-json":
        back = reimport("imdl", {"json": {s: str(exported / "imdl" / f"{s}.json") for s in ("train", "val")}})
    elif fmt == "imdl-folders":
        back = reimport("imdl", {"root": str(exported / "imdl")})
    elif fmt == "brgen":
        back = reimport("brgen", {"root": str(exported / "brgen")})
    elif fmt == "diffseg30k":
        back = reimport("diffseg30k", {"root": str(exported / "diffseg30k")})
    else:
        back = reimport("opensdid", {"files": [str(p) for p in sorted((exported / "hf").glob("*.parquet"))]})
    assert back["issues"].empty, back["issues"].to_string()
    assert item_signatures(back["splits"], back["edited"], back["labels"], back["bases"], binary) == \
        original_signatures(dataset, binary)
    if fmt != "brgen":  # BR-Gen names real images <Source>_<id>; every other format keeps the ids
        assert set(zip(back["splits"]["item_id"], back["splits"]["split"])) == \
            set(zip(dataset["splits"]["item_id"], dataset["splits"]["split"]))
    edited_back = back["samples"].set_index("sample_id")
    for row in dataset["samples"].itertuples():
        if fmt in ("diffseg30k", "hf"):  # semantic labels: the generators come back
            assert set(edited_back.at[row.sample_id, "generators"]) == set(row.generators)
            assert edited_back.at[row.sample_id, "label_kind"] == "semantic"
        elif fmt == "brgen":  # BR-Gen names carry the last generator and region kind
            assert edited_back.at[row.sample_id, "last_generator"] == row.last_generator
            assert edited_back.at[row.sample_id, "region_kinds"][-1] == "stuff"
            assert edited_back.at[row.sample_id, "base_id"] == f"sample_{row.base_id}"
    if fmt != "imdl-folders" and fmt != "imdl-json":  # variants of one base stay in one split group
        groups = back["samples"].groupby("group_id")["sample_id"].count()
        assert (groups == 2).all()


def test_exported_layouts_follow_the_published_conventions(exported, dataset):
    imdl = json.loads((exported / "imdl" / "train.json").read_text())
    assert any(entry[1] == "Negative" for entry in imdl)
    tp, gt = next(e for e in imdl if e[1] != "Negative")
    assert tp.startswith(str(exported / "imdl" / "train" / "Tp") + "/") and gt.startswith(str(exported / "imdl" / "train" / "Gt"))
    au = next(e[0] for e in imdl if e[1] == "Negative")  # authentic: in Au/, never in Tp/ (IMDL-BenCo: Tp = tampered)
    assert au.startswith(str(exported / "imdl" / "train" / "Au") + "/") and Path(au).exists()
    assert set(np.unique(np.asarray(Image.open(exported / "imdl" / gt)))) <= {0, 255}  # masks 0/255
    assert sorted(p.name for p in (exported / "imdl" / "train" / "Tp").iterdir()) == \
        sorted(p.name for p in (exported / "imdl" / "train" / "Gt").iterdir())  # paired by sorted name
    names = sorted(p.name for p in (exported / "brgen" / "Tp").iterdir())
    assert names and all(n.split("_")[1] == "Stuff" and n.split("_")[2] == "sample" for n in names)
    assert all((exported / "brgen" / "Gt" / n.replace(".png", "_mask.png")).exists() for n in names)
    assert any(n.startswith("navier-stokes_") for n in names)  # '_' escaped in the generator field
    pairs = sorted((exported / "diffseg30k" / "train").glob("*.image.png"))
    assert pairs and all(len(p.name.split(".")[0]) == 8 for p in pairs)
    labels = json.loads((exported / "diffseg30k" / "labels.json").read_text())
    assert labels["classes"] == ["untouched", *NAMES]
    table = pq.read_table(exported / "hf" / "train.parquet")
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"} and features["mask"] == {"_type": "Image"}
    assert features["label"] == {"dtype": "int64", "_type": "Value"}
    assert {"key", "image", "mask", "label", "generators", "base_id", "n_turns"} <= set(table.column_names)


def test_hf_parquet_loads_with_datasets(exported):
    datasets = pytest.importorskip("datasets")  # not in the lock; runs where it is installed
    loaded = datasets.load_dataset("parquet", data_dir=str(exported / "hf"))
    row = loaded["train"][0]
    assert row["image"].size == (SIZE, SIZE) and row["label"] in (0, 1)


# ------------------------------------------------------------------------------------ bad entries
def png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return str(path)


def test_imdl_import_reports_bad_entries_and_keeps_the_good(tmp_path):
    image = np.full((32, 32, 3), 120, np.uint8)
    image[8:24, 8:24] = 30
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 8:24] = 255
    png(tmp_path / "Tp" / "good.png", image)
    png(tmp_path / "Gt" / "good.png", mask)
    png(tmp_path / "Tp" / "zero_one.png", image)
    png(tmp_path / "Gt" / "zero_one.png", (mask > 0).astype(np.uint8))  # a 0/1 mask
    png(tmp_path / "Tp" / "wrong_size.png", image)
    png(tmp_path / "Gt" / "wrong_size.png", mask[:16])
    (tmp_path / "Tp" / "broken.png").write_bytes(b"\x89PNG not really")
    png(tmp_path / "Tp" / "au.png", np.full((32, 32, 3), 200, np.uint8))
    entries = [["Tp/good.png", "Gt/good.png"], ["Tp/zero_one.png", "Gt/zero_one.png"], ["Tp/wrong_size.png", "Gt/wrong_size.png"],
               ["Tp/broken.png", "Negative"], ["Tp/missing.png", "Negative"], ["Tp/au.png", "Negative"], ["just one path"]]
    (tmp_path / "list.json").write_text(json.dumps(entries))
    params = {"source": "imdl", "imdl": {"json": str(tmp_path / "list.json"), "generator": "telea"},
              "published": {"generators": GENERATORS, "image_size": None}}
    bases, manifest, _, edited, labels, _, samples, provenance, issues = import_published(params)
    assert sorted(samples["sample_id"]) == ["good", "zero_one"] and list(manifest["base_id"]) == ["au"]
    assert set(np.unique(labels["good"]())) == {0, 1}  # telea = label 1, semantic
    assert (samples["label_kind"] == "semantic").all() and list(provenance["generator"]) == ["telea", "telea"]
    reasons = " | ".join(issues["reason"])
    for expected in ("but the image is", "not a readable image", "does not exist", "not an [image, mask] pair",
                     "0/1 mask"):
        assert expected in reasons, reasons


def test_opensdid_import_reads_fully_generated_fakes_and_reports_inconsistent_rows(tmp_path):
    def cell(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32, 3), np.uint8)
    mask[:16] = 255
    rows = [
        {"key": "real", "image": cell(image), "mask": None, "label": 0},
        {"key": "local", "image": cell(image[::-1].copy()), "mask": cell(mask), "label": 1},
        {"key": "global", "image": cell(image[:, ::-1].copy()), "mask": None, "label": 1},  # fully generated
        {"key": "empty", "image": cell(np.ascontiguousarray(image.transpose(1, 0, 2))), "mask": cell(np.zeros_like(mask)), "label": 1},
        {"key": "odd", "image": cell(image), "mask": None, "label": 2},
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "sd15.parquet")
    params = {"source": "opensdid", "opensdid": {"files": [{"path": str(tmp_path / "sd15.parquet"), "generator": "tiny-sd",
                                                             "split": "test"}]},
              "published": {"generators": GENERATORS, "image_size": None}}
    bases, manifest, _, edited, labels, _, samples, _, issues = import_published(params)
    assert list(manifest["base_id"]) == ["real"] and sorted(samples["sample_id"]) == ["global", "local"]
    assert (labels["global"]() == 3).all()  # every pixel is tiny-sd's (label 3)
    assert labels["local"]()[:16].min() == 3 and labels["local"]()[16:].max() == 0  # mean(RGB) > 127.5
    assert set(samples["published_split"]) == {"test"}
    assert set(issues["item"].str.extract(r"\[(\w+)\]")[0]) == {"empty", "odd"}


def test_diffseg30k_import_inspects_mask_values(tmp_path):
    image = np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    semantic = np.zeros((16, 16), np.uint8)
    semantic[:4] = 2
    semantic[8:] = 5
    binary = np.where(semantic > 0, 255, 0).astype(np.uint8)
    for number, mask in (("00000000", semantic), ("00000001", binary), ("00000002", np.full((16, 16), 9, np.uint8))):
        png(tmp_path / f"{number}.image.png", image)
        png(tmp_path / f"{number}.mask.png", mask)
    classes = ["background", "sd2", "telea", "sdxl", "kolors", "tiny-sd"]
    params = {"source": "diffseg30k", "diffseg30k": {"root": str(tmp_path), "class_names": classes},
              "published": {"generators": GENERATORS, "image_size": None}}
    _, _, _, _, labels, _, samples, provenance, issues = import_published(params)
    table = samples.set_index("sample_id")
    assert set(np.unique(labels["00000000"]())) == {0, 1, 3}  # telea -> 1, tiny-sd -> 3
    assert table.at["00000000", "generators"] == ["telea", "tiny-sd"] and table.at["00000000", "n_turns"] == 2
    assert table.at["00000001", "label_kind"] == "binary"  # {0, 255}: binary, generator unknown
    assert "00000002" not in table.index and "need class names" in issues["reason"].iloc[0]
    assert len(provenance[provenance["sample_id"] == "00000000"]) == 2
    # the Hugging Face form: image / mask columns of {bytes, path} cells, split from the file name
    cells = [{"image": {"bytes": encoded(image, "PNG"), "path": None}, "mask": {"bytes": encoded(m, "PNG"), "path": None}}
             for m in (semantic, binary)]
    pd.DataFrame(cells).to_parquet(tmp_path / "train-00000-of-00001.parquet")
    params["diffseg30k"] = {"files": [str(tmp_path / "train-00000-of-00001.parquet")], "class_names": classes}
    _, _, _, _, labels, _, samples, _, issues = import_published(params)
    assert list(samples["sample_id"]) == ["00000000", "00000001"] and set(samples["published_split"]) == {"train"}
    assert set(np.unique(labels["00000000"]())) == {0, 1, 3} and issues.empty


def test_brgen_import_parses_names_and_reports_orphans(tmp_path):
    image = np.random.default_rng(2).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12] = 255
    png(tmp_path / "Au" / "COCO_000123.png", image)
    png(tmp_path / "Tp" / "SDXL_Stuff_COCO_000123.png", image[::-1].copy())
    png(tmp_path / "Gt" / "SDXL_Stuff_COCO_000123_mask.png", mask)
    png(tmp_path / "Tp" / "LaMa_Background_COCO_000123.png", image[:, ::-1].copy())
    png(tmp_path / "Gt" / "LaMa_Background_COCO_000123_mask.png", mask)
    png(tmp_path / "Tp" / "badname.png", image)
    png(tmp_path / "Tp" / "MAT_Stuff_Places_9.png", np.ascontiguousarray(image.transpose(1, 0, 2)))
    params = {"source": "brgen", "brgen": {"root": str(tmp_path)},
              "published": {"generators": [{"name": "SDXL"}, {"name": "LaMa"}], "image_size": None}}
    _, manifest, _, _, labels, _, samples, _, issues = import_published(params)
    table = samples.set_index("sample_id")
    # two forgeries of one real image share its id: ids become the full names
    assert sorted(table.index) == ["LaMa_Background_COCO_000123", "SDXL_Stuff_COCO_000123"]
    assert table.at["SDXL_Stuff_COCO_000123", "base_id"] == "COCO_000123"
    assert table.at["LaMa_Background_COCO_000123", "region_kinds"] == ["background"]
    assert set(np.unique(labels["LaMa_Background_COCO_000123"]())) == {0, 2}  # LaMa is the 2nd generator
    assert {"name is not <Inpainter>_<Kind>_<Source>_<id>", "no Gt/MAT_Stuff_Places_9_mask"} <= set(issues["reason"])


def test_brgen_forgeries_of_a_missing_real_image_stay_in_one_split_group(tmp_path):
    image = np.random.default_rng(3).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12] = 255
    for name in ("SDXL_Stuff_COCO_000999", "LaMa_Stuff_COCO_000999"):  # no Au/COCO_000999
        png(tmp_path / "Tp" / f"{name}.png", image[::-1].copy() if name[0] == "S" else image)
        png(tmp_path / "Gt" / f"{name}_mask.png", mask)
    (tmp_path / "Au").mkdir()
    params = {"source": "brgen", "brgen": {"root": str(tmp_path)},
              "published": {"generators": [{"name": "SDXL"}, {"name": "LaMa"}], "image_size": None}}
    samples = import_published(params)[6]
    assert list(samples["group_id"]) == ["COCO_000999", "COCO_000999"]
    assert sorted(samples["base_id"]) == sorted(samples["sample_id"])  # no base image to point at


# ------------------------------------------------------------------------------------ URL ingest
class _Server:
    """Serves files on 127.0.0.1: /flaky.png fails once with 503, /missing.png is a 404; records
    the most requests in flight at once."""

    def __init__(self, files: dict[str, bytes]):
        state = {"in_flight": 0, "peak": 0, "flaky": 0, "lock": threading.Lock()}
        self.state = state

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                with state["lock"]:
                    state["in_flight"] += 1
                    state["peak"] = max(state["peak"], state["in_flight"])
                time.sleep(0.05)  # a slow server: requests overlap unless the client limits them
                with state["lock"]:  # counted out before answering: the client may reconnect at once
                    state["in_flight"] -= 1
                name = self.path.lstrip("/")
                if name == "flaky.png" and state["flaky"] == 0:
                    state["flaky"] += 1
                    self.send_error(503)
                    return
                if name not in files:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(files[name])))
                self.end_headers()
                self.wfile.write(files[name])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_url_ingest_downloads_with_retries_limit_and_checksums(tmp_path):
    photos = {name: cv2.resize(getattr(skimage.data, name)()[..., :3], (64, 64)) for name in ("astronaut", "coffee", "rocket")}
    files = {"a.png": encoded(photos["astronaut"], "PNG"), "b.jpg": encoded(photos["coffee"], "JPEG"),
             "flaky.png": encoded(photos["rocket"], "PNG"), "corrupt.png": b"\x89PNG\r\n\x1a\n garbage",
             "tampered.png": encoded(photos["astronaut"][::-1].copy(), "PNG")}
    server = _Server(files)
    try:
        rows = [
            {"url": f"{server.url}/a.png", "sha256": hashlib.sha256(files["a.png"]).hexdigest(), "caption": "an astronaut"},
            {"url": f"{server.url}/b.jpg", "sha256": None, "caption": "coffee"},
            {"url": f"{server.url}/flaky.png", "sha256": None, "caption": ""},
            {"url": f"{server.url}/missing.png", "sha256": None, "caption": ""},
            {"url": f"{server.url}/corrupt.png", "sha256": None, "caption": ""},
            {"url": f"{server.url}/tampered.png", "sha256": "0" * 64, "caption": ""},
        ]
        pd.DataFrame(rows).to_parquet(tmp_path / "urls.parquet")
        params = {"source": "urls", "image_size": 32, "crops_per_photo": 1,
                  "urls": {"table": str(tmp_path / "urls.parquet"), "sha256_column": "sha256", "caption_column": "caption",
                           "concurrency": 2, "retries": 2, "backoff_s": 0.01, "timeout_s": 5,
                           "allow_private": True}}  # the test server is on loopback
        images, manifest, _, issues = ingest_base_images(params)
    finally:
        server.httpd.shutdown()
    assert len(images) == 3 and set(manifest["source"]) == {"urls"}
    assert manifest.set_index("source_path").at[f"{server.url}/a.png", "caption"] == "an astronaut"
    reasons = dict(zip(issues["item"].str.rsplit("/", n=1).str[-1], issues["reason"]))
    assert set(reasons) == {"missing.png", "corrupt.png", "tampered.png"}
    assert reasons["missing.png"].startswith("HTTP 404")
    assert "not a readable image" in reasons["corrupt.png"]
    assert "sha256 mismatch" in reasons["tampered.png"] and "after 3 attempts" in reasons["tampered.png"]
    assert server.state["flaky"] == 1  # failed once with 503, then the retry succeeded
    assert server.state["peak"] == 2  # downloads overlapped, within the concurrency limit


# --------------------------------------------------------------- IMDL-BenCo's own dataset classes
def _imdlbenco_datasets():
    try:
        from IMDLBenCo.datasets.iml_datasets import JsonDataset, ManiDataset
    except Exception as exc:  # an optional, --no-deps install (see ENVIRONMENT.md)
        pytest.skip(f"IMDL-BenCo is not importable here ({type(exc).__name__}: {exc}); "
                    "pip install --no-deps imdlbenco==0.1.45 albumentations==1.3.0 qudida fvcore iopath yacs portalocker")
    return ManiDataset, JsonDataset


def test_imdl_export_loads_with_imdlbenco_own_dataset_classes(exported, dataset, tmp_path, monkeypatch):
    """The folder form holds forgeries only (ManiDataset labels every Tp/Gt pair tampered); the
    JSON form lists authentic images as Negative, with paths IMDL-BenCo opens from any folder."""
    ManiDataset, JsonDataset = _imdlbenco_datasets()
    monkeypatch.chdir(tmp_path)  # IMDL-BenCo opens JSON entries against the working directory
    splits = dataset["splits"]
    for split in ("train", "val"):
        rows = splits[splits["split"] == split]
        n_edited, n_authentic = int((rows["kind"] == "edited").sum()), int((rows["kind"] != "edited").sum())
        assert n_authentic > 0  # the case that used to be exported wrongly
        folder = ManiDataset(str(exported / "imdl" / split), is_resizing=True, output_size=(SIZE, SIZE))
        items = [folder[i] for i in range(len(folder))]
        assert len(items) == n_edited and all(item["label"] == 1 for item in items)
        assert all(item["mask"].sum() > 0 for item in items)  # every Tp has edited pixels
        listed = JsonDataset(str(exported / "imdl" / f"{split}.json"), is_resizing=True, output_size=(SIZE, SIZE))
        items = [listed[i] for i in range(len(listed))]
        assert sorted(item["label"] for item in items) == [0] * n_authentic + [1] * n_edited
        by_name = {item["name"].rsplit(".", 1)[0]: item for item in items}
        for row in rows[rows["kind"] == "edited"].itertuples():
            expected = dataset["label_maps"][row.item_id] > 0
            assert np.array_equal(by_name[row.item_id]["mask"][0].numpy() > 0.5, expected)


# ------------------------------------------------------------------------ forgery-only, label space
def _forgery_only_imdl(root: Path, names: list[str]) -> None:
    rng = np.random.default_rng(1)
    for index, name in enumerate(names):
        image = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        mask = np.zeros((48, 48), np.uint8)
        mask[4 + index:24 + index, 8:30] = 255
        png(root / "Tp" / f"{name}.png", image)
        png(root / "Gt" / f"{name}.png", mask)


def test_the_label_space_of_an_import_is_one_parameter(tmp_path):
    _forgery_only_imdl(tmp_path / "casia", ["a", "b"])
    params = {"source": "imdl", "imdl": {"root": str(tmp_path / "casia"), "generator": "LaMa"},
              "published": {"generators": GENERATORS, "image_size": None, "label_space": "SDXL;LaMa;MAT"}}
    _, manifest, _, _, labels, _, samples, provenance, _ = import_published(params)
    assert manifest.empty and len(samples) == 2  # forgery-only: valid
    assert set(samples["label_kind"]) == {"semantic"} and {g for names in samples["generators"] for g in names} == {"LaMa"}
    assert all(set(np.unique(labels[s]())) == {0, 2} for s in samples["sample_id"])  # LaMa = 2nd class
    assert set(provenance["generator"]) == {"LaMa"}
    params["published"]["label_space"] = ["SDXL", "lama"]  # a list works too; names match loosely
    assert set(import_published(params)[6]["label_kind"]) == {"semantic"}
    params["published"]["label_space"] = "SDXL;;SDXL"
    with pytest.raises(ValueError, match="label_space"):
        import_published(params)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["imdl", "diffseg30k"])
def test_a_forgery_only_import_runs_through_kedro_and_the_gate_says_what_it_counted(project_copy: Path, fmt):
    """``kedro run --pipeline import --params ingest.source=<fmt>`` on an IMDL-BenCo Tp/Gt folder or
    a DiffSeg30k archive of edited pairs, without authentic images (main: the ingest gate stopped
    it, 'row count >= 1' on base_manifest)."""
    from kedro.framework.cli.utils import _split_params
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    raw = project_copy / "data" / "01_raw" / fmt
    _forgery_only_imdl(raw, ["x", "y", "z"])
    if fmt == "diffseg30k":  # the same pairs as NNNNNNNN.image.png / NNNNNNNN.mask.png
        for number, name in enumerate(["x", "y", "z"]):
            (raw / "Tp" / f"{name}.png").rename(raw / f"{number:08d}.image.png")
            (raw / "Gt" / f"{name}.png").rename(raw / f"{number:08d}.mask.png")
    expected = ["x", "y", "z"] if fmt == "imdl" else ["00000000", "00000001", "00000002"]
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="tiny",
                             runtime_params=_split_params(None, None, f"ingest.source={fmt}")) as session:
        session.run(pipeline_name="import")
    data = project_copy / "data"
    samples = pd.read_parquet(next(data.rglob("samples.parquet")))
    assert sorted(samples["sample_id"]) == expected and set(samples["label_kind"]) == {"binary"}
    assert pd.read_parquet(next(data.rglob("base_manifest.parquet"))).empty
    assert sorted(p.name for p in next(data.rglob("edited_images")).iterdir()) == [f"{e}.png" for e in expected]
    gate = (data / "08_reporting" / "gates" / "ingest.md").read_text()
    assert "counted: authentic (base) images in base_manifest" in gate
