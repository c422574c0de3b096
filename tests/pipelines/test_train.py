"""The train stage: every registry entry through the Kedro train pipeline with the project's own
parameters (conf/base + conf/tiny), task selection with a marked placeholder that evaluate reads,
train.dataset / exclude_generators (cross-generator protocol), lazy samples, and resume through
params in a real KedroSession."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from PIL import Image

from models.detectors import detector_from_state, list_detectors
from pipelines.datasets import SafetensorsCheckpointDataset
from pipelines.train.nodes import (
    SplitSamples,
    drop_excluded,
    excluded_names,
    held_out_of_protocol,
    selected_tasks,
    trainer_config,
)
from pipelines.train.pipeline import create_pipeline
from tests.models.test_detectors import TINY
from tests.stages import contract_table

REPO = Path(__file__).resolve().parents[2]
SIZE = 48
GENERATORS = ["telea", "navier_stokes", "tiny-sd"]
# item -> (split, generators in turn order); label value = 1 + index in GENERATORS
EDITED = {
    "e0": ("train", ["telea"]), "e1": ("train", ["navier_stokes"]), "e2": ("train", ["tiny-sd"]),
    "e3": ("train", ["telea", "tiny-sd"]), "e4": ("train", ["navier_stokes", "tiny-sd"]),
    "e5": ("train", ["tiny-sd", "navier_stokes"]), "e6": ("val", ["telea"]), "e7": ("val", ["navier_stokes"]),
}
AUTHENTIC = {"b0": "train", "b1": "train", "b2": "val"}


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)


def synthetic_data() -> dict:
    """Images, label maps and split tables shaped like the split stage's outputs."""
    images, labels, rows = {}, {}, []
    for i, (item, (split, gens)) in enumerate(EDITED.items()):
        image, label = _image(i), np.zeros((SIZE, SIZE), np.uint8)
        for turn, gen in enumerate(gens):
            top = 4 + 12 * turn
            image[top:top + 16, 8:30] = 200 + 20 * turn
            label[top:top + 16, 8:30] = GENERATORS.index(gen) + 1
        images[item], labels[item] = image, label
        rows.append({"item_id": item, "split": split, "kind": "edited", "image_dataset": "edited_images", "image_key": item,
                     "label_key": item, "base_id": f"base{i}", "group_id": f"g{i}", "last_generator": gens[-1],
                     "generators": list(gens), "protocol": "random"})
    bases = {item: _image(100 + i) for i, item in enumerate(AUTHENTIC)}
    for item, split in AUTHENTIC.items():
        rows.append({"item_id": item, "split": split, "kind": "authentic", "image_dataset": "base_images", "image_key": item,
                     "label_key": "", "base_id": item, "group_id": f"a{item}", "last_generator": "", "generators": [],
                     "protocol": "random"})
    splits = pd.DataFrame(rows)
    leave_out = splits.copy()
    leave_out["protocol"] = "leave-out-telea"
    has_telea = leave_out["generators"].map(lambda g: "telea" in g)
    leave_out["split"] = np.where(has_telea, "test", leave_out["split"].replace({"val": "test"}))
    protocols = contract_table("split_protocols", pd.DataFrame([{"protocol": "random", "held_out": []},
                                                                 {"protocol": "leave-out-telea", "held_out": ["telea"]}]))
    return {"edited_images": images, "label_maps": labels, "base_images": bases, "splits": splits,
            "split_tables": {"random": splits, "leave-out-telea": leave_out}, "split_protocols": protocols}


def project_params(**overrides) -> dict:
    """params:train exactly as `kedro run --env tiny` reads it, with runtime overrides on top."""
    loader = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="tiny",
                               merge_strategy={"parameters": "soft", "globals": "soft"}, runtime_params={"train": overrides})
    return loader["parameters"]["train"]


