"""The evaluation report renders whatever is empty and says what is missing (issue 20 item 3):
a validation split without a single edited image leaves every pixel metric, the breakdowns and
the robustness curves undefined, and the page must still come out, naming each gap."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from kedro.io import DataCatalog

from pipelines.evaluate import figures, report
from tests.pipelines.test_evaluate import evaluate_params, run_evaluate


@pytest.fixture(autouse=True)
def _one_thread_and_no_open_figures():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    plt.close("all")


def _predicts_untouched(saved: dict) -> dict:
    """A registry detector whose head bias makes every pixel "untouched" (a model that learned
    nothing edited): with no edited ground truth either, IoU, F1 and AP are all 0 / 0."""
    bias = saved["state"]["network.segmentation_head.0.bias"].clone()
    bias[:] = -1e4
    bias[0] = 1e4
    saved["state"]["network.segmentation_head.0.bias"] = bias
    return saved


def _authentic_only_run(folder: Path) -> DataCatalog:
    """The evaluate pipeline on a val split of two authentic images (the edited rows moved to
    train): no edited image, so no ground-truth edited pixel, no fake image, no breakdown group."""
    def edited_rows_to_train(splits):
        splits.loc[splits["kind"] == "edited", "split"] = "train"

    return run_evaluate(folder, evaluate_params(n_overlays=2), splits_edit=edited_rows_to_train,
                        detector_edit=_predicts_untouched)


def test_a_split_without_edited_images_renders_a_report_that_says_what_is_missing(tmp_path):
    catalog = _authentic_only_run(tmp_path)
    metrics = catalog.load("metrics_binary")
    assert metrics["n_edited"] == 0 and metrics["n_authentic"] == 2
    page = catalog.load("evaluation_report")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for anchor in ("headline", "robustness", "examples", "conventions"):
        assert f'id="{anchor}"' in page, anchor
    # the gaps are named, not silently dropped
    assert "no edited image" in page
    assert "undefined" in page
    assert "data:image/png;base64," in catalog.load("evaluation_comparison")


def test_figures_with_nothing_to_draw_say_so_instead_of_raising():
    no_values = {"binary": {"protocols": {"in_domain": {}, "robustness": {"conditions": [
        {"name": "JPEG 60", "perturbation": "jpeg", "level": 60, "pixel": None, "image": None}]}}}}
    fig = figures.robustness_figure(no_values)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("undefined" in t for t in texts), texts
    names = ["untouched"]  # a label space with no edited class: no legend entry
    image = np.zeros((8, 8, 3), np.uint8)
    label_map = np.zeros((8, 8), np.uint8)
    grid = figures.examples_grid([(image, label_map, label_map, 0.1)], ["a0"], names, "binary")
    assert grid.ndim == 3 and grid.dtype == np.uint8
    assert report.render_comparison({"empty": {}}).count("&mdash;") >= 10


def test_a_task_whose_image_metrics_are_undefined_is_named_under_the_header():
    """An image-level model on a split with edited and authentic images whose image AP and AUC
    came out undefined: only the image metrics are listed (pixel metrics do not apply to it)."""
    summary = {"n_images": 2, "n_fake": 1, "pixel": None, "pixel_per_image": None,
               "image": {"accuracy": 0.5, "average_precision": None, "roc_auc": None, "f1": 0.0,
                         "recall_fake": 0.0, "recall_real": 1.0, "threshold": 0.5}}
    metrics = {"model": "cnnspot", "split": "val", "n_images": 2, "n_edited": 1, "n_authentic": 1,
               "pixel_level": False, "conventions": {}, **summary, "protocols": {"in_domain": summary}}
    page = report.render_report({"binary": metrics})
    assert "binary task: image AP, image AUC undefined (0 / 0)" in page
    assert "mIoU" not in page.split('<nav>')[0].split("</h1>")[1]  # pixel metrics are not claimed missing
    assert "No pixel-level result" in page
