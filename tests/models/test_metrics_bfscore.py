"""Boundary F1 in MATLAB ``bfscore``'s convention (per image, 0.75 % of the diagonal) against a
slow per-pixel loop written from the definition, and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import (
    BFSCORE_TOLERANCE_RATIO,
    boundary_f1,
    boundary_f1_bfscore,
    bfscore_per_image,
    bfscore_tolerance,
)
from tests.models.test_metrics import blobby_label_maps as blobs


def slow_bfscore(pred: np.ndarray, target: np.ndarray, num_classes: int, theta: float) -> np.ndarray:
    """(C,) scores of one image by loops: boundary pixels per class (4-neighbour of another class
    inside the image), then for each one the distance to every boundary pixel of the other side."""
    height, width = pred.shape

    def boundary(label_map, c):
        points = []
        for i in range(height):
            for j in range(width):
                if label_map[i, j] != c:
                    continue
                for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    ni, nj = i + di, j + dj
                    if 0 <= ni < height and 0 <= nj < width and label_map[ni, nj] != c:
                        points.append((i, j))
                        break
        return points

    def matched_fraction(points, references):
        hits = [min(math.dist(p, r) for r in references) < theta for p in points]
        return sum(hits) / len(hits)

    scores = np.full(num_classes, np.nan)
    for c in range(num_classes):
        in_pred, in_gt = (pred == c).any(), (target == c).any()
        if not (in_pred or in_gt):
            continue
        p, g = boundary(pred, c), boundary(target, c)
        if not p and not g:
            scores[c] = 1.0 if in_pred and in_gt else 0.0
        elif not p or not g:
            scores[c] = 0.0
        else:
            precision, recall = matched_fraction(p, g), matched_fraction(g, p)
            scores[c] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return scores


def test_tolerance_is_three_quarters_of_a_percent_of_the_diagonal():
    assert BFSCORE_TOLERANCE_RATIO == 0.0075
    assert bfscore_tolerance(512, 512) == pytest.approx(0.0075 * 512 * math.sqrt(2))  # 5.43 px
    assert bfscore_tolerance(480, 640) == pytest.approx(0.0075 * 800)  # 6 px
    with pytest.raises(ValueError, match="ratio"):
        bfscore_tolerance(10, 10, -0.1)


@pytest.mark.parametrize("theta", [None, 0.5, 1.0, 2.0, 3.5])
def test_per_image_scores_match_a_per_pixel_loop(theta):
    rng = np.random.default_rng(7)
    num_classes = 4
    target = blobs(rng, 3, 24, num_classes)
    pred = np.where(rng.random(target.shape) < 0.1, rng.integers(0, num_classes, target.shape), target)
    pred[1] = np.roll(target[1], 2, axis=1)  # a shifted prediction: partial matches
    pred[2, :, :] = 0  # class absent from the prediction
    scores = bfscore_per_image(pred, target, num_classes, tolerance_px=theta)
    for i in range(3):
        expected_theta = bfscore_tolerance(24, 24) if theta is None else theta
        np.testing.assert_allclose(scores[i], slow_bfscore(pred[i], target[i], num_classes, expected_theta),
                                   rtol=1e-12, equal_nan=True)


def test_dataset_score_is_the_mean_of_per_image_class_means_background_excluded():
    rng = np.random.default_rng(3)
    target = blobs(rng, 4, 16, 3)
    pred = np.where(rng.random(target.shape) < 0.2, rng.integers(0, 3, target.shape), target)
    scores = bfscore_per_image(pred, target, 3)
    result = boundary_f1_bfscore(pred, target, 3)
    per_image = [np.nanmean(row[1:]) for row in scores if not np.isnan(row[1:]).all()]
    assert result["boundary_f1_bfscore"] == pytest.approx(np.mean(per_image))
    assert np.isnan(result["boundary_f1_bfscore_per_class"][0])
    for c in (1, 2):
        assert result["boundary_f1_bfscore_per_class"][c] == pytest.approx(np.nanmean(scores[:, c]))
    with_background = boundary_f1_bfscore(pred, target, 3, include_background=True)
    assert with_background["boundary_f1_bfscore"] == pytest.approx(np.mean([np.nanmean(row) for row in scores]))
    assert result["tolerance_ratio"] == 0.0075 and result["tolerance_px"] is None


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    label_map = np.zeros((size, size), np.int64)
    label_map[top:top + side, left:left + side] = 1
    return label_map


def test_hand_cases():
    gt = square(100, 20, 20, 40)  # tolerance 0.0075 * 141.4 = 1.06 px
    assert bfscore_per_image(gt, gt, 2)[0].tolist() == [1.0, 1.0]
    # Shifted by one pixel (< 1.06): every boundary pixel still has a partner.
    assert bfscore_per_image(np.roll(gt, 1, axis=1), gt, 2)[0, 1] == 1.0
    # Shifted by two pixels. 156 boundary pixels per square (40 + 40 rows, 38 + 38 columns).
    # Matched within 1.06 px: 39 of each row (the pixel 2 px past the corner is not), and of
    # the leading column only its 2 end pixels (1 px from the other square's rows): 80 of 156.
    shifted = np.roll(gt, 2, axis=1)
    score = bfscore_per_image(shifted, gt, 2)[0, 1]
    precision = recall = 80 / 156
    assert score == pytest.approx(2 * precision * recall / (precision + recall))
    # A looser explicit tolerance of 3 px forgives the shift entirely.
    assert boundary_f1_bfscore(shifted, gt, 2, tolerance_px=3)["boundary_f1_bfscore"] == 1.0
    # Nothing predicted: the class scores 0; background alone fills the prediction.
    empty = np.zeros_like(gt)
    assert bfscore_per_image(empty, gt, 2)[0, 1] == 0.0
    # A class in neither map is NaN, and an image with no scored class does not count.
    assert np.isnan(bfscore_per_image(empty, empty, 3)[0, 2])
    both = boundary_f1_bfscore(np.stack([gt, empty]), np.stack([gt, empty]), 2)
    assert both["boundary_f1_bfscore"] == 1.0 and np.isnan(both["boundary_f1_bfscore_per_image"][1])


def test_differs_from_the_pooled_two_pixel_convention():
    # A large correct square and a tiny wrong one in another image: pooled counts are dominated
    # by the large square, the per-image mean weighs both images equally.
    big = square(64, 4, 4, 50)
    small_gt, small_pred = square(64, 10, 10, 4), square(64, 40, 40, 4)
    pred, target = np.stack([big, small_pred]), np.stack([big, small_gt])
    pooled = boundary_f1(pred, target, 2, tolerance_px=2)
    per_image = boundary_f1_bfscore(pred, target, 2)["boundary_f1_bfscore"]
    assert per_image == pytest.approx(0.5) and pooled > 0.9


def test_bad_input_raises():
    with pytest.raises(ValueError, match="shape"):
        bfscore_per_image(np.zeros((4, 4), int), np.zeros((5, 4), int), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        bfscore_per_image(np.full((4, 4), 3), np.zeros((4, 4), int), 2)
    with pytest.raises(ValueError, match="tolerance"):
        bfscore_per_image(np.zeros((4, 4), int), np.zeros((4, 4), int), 2, tolerance_px=-1)


def test_detection_metrics_report_bfscore_beside_the_pooled_bf1_for_any_subset():
    """metrics.json carries both conventions: DetectionMetrics' ``boundary_f1_bfscore`` equals
    ``boundary_f1_bfscore`` on the same maps, for the whole set and for a breakdown subset."""
    from models.metrics import DetectionMetrics

    rng = np.random.default_rng(3)
    target = np.zeros((4, 48, 48), np.int64)
    target[:, 8:30, 10:34] = 1
    target[1:3, 30:44, 4:20] = 2
    pred = np.roll(target, shift=(1, -2), axis=(1, 2))
    pred[3] = rng.integers(0, 3, (48, 48))
    metrics = DetectionMetrics(["untouched", "a", "b"]).update(np.full(4, 0.9), np.ones(4, int), pred, target)
    for subset in (None, [1, 3]):
        picked = slice(None) if subset is None else subset
        expected = boundary_f1_bfscore(pred[picked], target[picked], 3)
        pixel = metrics.summary(subset)["pixel"]
        assert pixel["boundary_f1_bfscore"] == pytest.approx(expected["boundary_f1_bfscore"])
        assert pixel["boundary_f1_bfscore_per_class"]["b"] == pytest.approx(expected["boundary_f1_bfscore_per_class"][2])
        assert pixel["boundary_f1_bfscore"] != pytest.approx(pixel["boundary_f1"])