def run_train(tmp_path: Path, data: dict, **overrides) -> dict:
    """The train pipeline on an in-memory catalog; checkpoints through the real safetensors dataset."""
    catalog = DataCatalog()
    for name in ("splits", "split_tables", "split_protocols"):
        catalog[name] = data[name]
    for name in ("edited_images", "label_maps", "base_images"):
        catalog[name] = {key: (lambda value=value: value) for key, value in data[name].items()}
    catalog["params:train"] = project_params(**overrides)
    out = {}
    for task in ("binary", "semantic"):
        out[task] = SafetensorsCheckpointDataset(filepath=str(tmp_path / f"detector_{task}.safetensors"))
        catalog[f"detector_{task}"] = out[task]
    SequentialRunner().run(create_pipeline(), catalog)
    return {task: dataset.load() for task, dataset in out.items()}


def tiny_overrides(entry: str, tmp_path: Path, **trainer) -> dict:
    return {"model": entry, "model_kwargs": TINY[entry],
            "trainer": {"steps": 2, "batch_size": 2, "crop_size": 32, "checkpoint_dir": str(tmp_path / "ckpt"), **trainer}}


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


def test_every_registry_entry_is_covered():
    # IMDL-BenCo's binary-only entries are trained in tests/models/test_zoo.py and the baselines test.
    assert set(TINY) == {name for name in list_detectors() if not name.startswith("imdl:")}


# Model construction dominates (timm's truncated-normal init of the Mix Transformers, VGG16's
# convolutions): these take over 10 s on the 2-core machine, the rest 1-5 s.
HEAVY = {"nfa_vit", "fcn8s", "segformer"}


@pytest.mark.parametrize("entry", [pytest.param(e, marks=pytest.mark.slow) if e in HEAVY else e for e in sorted(TINY)])
def test_every_registry_entry_trains_through_the_pipeline(entry, data, tmp_path):
    checkpoints = run_train(tmp_path, data, **tiny_overrides(entry, tmp_path))
    for task, names in (("binary", ["untouched", "edited"]), ("semantic", ["untouched", *GENERATORS])):
        config = checkpoints[task]["config"]
        assert config["task"] == task and config["class_names"] == names and "skipped" not in config
        assert config["detector"]["name"] == entry and config["detector"]["num_classes"] == len(names)
        assert config["history"]["steps"] == 2 and config["history"]["stopped_by"] == "steps"
        assert np.isfinite(config["history"]["first_loss"]) and config["history"]["images_per_second"] > 0
        assert config["trainer"]["augment"]["jpeg_quality"] == [50, 100]  # conf/base's robustness augmentations
        assert config["trainer"]["checkpoint_dir"] == str(tmp_path / "ckpt" / task)
        assert (tmp_path / "ckpt" / task / "last.json").exists()
        assert config["held_out_generators"] == []
        assert config["dataset"] == {"table": "splits", "protocol": "random", "split": "train", "n_items": 8,
                                     "n_edited": 6, "n_authentic": 2, "n_dropped_excluded": 0}
        model = detector_from_state(checkpoints[task]["state"], config["detector"])  # what evaluate does
        assert model.num_classes == len(names)


def test_task_selection_leaves_a_marked_placeholder_that_evaluate_flags(data, tmp_path):
    from pipelines.evaluate.nodes import evaluate_checkpoint

    checkpoints = run_train(tmp_path, data, task="semantic", **tiny_overrides("deeplabv3plus", tmp_path))
    binary, semantic = checkpoints["binary"]["config"], checkpoints["semantic"]["config"]
    assert "skipped" not in semantic and semantic["history"]["steps"] == 2
    assert "does not select the binary task" in binary["skipped"]
    assert binary["history"] == {"steps": 0, "stopped_by": "skipped"}
    assert not (tmp_path / "ckpt" / "binary").exists()

    loaders = {name: {k: (lambda v=v: v) for k, v in data[name].items()} for name in ("edited_images", "label_maps", "base_images")}
    samples = pd.DataFrame({"sample_id": list(EDITED), "edited_area_ratio": 0.2})
    provenance = pd.DataFrame([{"sample_id": item, "turn": t + 1, "generator": g, "kind": "thing", "label": GENERATORS.index(g) + 1}
                               for item, (_, gens) in EDITED.items() for t, g in enumerate(gens)])
    metrics, *_ = evaluate_checkpoint(checkpoints["binary"], data["splits"], samples, provenance, loaders["edited_images"],
                                      loaders["label_maps"], loaders["base_images"], {"run": "in_domain", "n_overlays": 1})
    assert metrics["training"]["stopped_by"] == "skipped"
    assert any(note.startswith("NOT TRAINED") for note in metrics["notes"])


