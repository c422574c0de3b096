"""Baselines protocol: every registry entry trained and evaluated on one split, one table out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.text import TextDataset
from kedro.runner import SequentialRunner

from models.detectors import list_detectors
from pipelines.baselines.nodes import COLUMNS, baselines_markdown, evaluate_binary, run_baselines, select_rows
from pipelines.baselines.pipeline import create_pipeline
from tests.models.test_detectors import TINY
from tests.models.test_zoo import FAMILY, SLOW, TINY_IMDL

REPO = Path(__file__).resolve().parents[2]
SIZE = 32


def synthetic_split() -> dict:
    """Four train and four test items (half edited: a bright rectangle labelled 1)."""
    rng = np.random.default_rng(0)
    images, labels, bases, rows = {}, {}, {}, []
    for index in range(8):
        split, item = ("train" if index < 4 else "test"), f"i{index}"
        image = rng.integers(0, 120, (SIZE, SIZE, 3), dtype=np.uint8)
        if index % 2:
            label = np.zeros((SIZE, SIZE), np.uint8)
            image[6:22, 8:26], label[6:22, 8:26] = 220, 1
            images[item], labels[item] = image, label
            rows.append({"item_id": item, "split": split, "kind": "edited", "image_dataset": "edited_images",
                         "image_key": item, "label_key": item})
        else:
            bases[item] = image
            rows.append({"item_id": item, "split": split, "kind": "authentic", "image_dataset": "base_images",
                         "image_key": item, "label_key": ""})
    wrap = lambda d: {k: (lambda v=v: v) for k, v in d.items()}  # noqa: E731  (lazy partitions)
    return {"splits": pd.DataFrame(rows), "edited_images": wrap(images), "label_maps": wrap(labels), "base_images": wrap(bases)}


def tiny_params(models: dict) -> dict:
    return {"seed": 0, "train_split": "train", "eval_split": "test", "max_items": None, "detectors": list(models), "models": models,
            "trainer": {"steps": 1, "batch_size": 2, "crop_size": None, "log_every": 0, "time_budget_s": None}}


@pytest.fixture(scope="module")
def data():
    return synthetic_split()


ENTRIES = {**TINY, **TINY_IMDL}


def test_every_registry_entry_is_covered():
    # The feature x backbone family shares one adapter path; test_zoo.py trains and reloads it.
    assert set(ENTRIES) | FAMILY == set(list_detectors())


@pytest.mark.parametrize("entry", [pytest.param(e, marks=pytest.mark.slow) if e in SLOW else e for e in sorted(ENTRIES)])
def test_every_registry_entry_is_a_baseline_row(entry, data, monkeypatch, tmp_path):
    if entry == "imdl:mvssnet":
        import torch
        import torchvision

        (tmp_path / "checkpoints").mkdir()
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), tmp_path / "checkpoints" / "resnet50-19c8e357.pth")
        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    params = tiny_params({entry: ENTRIES[entry]})
    rows = select_rows(data["splits"], params)
    table = run_baselines(rows, data["edited_images"], data["label_maps"], data["base_images"], params)
    assert list(table.columns) == COLUMNS and table["detector"].tolist() == [entry]
    row = table.iloc[0]
    assert row["steps"] == 1 and row["train_seconds"] > 0 and row["parameters"] >= row["trainable_parameters"] > 0
    assert row["n_train"] == 4 and row["n_eval"] == 4
    for column in ("image_f1", "image_accuracy", "image_auc"):
        assert 0 <= row[column] <= 1
    pixel = ["pixel_f1", "pixel_iou", "pixel_auc"]
    if entry in ("cnnspot", "universal_fake_det"):  # image-level classifiers: no pixel numbers
        assert table[pixel].isna().all(axis=None)
    else:
        assert all(0 <= row[column] <= 1 for column in pixel)


class Perfect:
    """A stand-in with the detector's predict interface that returns the true mask (to check the
    metric plumbing, not a model): pixel and image numbers must all be 1."""


def test_evaluate_binary_scores_a_perfect_prediction_as_one(monkeypatch, data):
    import pipelines.baselines.nodes as nodes

    samples = nodes.load_samples(data["splits"], {"edited_images": data["edited_images"], "base_images": data["base_images"]},
                                 data["label_maps"])
    truth = {id(image): label for image, label in samples}

    def perfect_predict(model, images, batch_size):
        label = truth[id(images[0])] > 0
        edited = np.where(label, 0.9, 0.1).astype(np.float32)
        return np.stack([1 - edited, edited])[None], np.array([0.9 if label.any() else 0.1], np.float32)

    monkeypatch.setattr(nodes, "predict", perfect_predict)
    row = evaluate_binary(Perfect(), samples, 1)
    assert row == {"image_f1": 1.0, "image_accuracy": 1.0, "image_auc": 1.0, "pixel_f1": 1.0, "pixel_iou": 1.0, "pixel_auc": 1.0}


def test_kedro_pipeline_writes_one_table_for_the_tiny_conf(data, tmp_path):
    loader = OmegaConfigLoader(str(REPO / "conf"), base_env="base", default_run_env="tiny",
                               merge_strategy={"parameters": "soft", "globals": "soft"})
    params = loader["parameters"]["baselines"]
    assert params["detectors"] == ["segformer", "imdl:mantranet"]  # tiny's list replaces base's
    catalog = DataCatalog()
    for name in ("splits", "edited_images", "label_maps", "base_images"):
        catalog[name] = data[name]
    catalog["params:baselines"] = params
    # The catalog's own dataset types (conf/base/catalog.yml), in a temporary folder.
    catalog["baselines_table"] = ParquetDataset(filepath=str(tmp_path / "baselines.parquet"))
    catalog["baselines_report"] = TextDataset(filepath=str(tmp_path / "baselines.md"))
    SequentialRunner().run(create_pipeline(), catalog)
    table, report = catalog["baselines_table"].load(), catalog["baselines_report"].load()
    assert table["detector"].tolist() == ["segformer", "imdl:mantranet"]
    assert report.splitlines()[0].startswith("| detector | pixel F1 | pixel IoU | pixel AUC | image F1 | image Acc | image AUC")
    assert len(report.splitlines()) == 4 and report == baselines_markdown(table)


def test_bad_settings_fail_clearly(data):
    with pytest.raises(ValueError, match="split 'nope' has no rows"):
        select_rows(data["splits"], {**tiny_params({}), "eval_split": "nope"})
    rows = select_rows(data["splits"], tiny_params({}))
    with pytest.raises(ValueError, match="baselines.detectors is empty"):
        run_baselines(rows, data["edited_images"], data["label_maps"], data["base_images"], tiny_params({}))
