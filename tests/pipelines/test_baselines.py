"""Baselines protocol: every registry entry trained and evaluated on one split, one table out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.text import TextDataset
from kedro.runner import SequentialRunner

from models.detectors import list_detectors
from pipelines.baselines.nodes import COLUMNS, baselines_markdown, evaluate_binary, run_baselines, select_rows
from pipelines.baselines.pipeline import create_pipeline
from tests.zoo_run import synthetic_split, tiny_params

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    return synthetic_split()


@pytest.mark.slow
def test_one_run_over_every_registry_entry_writes_one_filled_row_each(zoo_run):
    """The tiny baselines run of tests/zoo_run.py (the same split, one step each) over the whole
    registry, ours and IMDL-BenCo's: one row per entry, in the registry's order, every number in
    range; pixel numbers are missing only for the image-level classifiers."""
    table = zoo_run.table
    assert list(table.columns) == COLUMNS and table["detector"].tolist() == list_detectors()
    assert (table["steps"] == 1).all() and (table["train_seconds"] > 0).all()
    assert (table["parameters"] >= table["trainable_parameters"]).all() and (table["trainable_parameters"] > 0).all()
    assert (table["n_train"] == 4).all() and (table["n_eval"] == 4).all()
    image = table[["image_f1", "image_accuracy", "image_auc"]]
    assert image.notna().all(axis=None) and ((image >= 0) & (image <= 1)).all(axis=None)
    pixel = table.set_index("detector")[["pixel_f1", "pixel_iou", "pixel_auc"]]
    classifiers = ["cnnspot", "universal_fake_det"]
    assert pixel.loc[classifiers].isna().all(axis=None)
    localisers = pixel.drop(index=classifiers)
    assert localisers.notna().all(axis=None) and ((localisers >= 0) & (localisers <= 1)).all(axis=None)
    report = baselines_markdown(table)
    assert len(report.splitlines()) == 2 + len(list_detectors())


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
