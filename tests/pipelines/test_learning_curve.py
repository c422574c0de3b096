"""The learning-curve figure drawn from the validation rounds a checkpoint records."""

from __future__ import annotations

import math

import pytest

from pipelines.evaluate.learning_curve import learning_curve_figure, validation_points


def _checkpoint(points: list[dict], steps: int = 300) -> dict:
    return {"state": {}, "config": {"detector": {"name": "srm_unet"},
                                    "history": {"steps": steps, "stopped_by": "steps", "validation": points}}}


def test_each_task_plots_its_validation_metrics_against_steps():
    binary = _checkpoint([{"step": 200, "miou": 0.4, "pixel_accuracy": 0.8, "image_accuracy": 0.7},
                          {"step": 100, "miou": 0.2, "pixel_accuracy": 0.7, "image_accuracy": 0.6}])
    semantic = _checkpoint([{"step": 100, "miou": 0.1, "pixel_accuracy": 0.6, "image_accuracy": math.nan}])
    fig = learning_curve_figure(binary, semantic)
    left, right = fig.axes[:2]
    lines = {line.get_label(): line for line in left.get_lines()}
    assert list(lines["mIoU (edited classes)"].get_xdata()) == [100, 200]  # sorted by step
    assert list(lines["mIoU (edited classes)"].get_ydata()) == [0.2, 0.4]
    assert "300 steps, stopped by steps" in left.get_title()
    # a metric with no value at all (image accuracy NaN here) is left out rather than drawn empty
    assert {line.get_label() for line in right.get_lines()} == {"mIoU (edited classes)", "pixel accuracy"}


def test_a_task_without_validation_rounds_says_how_to_get_them():
    fig = learning_curve_figure(_checkpoint([]), _checkpoint([{"step": 5, "miou": 0.3}]))
    assert not fig.axes[0].get_lines()
    assert any("val_every" in text.get_text() for text in fig.axes[0].texts)


def test_a_round_without_its_step_is_refused():
    with pytest.raises(ValueError, match="step"):
        validation_points(_checkpoint([{"miou": 0.3}]))
