"""The DiffSeg30k recipe (conf/diffseg30k, card docs/recipes/diffseg30k.md) end to end at tiny scale:
``--env diffseg30k+diffseg30k-tiny`` on a small COCO-format fixture written here (bundled
scikit-image photos at COCO's 640 x 480), every model a tiny random one of the recipe's
architectures (tests/recipes/diffseg30k_tiny.py): ingest -> perceive -> inpaint -> filter ->
split -> train -> evaluate, then Tables 2-7 with every cell a number or "n/a" with its reason."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import cv2
import pandas as pd
import pytest
import skimage.data
import yaml
from safetensors import safe_open

from models.generators import GENERATORS, TEXT_TO_IMAGE
from pipelines.contract.ids import pool_of
from pipelines.contract.labels import generator_entries, generator_names
from pipelines.contract.params import PaperTable
from pipelines.evaluate.paper_tables import build_tables
from tests.recipes.diffseg30k_tiny import build_diffseg30k_tiny

REPO = Path(__file__).resolve().parents[2]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
# the real-only pools (ingest.real_pools: 2 + 2 at tiny scale): the fixture's next photos, ids 19-22
POOL_PHOTOS = ("camera", "coins", "hubble_deep_field", "immunohistochemistry")
# COCO image ids 15-18: with seed 0 the 8:2 cut puts photo 18 in validation and its real base's sample
# draws SDXL, so a LoRA twin is validated and Table 4 gets numbers (ids decide cuts and draws).
FIRST_ID = 15
EIGHT = ["sd2", "sd3.5", "sdxl", "flux", "glide", "kolors", "hunyuan", "kandinsky2.2"]
VARIANTS = ["fcn8s", "cnnspot", "universal_fake_det",
            *(f"{who}leave-out-{pair}" for who in ("", "ufd-") for pair in ("flux+hunyuan", "sd2+sd3.5", "glide+kolors"))]


@pytest.mark.parametrize("env", ["diffseg30k", "diffseg30k-tiny"])
def test_the_recipe_generators_are_real_entries_with_accepted_arguments(env):
    entries = generator_entries(yaml.safe_load((REPO / "conf" / env / "globals.yml").read_text())["generators"])
    for entry in entries:
        registry = GENERATORS if entry["task"] == "inpaint" else TEXT_TO_IMAGE
        assert registry.meta(entry["generator"]).get("supported", True) is not False, entry["name"]
        accepted = inspect.signature(registry.get(entry["generator"])).parameters
        assert set(entry["kwargs"]) <= set(accepted), (entry["name"], set(entry["kwargs"]) - set(accepted))
    assert generator_names([e for e in entries]) == EIGHT  # the label space: the paper's eight, nothing else
    lora = next(e for e in entries if e["name"] == "sdxl-hyper-lora")
    assert lora["label"] == "sdxl" and lora["kwargs"]["scheduler"] == "DDIMScheduler"


@pytest.fixture(scope="session")
def diffseg30k_tiny_models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("diffseg30k-tiny")
    build_diffseg30k_tiny(root)
    return root / "06_models" / "tiny"


def write_coco(raw: Path, names=PHOTOS) -> None:
    """A COCO-format fixture: 640 x 480 JPEGs, an instances JSON (no annotations: the recipe's regions
    come from the VLM + Grounded-SAM) and a captions JSON."""
    (raw / "images").mkdir(parents=True)
    (raw / "annotations").mkdir()
    images, captions = [], []
    for index, name in enumerate(names, start=FIRST_ID):
        photo = getattr(skimage.data, name)()
        photo = cv2.resize(photo if photo.ndim == 3 else cv2.cvtColor(photo, cv2.COLOR_GRAY2RGB), (640, 480))
        cv2.imwrite(str(raw / "images" / f"{index:012d}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        images.append({"id": index, "file_name": f"{index:012d}.jpg", "height": 480, "width": 640})
        captions.append({"id": index, "image_id": index, "caption": f"a photo of a {name}"})
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    (raw / "annotations" / "instances_tiny.json").write_text(
        json.dumps({"images": images, "categories": categories, "annotations": []}))
    (raw / "annotations" / "captions_tiny.json").write_text(json.dumps({"images": images, "annotations": captions}))


@pytest.mark.slow
def test_diffseg30k_tiny_run_fills_tables_2_to_7(project_copy, diffseg30k_tiny_models):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    data = project_copy / "data"
    write_coco(data / "01_raw" / "coco", PHOTOS + POOL_PHOTOS)
    (data / "06_models").mkdir(parents=True)
    (data / "06_models" / "tiny").symlink_to(diffseg30k_tiny_models, target_is_directory=True)
    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="diffseg30k+diffseg30k-tiny") as session:
        session.run()

    manifest = pd.read_parquet(data / "02_intermediate" / "base_manifest.parquet")
    # half the edited bases AI; 2 + 2 further real photos in the real-only pools (sec. 4)
    assert sorted(manifest["kind"].value_counts().to_dict().items()) == [("ai", 4), ("real", 4), ("real-only", 4)]
    assert {int(manifest["height"].max()), int(manifest["width"].max())} == {64}
    pools = manifest[manifest["kind"] == "real-only"]
    assert sorted(pools["base_id"].map(pool_of)) == ["authentic", "authentic", "negatives", "negatives"]
    edited_photos = set(manifest.loc[manifest["kind"] != "real-only", "group_id"])
    assert not edited_photos & set(pools["group_id"])  # disjoint COCO image ids
    samples = pd.read_parquet(data / "04_feature" / "samples.parquet")
    assert not set(samples["base_id"]) & set(pools["base_id"])  # never perceived nor edited
    tables = {p.stem: pd.read_parquet(p) for p in (data / "05_model_input" / "splits").glob("*.parquet")}
    for name, table in tables.items():  # no photo on two sides, pools placed only where split.pools says
        assert (table.groupby("group_id")["split"].nunique() == 1).all(), name
        placed = table.loc[table["base_id"].map(pool_of).notna()]
        want = {"authentic"} if name == "random" or name.startswith("leave-out-") else \
            {"negatives"} if name.startswith("classifier") else set()
        assert set(placed["base_id"].map(pool_of)) == want and set(placed["split"]) <= {"train"}, name
    assert not (tables["random"]["split"].eq("train") & tables["random"]["kind"].eq("authentic")
                & tables["random"]["base_id"].map(pool_of).isna()).any()  # n_authentic_train 0: the pool only
    provenance = pd.read_parquet(data / "04_feature" / "provenance.parquet")
    # turn k's prompt written on turn k-1's output (tests/recipes/test_diffseg30k_prompts.py shows it
    # image by image; random tiny GroundingDINO + SAM masks overlap, so here most samples have one turn)
    later = provenance["turn"] >= 2
    assert (provenance.loc[later, "prompt_image"] == "turn " + (provenance.loc[later, "turn"] - 1).astype(str)
            + " output").all()
    assert (provenance.loc[~later, "prompt_image"] == "base image").all()
    assert "sdxl-hyper-lora" not in set(provenance.loc[~provenance["sample_id"].str.contains("+", regex=False),
                                                       "generator"])  # the LoRA only re-edits

    metrics = json.loads((data / "08_reporting" / "metrics.json").read_text())
    assert metrics["semantic"]["class_names"][1:] == EIGHT
    params = yaml.safe_load((project_copy / "conf" / "diffseg30k" / "parameters_evaluate.yml").read_text())["evaluate"]
    tables = build_tables(metrics, [PaperTable.model_validate(t) for t in params["paper_tables"]])
    assert [t["id"] for t in tables] == [f"table{k}" for k in range(2, 8)]
    cells = [(t["id"], row["label"], c) for t in tables for row in t["rows"] for c in row["cells"]]
    # every cell: our number, or n/a with the reason the conf gives or the protocol's own "skipped"
    for where in cells:
        assert where[2]["ours"] is not None or where[2]["na"], where
        assert not where[2]["na"].startswith(("not computed", "not a number")), where
    numbers = {(t, label) for t, label, c in cells if c["ours"] is not None}
    assert {("table2", "DeepLabv3+ (ResNet-50)"), ("table3", "DeepLabv3+ (ResNet-50): JPEG 60"),
            ("table3", "DeepLabv3+ (ResNet-50): resize 1024"), ("table5", "DeepLabv3+ (ResNet-50): Baseline (8 editors)"),
            ("table4", "DeepLabv3+: edits by SDXL"), ("table4", "DeepLabv3+: edits by SDXL-LoRA")} <= numbers
    # one run trained and scored every other detector of Tables 2, 5, 6 and 7 (train.variants)
    variants = metrics["variants"]
    assert set(variants) == set(VARIANTS)
    for name in variants:  # each saved as a checkpoint of its own, trained for real (its header: no weights read)
        with safe_open(str(data / "06_models" / "variants" / name / "binary.safetensors"), framework="pt") as saved:
            config = json.loads(saved.metadata()["config"])
        assert config["variant"] == name and config["history"]["steps"] == 1
    assert variants["fcn8s"]["semantic"]["model"] == "fcn8s" and variants["cnnspot"]["binary"]["model"] == "cnnspot"
    assert {"sd2", "sd3.5"} <= set(variants["leave-out-sd2+sd3.5"]["binary"]["held_out_generators"])
    assert variants["ufd-leave-out-glide+kolors"]["binary"]["split"] == "test"
    filled = {("table2", "FCN-8s"), ("table6", "CNNSpot"), ("table6", "UniversalFakeDet"),
              ("table7", "UniversalFakeDet: Baseline (8 editors)"),
              *((table, f"{who}: generalise to {pair}") for pair in ("Flux_Hunyuan", "SD2_SD3.5", "Glide_Kolors")
                for table, who in (("table5", "DeepLabv3+ (ResNet-50)"), ("table7", "UniversalFakeDet")))}
    for table, label, cell in cells:
        if (table, label) in filled:  # every cell of these rows is a number (formerly "n/a: a run of its own")
            assert cell["ours"] is not None, (table, label, cell)
    study = metrics["semantic"]["protocols"]["lora_as_parent"]
    assert study["pairs"][0]["variant_as_parent"]["n_fake"] >= 1  # a validated twin, scored as SDXL
    text = (data / "08_reporting" / "paper_tables.md").read_text()
    assert all(t["title"] in text for t in tables)