def test_exclude_generators_drops_every_item_they_touched_and_is_recorded(data, tmp_path):
    assert excluded_names(["Telea"], [{"name": g} for g in GENERATORS]) == ["telea"]
    with pytest.raises(ValueError, match="'flux', which is not in the generator list"):
        excluded_names(["flux"], [{"name": g} for g in GENERATORS])
    train = data["splits"][data["splits"]["split"] == "train"]
    kept, dropped = drop_excluded(train, ["telea"])
    assert dropped == 2 and set(kept["item_id"]) == {"e1", "e2", "e4", "e5", "b0", "b1"}
    for image, label in SplitSamples(kept, data["edited_images"], data["label_maps"], data["base_images"]):
        assert 1 not in np.unique(label)  # no pixel of telea's label left in training

    overrides = tiny_overrides("deeplabv3plus", tmp_path, val_every=1)
    checkpoints = run_train(tmp_path, data, task="binary", exclude_generators=["telea"], **overrides)
    config = checkpoints["binary"]["config"]
    assert config["held_out_generators"] == ["telea"] and config["excluded_generators"] == ["telea"]
    assert config["dataset"]["n_items"] == 6 and config["dataset"]["n_dropped_excluded"] == 2
    # validation on the val split, minus its telea item
    assert config["dataset"]["val_split"] == "val" and config["dataset"]["n_val"] == 2
    assert config["dataset"]["n_val_dropped_excluded"] == 1
    assert config["history"]["n_validations"] >= 2 and config["history"]["best"]["monitor"] == "miou"


def test_dataset_selects_a_saved_protocol_and_records_its_held_out_generators(data, tmp_path):
    overrides = tiny_overrides("cnnspot", tmp_path)
    checkpoints = run_train(tmp_path, data, task="binary", dataset={"protocol": "leave-out-telea", "split": "train"}, **overrides)
    config = checkpoints["binary"]["config"]
    assert config["dataset"]["table"] == "split_tables/leave-out-telea" and config["dataset"]["protocol"] == "leave-out-telea"
    assert config["dataset"]["n_items"] == 6 and config["held_out_generators"] == ["telea"]
    train_on = pd.DataFrame([{"protocol": "train-on-telea", "kind": "train_on_one", "held_out": [], "train_on": "telea"}])
    assert held_out_of_protocol(train_on, "train-on-telea", [{"name": g} for g in GENERATORS]) == ["navier_stokes", "tiny-sd"]
    with pytest.raises(ValueError, match="'nope' is not a saved split protocol"):
        run_train(tmp_path, data, dataset={"protocol": "nope"}, **overrides)
    with pytest.raises(ValueError, match="val_split='val' has no items"):
        run_train(tmp_path, data, dataset={"protocol": "leave-out-telea"}, **tiny_overrides("cnnspot", tmp_path, val_every=1))


def test_bad_settings_fail_clearly():
    assert selected_tasks("both") == ["binary", "semantic"] and selected_tasks(["semantic"]) == ["semantic"]
    with pytest.raises(ValueError, match="train.task must be"):
        selected_tasks("pixels")
    with pytest.raises(ValueError, match=r"train.trainer: unknown key\(s\) stepz; allowed: amp, augment"):
        trainer_config("binary", {"trainer": {"stepz": 3}})
    from pipelines.train.nodes import model_kwargs_for
    with pytest.raises(ValueError, match="train.model='unet' is not a detector"):
        model_kwargs_for({"model": "unet"})


class CountingLoader:
    """A catalog-like lazy loader that counts its calls (module level, so it pickles)."""

    calls: list[int] = []

    def __init__(self, value):
        self.value = value

    def __call__(self):
        CountingLoader.calls.append(1)
        return self.value


