"""Metrics against scikit-learn and against slow straightforward references written here
(per-pixel boundary-F1 loops, per-image loops for the IMDL-BenCo convention)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    jaccard_score,
    recall_score,
    roc_auc_score,
)

from models import metrics
from models.metrics import (
    AUC_BINS,
    BoundaryF1,
    ConfusionMatrix,
    DetectionMetrics,
    binary_pixel_counts,
    boundary_counts,
    boundary_f1,
    class_boundaries,
    confusion_matrices,
    image_level_metrics,
    per_image_pixel_scores,
)

# The edge cases are deliberate; sklearn's reference calls warn about them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:A single label was found:UserWarning"),
    pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true:UserWarning"),
    pytest.mark.filterwarnings("ignore:No positive samples in y_true:UserWarning"),
]


def assert_same(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=1e-12, atol=1e-12)


def blobby_label_maps(rng: np.random.Generator, n: int, size: int, num_classes: int) -> np.ndarray:
    """Label maps made of blocks with a few stray pixels: regions with real boundaries."""
    coarse = rng.integers(0, num_classes, (n, 4, 4))
    maps = np.kron(coarse, np.ones((size // 4, size // 4), dtype=np.int64))
    noise = rng.random(maps.shape) < 0.05
    maps[noise] = rng.integers(0, num_classes, noise.sum())
    return maps


# --- confusion matrix, IoU, accuracy ---------------------------------------------------------


def sklearn_reference(pred: np.ndarray, target: np.ndarray, num_classes: int) -> dict:
    y_pred, y_true = pred.ravel(), target.ravel()
    labels = list(range(num_classes))
    iou = jaccard_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    present = np.isin(labels, np.union1d(y_true, y_pred))
    iou = np.where(present, iou, np.nan)  # absent from both: undefined, not 0
    return {
        "matrix": confusion_matrix(y_true, y_pred, labels=labels),
        "iou": iou,
        "accuracy": accuracy_score(y_true, y_pred),
        "mean_class_accuracy": balanced_accuracy_score(y_true, y_pred) if len(np.unique(y_true)) else np.nan,
    }


@pytest.mark.parametrize("num_classes", [2, 5])
def test_confusion_matrix_streams_like_sklearn(num_classes):
    rng = np.random.default_rng(num_classes)
    pred = rng.integers(0, num_classes, (6, 17, 23))
    target = blobby_label_maps(rng, 6, 24, num_classes)[:, :17, :23]
    cm = ConfusionMatrix(num_classes)
    cm.update(pred[0], target[0])  # one (H, W) image ...
    cm.update(pred[1:], target[1:])  # ... then a (N, H, W) batch
    ref = sklearn_reference(pred, target, num_classes)
    np.testing.assert_array_equal(cm.matrix, ref["matrix"])
    assert cm.matrix.dtype == np.int64
    assert_same(cm.class_iou(), ref["iou"])
    assert_same(cm.mean_iou(), np.nanmean(ref["iou"][1:]))
    assert_same(cm.mean_iou(exclude_background=False), np.nanmean(ref["iou"]))
    assert_same(cm.pixel_accuracy(), ref["accuracy"])
    assert_same(cm.mean_class_accuracy(), ref["mean_class_accuracy"])


def edge_cases():
    zeros, ones = np.zeros((8, 8), np.int64), np.ones((8, 8), np.int64)
    half = np.zeros((8, 8), np.int64)
    half[:, 4:] = 1
    three = np.zeros((8, 8), np.int64)
    three[:4, :4], three[4:, 4:] = 1, 2
    return {
        "empty masks": (zeros, zeros, 2),
        "all edited": (ones, ones, 2),
        "edit missed": (zeros, half, 2),
        "false alarm on authentic": (half, zeros, 2),
        "class absent from gt": (three, np.where(three == 2, 0, three), 3),
        "class never predicted": (np.where(three == 2, 1, three), three, 3),
    }


@pytest.mark.parametrize("case", list(edge_cases()))
def test_confusion_matrix_edge_cases(case):
    pred, target, num_classes = edge_cases()[case]
    cm = ConfusionMatrix(num_classes).update(pred, target)
    ref = sklearn_reference(pred, target, num_classes)
    np.testing.assert_array_equal(cm.matrix, ref["matrix"])
    assert_same(cm.class_iou(), ref["iou"])
    assert_same(cm.pixel_accuracy(), ref["accuracy"])
    assert_same(cm.mean_class_accuracy(), ref["mean_class_accuracy"])
    foreground = ref["iou"][1:]
    expected = np.nan if np.isnan(foreground).all() else np.nanmean(foreground)
    assert_same(cm.mean_iou(), expected)


def test_confusion_matrix_specific_values():
    empty = ConfusionMatrix(2).update(np.zeros((4, 4), int), np.zeros((4, 4), int))
    assert math.isnan(empty.mean_iou())  # nothing edited anywhere: foreground IoU undefined
    assert empty.mean_iou(exclude_background=False) == 1.0
    absent = ConfusionMatrix(3).update(*edge_cases()["class absent from gt"][:2])
    assert absent.class_iou()[2] == 0.0  # predicted but not in gt: IoU 0, not NaN
    assert math.isnan(ConfusionMatrix(2).pixel_accuracy())


def test_confusion_matrix_rejects_bad_input():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        cm.update(np.full((4, 4), 3), np.zeros((4, 4), int))
    with pytest.raises(ValueError, match="integer"):
        cm.update(np.zeros((4, 4)), np.zeros((4, 4), int))


# --- boundary F1 -----------------------------------------------------------------------------


def slow_boundary_counts(pred: np.ndarray, target: np.ndarray, num_classes: int, tolerance_px: float) -> np.ndarray:
    """Per-pixel loops over the definition in ``metrics.boundary_f1``.

    Returns (C, 4) counts: matched predicted, all predicted, matched gt, all gt boundary pixels."""

    def boundary_pixels(label_map):
        height, width = label_map.shape
        found = []
        for i in range(height):
            for j in range(width):
                for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                    ni, nj = i + di, j + dj
                    if 0 <= ni < height and 0 <= nj < width and label_map[ni, nj] != label_map[i, j]:
                        found.append((i, j, int(label_map[i, j])))
                        break
        return found

    def matched(points, references):
        return sum(
            any((pi - ri) ** 2 + (pj - rj) ** 2 <= tolerance_px**2 for ri, rj in references) for pi, pj in points
        )

    pred_edges, gt_edges = boundary_pixels(pred), boundary_pixels(target)
    counts = np.zeros((num_classes, 4), dtype=np.int64)
    for c in range(1, num_classes):
        p = [(i, j) for i, j, k in pred_edges if k == c]
        g = [(i, j) for i, j, k in gt_edges if k == c]
        counts[c] = matched(p, g), len(p), matched(g, p), len(g)
    return counts


def f1_from_counts(counts: np.ndarray) -> np.ndarray:
    f1 = np.full(len(counts), np.nan)
    for c, (pm, pt, gm, gt) in enumerate(counts):
        if c == 0 or (pt == 0 and gt == 0):
            continue
        precision = pm / pt if pt else 0.0
        recall = gm / gt if gt else 0.0
        f1[c] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1


@pytest.mark.parametrize("tolerance_px", [0, 1, 2, 3])
def test_boundary_f1_matches_a_per_pixel_loop(tolerance_px):
    rng = np.random.default_rng(tolerance_px)
    num_classes = 4
    target = blobby_label_maps(rng, 3, 12, num_classes)
    pred = np.where(rng.random(target.shape) < 0.15, rng.integers(0, num_classes, target.shape), target)
    pred[2] = rng.integers(0, num_classes, (12, 12))  # one noisy prediction
    counts = sum(slow_boundary_counts(p, t, num_classes, tolerance_px) for p, t in zip(pred, target))

    stream = BoundaryF1(num_classes, tolerance_px)
    for p, t in zip(pred, target):
        stream.update(p, t)
    np.testing.assert_array_equal(np.stack([stream.pred_matched, stream.pred_total, stream.gt_matched, stream.gt_total], 1), counts)
    assert_same(stream.per_class(), f1_from_counts(counts))
    assert_same(stream.mean(), np.nanmean(f1_from_counts(counts)))
    assert_same(boundary_f1(pred, target, num_classes, tolerance_px), stream.mean())

    single = slow_boundary_counts(pred[0], target[0], num_classes, tolerance_px)
    assert_same(boundary_f1(pred[0], target[0], num_classes, tolerance_px), np.nanmean(f1_from_counts(single)))


def squares(shift: int = 0) -> np.ndarray:
    label_map = np.zeros((40, 40), np.int64)
    label_map[8 : 8 + 12, 8 + shift : 20 + shift] = 1
    label_map[24:34, 20 + shift : 34 + shift] = 2
    return label_map


def test_boundary_f1_perfect_shifted_and_far():
    target = squares()
    assert boundary_f1(target, target, 3) == 1.0
    assert boundary_f1(squares(shift=2), target, 3, tolerance_px=2) == 1.0
    assert boundary_f1(squares(shift=4), target, 3, tolerance_px=2) < 1.0
    assert boundary_f1(squares(shift=4), target, 3, tolerance_px=4) == 1.0


def test_boundary_f1_edge_cases():
    zeros, ones = np.zeros((8, 8), np.int64), np.ones((8, 8), np.int64)
    assert math.isnan(boundary_f1(zeros, zeros, 2))  # nothing edited: undefined
    assert math.isnan(boundary_f1(ones, ones, 2))  # the image border is not a boundary
    background = np.zeros_like(squares())
    assert boundary_f1(background, squares(), 3) == 0.0  # every edit missed
    assert boundary_f1(squares(), background, 3) == 0.0  # edits hallucinated
    only_one = np.where(squares() == 2, 0, squares())
    per_class = BoundaryF1(3).update(only_one, only_one).per_class()
    assert math.isnan(per_class[0]) and per_class[1] == 1.0 and math.isnan(per_class[2])


def test_class_boundaries_batch_equals_per_image():
    rng = np.random.default_rng(0)
    maps = blobby_label_maps(rng, 3, 8, 3)
    batched = class_boundaries(maps)
    for label_map, edges in zip(maps, batched):
        np.testing.assert_array_equal(class_boundaries(label_map), edges)


# --- image level -----------------------------------------------------------------------------


def sklearn_image_metrics(scores, labels, threshold=0.5):
    predicted = (scores > threshold).astype(int)
    return {
        "accuracy": accuracy_score(labels, predicted),
        "average_precision": average_precision_score(labels, scores),
        "roc_auc": roc_auc_score(labels, scores),
        "f1": f1_score(labels, predicted, zero_division=0),
        "recall_fake": recall_score(labels, predicted, pos_label=1),
        "recall_real": recall_score(labels, predicted, pos_label=0),
    }


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_image_level_metrics_match_sklearn(seed, ties):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    scores = np.clip(0.3 * labels + rng.random(200) * 0.7, 0, 1)
    if ties:
        scores = np.round(scores, 1)  # many equal scores, some exactly at the threshold
    ours = image_level_metrics(scores, labels)
    expected = sklearn_image_metrics(scores, labels)
    assert ours.keys() == expected.keys()
    for key, value in expected.items():
        assert_same(ours[key], value)


def test_image_level_threshold_is_strict_and_configurable():
    scores, labels = np.array([0.5, 0.5, 0.9, 0.1]), np.array([0, 1, 1, 0])
    ours = image_level_metrics(scores, labels)
    assert ours["recall_fake"] == 0.5 and ours["recall_real"] == 1.0  # 0.5 is not > 0.5
    lower = image_level_metrics(scores, labels, threshold=0.4)
    for key, value in sklearn_image_metrics(scores, labels, threshold=0.4).items():
        assert_same(lower[key], value)


def test_image_level_single_class_label_sets():
    scores = np.array([0.2, 0.7, 0.9])
    only_fake = image_level_metrics(scores, np.ones(3, int))
    assert math.isnan(only_fake["roc_auc"]) and math.isnan(only_fake["recall_real"])
    assert_same(only_fake["average_precision"], average_precision_score(np.ones(3), scores))
    assert_same(only_fake["f1"], f1_score(np.ones(3), scores > 0.5))
    only_real = image_level_metrics(scores, np.zeros(3, int))
    assert math.isnan(only_real["roc_auc"]) and math.isnan(only_real["recall_fake"])
    assert math.isnan(only_real["average_precision"])  # no fakes: AP undefined (sklearn warns and returns 0)
    assert only_real["f1"] == 0.0
    assert_same(only_real["accuracy"], 1 / 3)


def test_image_level_metrics_reject_bad_input():
    with pytest.raises(ValueError):
        image_level_metrics(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(ValueError):
        image_level_metrics(np.array([0.1]), np.array([0, 1]))
    with pytest.raises(ValueError):
        image_level_metrics(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        image_level_metrics(np.array([np.nan, 0.2]), np.array([0, 1]))


def test_metrics_module_stays_free_of_sklearn_and_torch():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(metrics))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= {"__future__", "numpy", "scipy"}


# --- per-image confusion matrices and the streaming pieces -----------------------------------


@pytest.mark.parametrize("case", list(edge_cases()))
def test_confusion_matrices_per_image_match_sklearn_and_sum_to_the_stream(case):
    pred, target, num_classes = edge_cases()[case]
    rng = np.random.default_rng(1)
    preds = np.stack([pred, rng.integers(0, num_classes, pred.shape)])
    targets = np.stack([target, target])
    per_image = confusion_matrices(preds, targets, num_classes)
    labels = list(range(num_classes))
    for p, t, matrix in zip(preds, targets, per_image):
        np.testing.assert_array_equal(matrix, confusion_matrix(t.ravel(), p.ravel(), labels=labels))
    stream = ConfusionMatrix(num_classes).update(preds, targets)
    np.testing.assert_array_equal(ConfusionMatrix.from_matrix(per_image).matrix, stream.matrix)
    recall = recall_score(targets.ravel(), preds.ravel(), labels=labels, average=None, zero_division=0)
    present = np.isin(labels, targets)
    assert_same(stream.class_accuracy(), np.where(present, recall, np.nan))


def test_boundary_counts_per_image_match_the_loop_at_fractional_tolerance():
    rng = np.random.default_rng(7)
    target = blobby_label_maps(rng, 2, 12, 5)
    pred = np.where(rng.random(target.shape) < 0.2, rng.integers(0, 5, target.shape), target)
    counts = boundary_counts(pred, target, 5, tolerance_px=1.5)
    for p, t, c in zip(pred, target, counts):
        np.testing.assert_array_equal(c.T, slow_boundary_counts(p, t, 5, 1.5))
    assert_same(BoundaryF1.from_counts(counts, 1.5).mean(), boundary_f1(pred, target, 5, tolerance_px=1.5))


def test_boundary_counts_tolerance_larger_than_the_image_and_many_classes():
    rng = np.random.default_rng(3)
    target = rng.integers(0, 70, (1, 6, 7))  # more classes than bits in a machine word
    pred = rng.integers(0, 70, (1, 6, 7))
    np.testing.assert_array_equal(boundary_counts(pred, target, 70, tolerance_px=9)[0].T,
                                  slow_boundary_counts(pred[0], target[0], 70, 9))


# --- IMDL-BenCo per-image pixel metrics --------------------------------------------------------


def slow_per_image(probability: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """IMDL-BenCo per image with scikit-learn: F1 and IoU of the edited class, 0 when undefined."""
    out = {"f1": [], "iou": [], "accuracy": []}
    for p, t in zip(probability, target):
        y_pred, y_true = (p > threshold).ravel().astype(int), (t > 0).ravel().astype(int)
        out["f1"].append(f1_score(y_true, y_pred, zero_division=0))
        out["iou"].append(jaccard_score(y_true, y_pred, zero_division=0))
        out["accuracy"].append(accuracy_score(y_true, y_pred))
    return {k: np.asarray(v) for k, v in out.items()}


def test_per_image_pixel_scores_match_sklearn_per_image():
    rng = np.random.default_rng(11)
    target = blobby_label_maps(rng, 6, 16, 3)
    target[0] = 0  # authentic: F1 = IoU = 0 whatever the prediction
    target[1] = 2  # all edited
    probability = np.clip(0.6 * (target > 0) + 0.5 * rng.random(target.shape) - 0.05, 0, 1)
    probability[2] = 0.5  # exactly at the threshold: not edited (strict >)
    probability[3] = 0.0  # nothing predicted
    ours = per_image_pixel_scores(binary_pixel_counts(probability, target))
    reference = slow_per_image(probability, target)
    for key in ("f1", "iou", "accuracy"):
        assert_same(ours[key], reference[key])
    assert ours["f1"][0] == 0.0 and ours["iou"][0] == 0.0
    assert ours["f1"][2] == 0.0 and ours["iou"][3] == 0.0
    # a boolean prediction is used as is, whatever the threshold
    mask_counts = binary_pixel_counts(probability > 0.5, target, threshold=0.99)
    np.testing.assert_array_equal(mask_counts, binary_pixel_counts(probability, target))


def test_per_image_pixel_scores_edge_cases():
    zeros, ones = np.zeros((4, 4)), np.ones((4, 4))
    empty = per_image_pixel_scores(binary_pixel_counts(zeros, zeros))  # authentic, nothing predicted
    assert empty["f1"][0] == 0.0 and empty["iou"][0] == 0.0 and empty["accuracy"][0] == 1.0
    full = per_image_pixel_scores(binary_pixel_counts(ones, ones))  # all edited, all found
    assert full["f1"][0] == 1.0 and full["iou"][0] == 1.0 and full["accuracy"][0] == 1.0
    with pytest.raises(ValueError, match="shape"):
        binary_pixel_counts(zeros, np.zeros((4, 5)))


# --- DetectionMetrics: everything at once, over any subset -------------------------------------


def random_detection_batch(seed: int, n: int = 8, size: int = 16, num_classes: int = 4):
    rng = np.random.default_rng(seed)
    target = blobby_label_maps(rng, n, size, num_classes)
    target[: n // 4] = 0  # some authentic images
    target[n // 4] = num_classes - 1  # one all-edited image
    pred = np.where(rng.random(target.shape) < 0.3, rng.integers(0, num_classes, target.shape), target)
    pred[pred == 2] = 1  # class 2 is never predicted
    edited_probability = np.clip((pred > 0) * 0.7 + 0.4 * rng.random(target.shape) - 0.1, 0, 1)
    is_fake = (target.reshape(n, -1) > 0).any(axis=1).astype(int)
    scores = np.clip(0.4 * is_fake + 0.6 * rng.random(n), 0, 1)
    return pred, target, edited_probability, scores, is_fake


def test_detection_metrics_summary_matches_independent_references():
    names = ["untouched", "a", "b", "c"]
    pred, target, probability, scores, is_fake = random_detection_batch(0)
    metrics = DetectionMetrics(names, boundary_tolerance_px=2)
    metrics.update(scores[:5], is_fake[:5], pred[:5], target[:5], probability[:5])  # streamed in two batches
    metrics.update(scores[5:], is_fake[5:], pred[5:], target[5:], probability[5:])
    assert len(metrics) == 8
    for select in (None, [0, 2, 5, 7], [3]):
        rows = np.arange(8) if select is None else np.asarray(select)
        summary = metrics.summary(select)
        ref = sklearn_reference(pred[rows], target[rows], 4)
        np.testing.assert_array_equal(summary["confusion_matrix"], ref["matrix"])
        pixel = summary["pixel"]
        assert_same(pixel["accuracy"], ref["accuracy"])
        assert_same(list(pixel["class_iou"].values()), ref["iou"])
        expected_miou = np.nan if np.isnan(ref["iou"][1:]).all() else np.nanmean(ref["iou"][1:])
        assert_same(pixel["miou"], expected_miou)
        assert_same(pixel["miou_with_background"], np.nanmean(ref["iou"]))
        counts = sum(slow_boundary_counts(p, t, 4, 2) for p, t in zip(pred[rows], target[rows]))
        assert_same(list(pixel["boundary_f1_per_class"].values()), f1_from_counts(counts)[1:])
        per_image = slow_per_image(probability[rows], target[rows])
        manipulated = is_fake[rows] == 1
        for key in ("f1", "iou", "accuracy"):
            assert_same(summary["pixel_per_image"]["all"][key], per_image[key].mean())
            expected = per_image[key][manipulated].mean() if manipulated.any() else np.nan
            assert_same(summary["pixel_per_image"]["manipulated"][key], expected)
        assert summary["pixel_per_image"]["manipulated"]["n_images"] == int(manipulated.sum())
        # pixel AUC: per image as IMDL-BenCo (0 on an authentic image), pooled over every pixel of the subset
        edited = target[rows] > 0
        # (an all-edited image has no ROC curve: NaN, skipped in the mean)
        image_auc = np.array([np.nan if e.all() else roc_auc_score(e.ravel(), p.ravel()) if e.any() else 0.0
                              for p, e in zip(probability[rows], edited)])
        for group, mask in (("all", np.ones_like(manipulated)), ("manipulated", manipulated)):
            expected = np.nanmean(image_auc[mask]) if np.isfinite(image_auc[mask]).any() else np.nan
            assert_same(summary["pixel_per_image"][group]["auc"], expected)
        binned = np.clip(np.floor(probability[rows] * AUC_BINS), 0, AUC_BINS - 1)
        assert summary["pixel"]["auc_pooled"] == pytest.approx(roc_auc_score(edited.ravel(), binned.ravel()))
        image_ref = image_level_metrics(scores[rows], is_fake[rows])
        for key, value in image_ref.items():
            assert_same(summary["image"][key], value)
        assert summary["n_images"] == rows.size and summary["n_fake"] == int(is_fake[rows].sum())
    # a class never predicted (2) still has an IoU (0) and a recall (0) when it is in the ground truth
    full = metrics.summary()
    assert full["pixel"]["class_iou"]["b"] == 0.0 and full["pixel"]["class_accuracy"]["b"] == 0.0


def test_detection_metrics_edge_cases():
    names = ["untouched", "edited"]
    metrics = DetectionMetrics(names)
    zeros = np.zeros((2, 8, 8), np.int64)
    metrics.update([0.1, 0.2], [0, 0], zeros, zeros)  # authentic only, nothing predicted
    summary = metrics.summary()
    assert math.isnan(summary["pixel"]["miou"]) and summary["pixel"]["miou_with_background"] == 1.0
    assert math.isnan(summary["pixel"]["boundary_f1"]) and math.isnan(summary["image"]["roc_auc"])
    assert summary["pixel_per_image"]["all"]["f1"] == 0.0 and summary["pixel_per_image"]["manipulated"]["n_images"] == 0
    empty = metrics.summary([])
    assert empty["n_images"] == 0 and empty["pixel"] is None and empty["image"] is None


def test_detection_metrics_image_level_only_models():
    metrics = DetectionMetrics(["untouched", "edited"], pixel_level=False)
    metrics.update([0.9, 0.2, 0.7], [1, 0, 1])  # no class maps needed
    summary = metrics.summary()
    assert summary["pixel"] is None and summary["pixel_per_image"] is None and summary["confusion_matrix"] is None
    assert summary["image"]["accuracy"] == 1.0
    with pytest.raises(ValueError, match="class maps"):
        DetectionMetrics(["untouched", "edited"]).update([0.5], [1])
    with pytest.raises(ValueError, match="image scores"):
        DetectionMetrics(["untouched", "edited"], pixel_level=False).update([0.5, 0.1], [1])
