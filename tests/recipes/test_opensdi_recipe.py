"""The OpenSDI recipe end to end at tiny scale: ``kedro run --env opensdi+opensdi-tiny``.

A Megalith-style URL table (photos served on loopback) -> the four VLM families (tiny random
checkpoints) writing the instructions (add / remove / change) -> Florence-2 boxes (tiny, decoded
within its answer format) refined by SAM into regions -> AutoPipelineForInpainting's pipelines on
tiny SD1.5 / SD2.1 / SDXL / SD3 / FLUX.1 checkpoints with CLIP best-of-2 -> classic edits at random
intervals and whole images under their subset's label -> Table 2's train-on-SD1.5 split (counts x
1e-4) -> MaskCLIP (tiny CLIP and MAE) -> Table 3 / Table 4 / Fig. 5 in paper_tables.md, each cell a
number or n/a with its reason. The tiny models are random: the numbers are not the paper's, the
paths are.
"""

from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import skimage.data
import yaml

from models.generators.tiny import build_offline_clip_tokenizer
from models.generators.tiny_zoo import build_tiny_flux, build_tiny_sd, build_tiny_sd3, build_tiny_sdxl
from models.perception.tiny import tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field", "immunohistochemistry"]
# bundled with scikit-image (no download)
VLMS = ["llama-3.2-vision", "llava", "internvl", "qwen2-vl"]


def build_tiny_clip(folder: Path) -> Path:
    """A tiny random CLIP with its processor (byte-level tokenizer built offline). Seed 2: its random
    text and image embeddings point the same way for photos, so CLIPScores (clamped at 0) are
    positive and differ between images (with seed 0 most are 0: every candidate ties)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    config = CLIPConfig(
        text_config=dict(vocab_size=514, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(2)
    CLIPModel(config).save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=build_offline_clip_tokenizer()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Every checkpoint the tiny layer names, built once per session from configs."""
    root = tmp_path_factory.mktemp("opensdi-tiny-models")
    build_tiny_sd(root / "sd1.5", inpainting=False, seed=0)   # base checkpoints, as AutoPipelineForInpainting loads them
    build_tiny_sd(root / "sd2.1", inpainting=False, seed=1)
    build_tiny_sdxl(root / "sdxl", inpainting=False, seed=2)
    build_tiny_sd3(root / "sd3", seed=3)
    build_tiny_flux(root / "flux", fill=False, seed=4)
    build_tiny_clip(root / "clip")
    for family in [*VLMS, "florence2", "sam"]:
        tiny_checkpoint(family, root)
    return root


@pytest.fixture
def url_server(tmp_path):
    """Photos (each also mirrored left-right and upside down: 21 distinct images) served over HTTP on
    loopback (21: enough that Table 2's train side holds SD1.5 fakes of each kind at tiny scale)."""
    folder = tmp_path / "served"
    folder.mkdir()
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        for k, variant in enumerate((image, image[:, ::-1], image[::-1])):
            cv2.imwrite(str(folder / f"{name}-{k}.png"), cv2.cvtColor(np.ascontiguousarray(variant), cv2.COLOR_RGB2BGR))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args, **kwargs: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", sorted(p.name for p in folder.iterdir())
    server.shutdown()
    thread.join()


def _cells(table_id: str, metrics: dict, params: dict) -> list[tuple[str, float | None, str]]:
    from pipelines.contract.params import EvaluateParams, params_of
    from pipelines.evaluate.paper_tables import build_tables

    tables = [t for t in params_of(EvaluateParams, params).paper_tables if t.id == table_id]
    (built,) = build_tables(metrics, tables)
    return [(column, cell["ours"], cell["na"]) for row in built["rows"] for column, cell in zip(built["columns"], row["cells"])]