def test_split_samples_decode_lazily_and_pickle(data):
    calls = CountingLoader.calls
    calls.clear()
    images = {k: CountingLoader(v) for k, v in data["edited_images"].items()}
    samples = SplitSamples(data["splits"], images, data["label_maps"], data["base_images"])
    assert calls == [] and len(samples) == len(data["splits"])
    image, label = samples[0]
    assert calls == [1] and image.shape == (SIZE, SIZE, 3) and label.dtype == np.uint8
    assert len(pickle.loads(pickle.dumps(samples))) == len(samples)
    broken = data["splits"].assign(image_key=lambda t: t["image_key"].where(t["item_id"] != "e3", "missing"))
    with pytest.raises(ValueError, match="item e3 names edited_images/missing, which does not exist"):
        SplitSamples(broken, images, data["label_maps"], data["base_images"], where="splits.parquet")


def _write_project_data(root: Path, data: dict) -> None:
    folders = {"edited_images": "04_feature/edited_images", "label_maps": "04_feature/label_maps",
               "base_images": "02_intermediate/base_images"}
    for name, folder in folders.items():
        (root / "data" / folder).mkdir(parents=True, exist_ok=True)
        for key, array in data[name].items():
            Image.fromarray(array).save(root / "data" / folder / f"{key}.png")
    model_input = root / "data" / "05_model_input"
    (model_input / "splits").mkdir(parents=True, exist_ok=True)
    data["splits"].to_parquet(model_input / "splits.parquet")
    for name, table in data["split_tables"].items():
        table.to_parquet(model_input / "splits" / f"{name}.parquet")
    data["split_protocols"].to_parquet(model_input / "split_protocols.parquet")