@pytest.mark.slow
def test_the_opensdi_recipe_runs_end_to_end_at_tiny_scale(project_copy, tiny_models, url_server):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    base_url, files = url_server
    (project_copy / "data" / "06_models").mkdir(parents=True)
    (project_copy / "data" / "06_models" / "tiny").symlink_to(tiny_models, target_is_directory=True)
    raw = project_copy / "data" / "01_raw"
    raw.mkdir(parents=True)
    pd.DataFrame({"url": [f"{base_url}/{name}" for name in files],  # ids: the names (the port changes per run)
                  "id": [Path(name).stem for name in files]}).to_parquet(raw / "megalith10m_urls.parquet")

    bootstrap_project(project_copy)
    with KedroSession.create(project_path=project_copy, env="opensdi+opensdi-tiny") as session:
        params = session.load_context().params
        session.run()

    data = project_copy / "data"
    provenance = pd.read_parquet(data / "04_feature" / "provenance.parquet")
    regions = pd.read_parquet(data / "03_primary" / "regions.parquet")
    splits = pd.read_parquet(data / "05_model_input" / "splits.parquet")
    metrics = json.loads((data / "08_reporting" / "metrics.json").read_text())
    tables_md = (data / "08_reporting" / "paper_tables.md").read_text()

    # Perception: the instructions were written by the four VLM families (or their templates
    # when a tiny random model's answer did not parse, recorded as such).
    sources = set(regions["prompt_source"])
    assert sources and all(s.startswith("vlm:") for s in sources)
    assert {s.split(":")[1] for s in sources} <= set(VLMS)
    # Masks: Florence-2 grounded the names (the tiny vocabulary: the random VLMs' lists do not
    # parse, recorded) and SAM refined each box; the regions are built from those masks.
    assert set(regions["perceiver"]) == {"florence2_sam"}
    edited = regions[regions["edit_type"] != "add"]
    assert set(edited["label_source"]) <= {"florence2_sam"} | {f"vlm:{v}:parse_failed->vocabulary" for v in VLMS}
    # "Add" instructions (one turn): the random VLMs' proposals do not parse, so the template object
    # goes on the sample's drawn region, recorded as such; the inpaint prompt names the object.
    adds = regions[regions["edit_type"] == "add"]
    assert len(adds) and set(adds["kind"]) == {"thing"}
    for row in adds.itertuples():
        assert row.prompt_source.endswith(":parse_failed->template") and row.label_source == "template->drawn_region"
        assert row.description == f"add {row.prompt}" and row.label in row.prompt
    added = provenance[provenance["region_id"].isin(adds["region_id"])]
    assert len(added) == len(adds) and set(added["edit_type"]) == {"add"}
    assert (added.set_index("region_id")["prompt"] == adds.set_index("region_id")["prompt"]).all()
    instructions = {r: json.loads(d)["instruction"] for r, d in zip(added["region_id"], added["details"])}
    assert instructions == dict(zip(adds["region_id"], adds["description"]))  # provenance keeps the instruction
    # Classic edits at random intervals: after every k in 1..9 diffusion edits (sample-id order).
    order = provenance[provenance["edit_type"] != "full_synthesis"].sort_values(["sample_id", "turn"])
    classic = [i for i, g in enumerate(order["generator"]) if g.endswith(("-copy_move", "-splicing"))]
    gaps = [classic[0]] + [b - a - 1 for a, b in zip(classic, classic[1:])] if classic else []
    assert classic and all(1 <= k <= 9 for k in gaps) and len(order) - classic[-1] - 1 <= 9
    # Inpaint: every diffusion edit kept the best of its two CLIP-scored seeds; classic edits run once.
    diffusion = provenance[provenance["generator"].isin(["sd1.5", "sd2.1", "sdxl", "sd3", "flux"])]
    for row in diffusion.itertuples():
        assert len(row.candidate_seeds) == 2 and len(row.candidate_scores) == 2
        assert row.seed == row.candidate_seeds[int(np.argmax(row.candidate_scores))]
    # Whole images are their model's class (label maps all that class) and in Table 2's split.
    whole = provenance[provenance["edit_type"] == "full_synthesis"]
    labels = {g["name"]: g.get("label", g["name"]) for g in params["evaluate"]["generators"]}
    assert len(whole) and all(labels[g] in {"sd1.5", "sd2.1", "sdxl", "sd3", "flux"} for g in whole["generator"])
    # Table 2: train holds only the SD1.5 class (inpaint, classic, whole), real : fake 1 : 1.
    train = splits[splits["split"] == "train"]
    assert set(splits["protocol"]) == {"train-on-sd1.5"} and set(splits["split"]) == {"train", "test"}
    assert {labels[g] for gens in train.loc[train["kind"] == "edited", "generators"] for g in gens} == {"sd1.5"}
    assert (train["kind"] == "edited").sum() == (train["kind"] == "authentic").sum() > 0

    # Table 3 (and 4, Fig. 5): every cell a number or n/a with its reason, the paper's beside it.
    assert metrics["binary"]["model"] == "maskclip" and metrics["binary"]["split"] == "test"
    for table_id in ("table3", "table4", "figure5-blur", "figure5-jpeg"):
        for column, ours, why in _cells(table_id, metrics, params["evaluate"]):
            assert (ours is not None and np.isfinite(ours)) or why, (table_id, column)
    table3 = _cells("table3", metrics, params["evaluate"])
    assert any(ours is not None for _, ours, _ in table3)  # the test generators with local edits are scored
    assert "Table 3: pixel-level localization" in tables_md and "0.6712" in tables_md and "0.4941" in tables_md
    conf = yaml.safe_load((REPO / "conf" / "opensdi" / "parameters_evaluate.yml").read_text())
    assert [t["id"] for t in conf["evaluate"]["paper_tables"]] == ["table3", "table4", "figure5-blur", "figure5-jpeg"]