@pytest.mark.slow
def test_kedro_run_train_with_params_resumes_from_the_checkpoint_dir(project_copy, data):
    """`kedro run --env tiny --pipeline train --params ...` twice: the second run resumes."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    _write_project_data(project_copy, data)
    bootstrap_project(project_copy)
    model = {"model": "deeplabv3plus", "model_kwargs": TINY["deeplabv3plus"], "task": "binary"}

    def run(**trainer):
        params = {"train": {**model, "trainer": {"batch_size": 2, "crop_size": 32, "num_workers": 1, **trainer}}}
        with KedroSession.create(project_path=project_copy, env="tiny", runtime_params=params) as session:
            session.run(pipeline_name="train")
        path = project_copy / "data" / "06_models" / "detector_binary.safetensors"
        return SafetensorsCheckpointDataset(filepath=str(path)).load()["config"]

    first = run(steps=2, checkpoint_every=1)
    assert first["history"]["steps"] == 2 and first["history"]["resumed_from"] is None
    assert first["trainer"]["num_workers"] == 1
    folder = project_copy / "data" / "06_models" / "checkpoints" / "binary"
    assert json.loads((folder / "last.json").read_text())
    second = run(steps=4, resume=True)
    assert second["history"]["resumed_from"] == 2 and second["history"]["steps"] == 4
    assert second["trainer"]["resume"] is True


def test_a_binary_only_entry_trains_binary_and_marks_semantic_skipped(data, tmp_path):
    from models.detectors import detector_tasks

    assert detector_tasks("imdl:mantranet") == ("binary",) and detector_tasks("segformer") == ("binary", "semantic")
    checkpoints = run_train(tmp_path, data, task="binary", model="imdl:mantranet", model_kwargs={"input_size": 32},
                            trainer={"steps": 1, "batch_size": 2, "crop_size": 32, "checkpoint_dir": str(tmp_path / "ckpt")})
    binary, semantic = checkpoints["binary"]["config"], checkpoints["semantic"]["config"]
    assert "skipped" not in binary and binary["history"]["steps"] == 1 and binary["detector"]["name"] == "imdl:mantranet"
    assert semantic["skipped"] == "skipped: imdl:mantranet is binary-only" and semantic["unsupported_task"] is True
    assert checkpoints["semantic"]["state"] == {}
    model = detector_from_state(checkpoints["binary"]["state"], binary["detector"])
    assert model.num_classes == 2


def test_evaluate_reports_a_binary_only_entrys_semantic_task_as_skipped(data, tmp_path):
    from pipelines.evaluate.nodes import build_comparison, build_report, combine_metrics, evaluate_checkpoint

    checkpoints = run_train(tmp_path, data, task="binary", model="imdl:mantranet", model_kwargs={"input_size": 32},
                            trainer={"steps": 1, "batch_size": 2, "crop_size": 32, "checkpoint_dir": str(tmp_path / "ckpt")})
    loaders = {name: {k: (lambda v=v: v) for k, v in data[name].items()} for name in ("edited_images", "label_maps", "base_images")}
    samples = pd.DataFrame({"sample_id": list(EDITED), "edited_area_ratio": 0.2})
    provenance = pd.DataFrame([{"sample_id": item, "turn": t + 1, "generator": g, "kind": "thing", "label": GENERATORS.index(g) + 1}
                               for item, (_, gens) in EDITED.items() for t, g in enumerate(gens)])
    params = {"run": "in_domain", "n_overlays": 1}
    outputs = {task: evaluate_checkpoint(checkpoints[task], data["splits"], samples, provenance, loaders["edited_images"],
                                         loaders["label_maps"], loaders["base_images"], params) for task in ("binary", "semantic")}
    binary, semantic = outputs["binary"][0], outputs["semantic"][0]
    assert binary["protocols"]["in_domain"]["pixel"] and not binary.get("unsupported_task")
    assert semantic["unsupported_task"] and "imdl:mantranet is binary-only" in semantic["notes"][0]
    combine_metrics(binary, semantic)
    html = build_report(binary, semantic, outputs["binary"][3], outputs["semantic"][3], params)
    assert "imdl:mantranet is binary-only" in html
    assert 'id="learning-curve"' not in html  # no checkpoints given: no learning curve section
    # with the checkpoints, the page embeds their learning curve (issue 19)
    html = build_report(binary, semantic, outputs["binary"][3], outputs["semantic"][3], params,
                        checkpoints["binary"], checkpoints["semantic"])
    section = html.split('id="learning-curve"', 1)[1].split("<h2", 1)[0]
    assert 'alt="learning curve"' in section and "data:image/png;base64," in section
    assert "semantic /" not in build_comparison(binary, semantic, params)


def test_a_variant_is_the_train_section_with_its_keys_merged_and_its_own_checkpoint_dir():
    from pipelines.train.nodes import variant_params

    params = {"model": "deeplabv3plus", "task": "both", "models": {"fcn8s": {"backbone": "resnet18"}},
              "trainer": {"steps": 5, "lr": 0.01, "checkpoint_dir": "ckpt", "augment": {"blur_prob": 0.0}},
              "variants": {"fcn8s": {"model": "fcn8s", "trainer": {"lr": 1e-9, "augment": {"jpeg_prob": 0.0}}},
                           "pair": {"task": "binary", "dataset": {"protocol": "leave-out-a+b"}},
                           "bad/name": {}}}
    fcn = variant_params(params, "fcn8s")
    assert (fcn.model, fcn.task, fcn.variants) == ("fcn8s", "both", {})
    assert fcn.trainer == {"steps": 5, "lr": 1e-9, "checkpoint_dir": "ckpt/variants/fcn8s",
                           "augment": {"blur_prob": 0.0, "jpeg_prob": 0.0}}  # merged key by key
    pair = variant_params(params, "pair")
    assert (pair.model, pair.task, pair.dataset.protocol, pair.dataset.split) == ("deeplabv3plus", "binary",
                                                                                  "leave-out-a+b", "train")
    assert params["trainer"]["lr"] == 0.01 and params["trainer"]["checkpoint_dir"] == "ckpt"  # untouched
    with pytest.raises(ValueError, match="file-safe"):
        variant_params(params, "bad/name")
    with pytest.raises(ValueError, match="has no 'nope'"):
        variant_params(params, "nope")
