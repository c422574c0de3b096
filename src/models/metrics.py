"""Pixel- and image-level metrics for edit localisation, pure numpy (+ scipy), streaming.

Conventions (see SEEDS.md):

- Class 0 is background (untouched pixels); DiffSeg30k excludes it from mIoU and boundary F1.
- mIoU comes from ONE confusion matrix accumulated over the whole set (as in pytorch-fcn and
  DeepLabV3Plus-Pytorch, the codebases behind DiffSeg30k's baselines), not from per-image IoUs.
- Boundary F1 has no public reference implementation; ``boundary_f1`` below defines it and its
  tolerance (default 2 px) must be stated in every report.
- Image-level scores are "the image contains an edit" probabilities; a score counts as fake when
  it is strictly greater than the threshold (IMDL-BenCo's strict ``>``).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata


def _as_label_batch(name: str, array: np.ndarray, num_classes: int) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"{name} values must lie in [0, {num_classes}), got [{array.min()}, {array.max()}]")
    return array.astype(np.int64, copy=False)


def _check_pair(pred: np.ndarray, target: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    pred = _as_label_batch("pred", pred, num_classes)
    target = _as_label_batch("target", target, num_classes)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} != target shape {target.shape}")
    return pred, target


def _nanmean(values: np.ndarray) -> float:
    """Mean over non-NaN entries; NaN (without a RuntimeWarning) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


class ConfusionMatrix:
    """Streaming confusion matrix of a segmentation over any number of images.

    ``matrix[i, j]`` counts pixels of ground-truth class i predicted as class j (int64).
    """

    def __init__(self, num_classes: int):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> ConfusionMatrix:
        """Add one (H, W) or a batch (N, H, W) of predicted and ground-truth class indices.

        Raises:
            ValueError: shapes differ, or values outside [0, num_classes).
        """
        pred, target = _check_pair(pred, target, self.num_classes)
        counts = np.bincount((target * self.num_classes + pred).ravel(), minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)
        return self

    def reset(self) -> None:
        self.matrix[...] = 0

    def pixel_accuracy(self) -> float:
        """Fraction of pixels whose class is right (NaN before any update)."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

    def class_iou(self) -> np.ndarray:
        """(C,) float64 IoU per class: TP / (TP + FP + FN); NaN for a class absent from both the
        ground truth and the prediction."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def mean_iou(self, exclude_background: bool = True) -> float:
        """Mean of ``class_iou`` over classes that occur (NaN-skipping); background (class 0)
        excluded by default, as in DiffSeg30k. NaN when no class counts."""
        iou = self.class_iou()
        return _nanmean(iou[1:] if exclude_background else iou)

    def mean_class_accuracy(self) -> float:
        """Mean over classes present in the ground truth (background included) of the fraction
        of their pixels predicted right (pytorch-fcn's "mean accuracy")."""
        support = self.matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(support > 0, np.diag(self.matrix) / support, np.nan)
        return _nanmean(recall)


def class_boundaries(label_map: np.ndarray) -> np.ndarray:
    """Boolean mask of boundary pixels of a label map ((H, W) or (N, H, W)).

    A pixel is a boundary pixel (of its own class) when at least one of its 4-neighbours inside
    the image has a different class; the image border itself is not a boundary. Both sides of a
    class edge are therefore boundary pixels, each of its own class.
    """
    label_map = np.asarray(label_map)
    boundary = np.zeros(label_map.shape, dtype=bool)
    vertical = label_map[..., 1:, :] != label_map[..., :-1, :]
    boundary[..., 1:, :] |= vertical
    boundary[..., :-1, :] |= vertical
    horizontal = label_map[..., :, 1:] != label_map[..., :, :-1]
    boundary[..., :, 1:] |= horizontal
    boundary[..., :, :-1] |= horizontal
    return boundary


def _matched(source: np.ndarray, reference: np.ndarray, tolerance_px: float) -> int:
    """Number of ``source`` pixels within ``tolerance_px`` (Euclidean) of a ``reference`` pixel."""
    if not source.any() or not reference.any():
        return 0
    # Restrict the distance transform to the bounding box of both masks: every reference pixel
    # lies inside it, so distances from source pixels (also inside) are exact.
    rows = np.flatnonzero((source | reference).any(axis=1))
    cols = np.flatnonzero((source | reference).any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    distance = ndimage.distance_transform_edt(~reference[box])
    return int(np.count_nonzero(source[box] & (distance <= tolerance_px)))


class BoundaryF1:
    """Streaming boundary F1 per class over a dataset (definition in ``boundary_f1``).

    Per class c it accumulates: ``pred_total`` (boundary pixels of c in predictions),
    ``pred_matched`` (those within tolerance of a ground-truth boundary pixel of c, the true
    positives of precision; the rest are false positives), ``gt_total`` and ``gt_matched``
    (ground-truth boundary pixels of c and those within tolerance of a predicted one; the
    unmatched ones are false negatives).
    """

    def __init__(self, num_classes: int, tolerance_px: int = 2):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if tolerance_px < 0:
            raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
        self.num_classes = int(num_classes)
        self.tolerance_px = tolerance_px
        self.pred_matched = np.zeros(num_classes, dtype=np.int64)
        self.pred_total = np.zeros(num_classes, dtype=np.int64)
        self.gt_matched = np.zeros(num_classes, dtype=np.int64)
        self.gt_total = np.zeros(num_classes, dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> BoundaryF1:
        """Add one (H, W) or a batch (N, H, W) of predicted and ground-truth class indices."""
        pred, target = _check_pair(pred, target, self.num_classes)
        pred_edges, gt_edges = class_boundaries(pred), class_boundaries(target)
        for p, g, pe, ge in zip(pred, target, pred_edges, gt_edges, strict=True):
            present = np.union1d(np.unique(p[pe]), np.unique(g[ge]))
            for c in present[present > 0]:
                pred_c, gt_c = pe & (p == c), ge & (g == c)
                self.pred_total[c] += np.count_nonzero(pred_c)
                self.gt_total[c] += np.count_nonzero(gt_c)
                self.pred_matched[c] += _matched(pred_c, gt_c, self.tolerance_px)
                self.gt_matched[c] += _matched(gt_c, pred_c, self.tolerance_px)
        return self

    def per_class(self) -> np.ndarray:
        """(C,) float64 boundary F1 per class; NaN for background and for classes with no boundary
        pixel in either prediction or ground truth. A class with boundaries on one side only
        scores 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = np.where(self.pred_total > 0, self.pred_matched / self.pred_total, 0.0)
            recall = np.where(self.gt_total > 0, self.gt_matched / self.gt_total, 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        f1[(self.pred_total == 0) & (self.gt_total == 0)] = np.nan
        f1[0] = np.nan
        return f1

    def mean(self) -> float:
        """Mean of ``per_class`` over non-background classes with any boundary (NaN if none)."""
        return _nanmean(self.per_class())


def boundary_f1(pred: np.ndarray, target: np.ndarray, num_classes: int, tolerance_px: int = 2) -> float:
    """Boundary F1 (bF1) of a segmentation, background excluded.

    Definition (ours; DiffSeg30k reports bF1 without publishing code):

    1. Boundary pixels of class c: pixels of class c with at least one 4-neighbour (inside the
       image) of another class; computed separately for prediction and ground truth.
    2. A predicted boundary pixel of class c is a true positive when a ground-truth boundary
       pixel of class c lies within ``tolerance_px`` (Euclidean distance, ``<=``); precision =
       matched predicted / all predicted boundary pixels of c. Recall symmetrically: ground-truth
       boundary pixels with a predicted one of class c within the tolerance / all of them.
    3. F1_c = 2PR / (P + R), with counts summed over all images given before dividing; 0 when
       only one side has boundaries of c; classes with none on either side are skipped.
    4. bF1 = mean of F1_c over classes c >= 1 that are not skipped (NaN if all are).

    Args:
        pred, target: (H, W) or (N, H, W) integer class maps in [0, num_classes).
        num_classes: C, background included.
        tolerance_px: matching tolerance in pixels (report it alongside the number).
    Returns:
        bF1 as a float in [0, 1], or NaN. Use ``BoundaryF1`` for per-class values or to stream.
    """
    return BoundaryF1(num_classes, tolerance_px).update(pred, target).mean()


def _average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Step-wise AP = sum over distinct thresholds of (R_n - R_{n-1}) * P_n, as sklearn's
    ``average_precision_score`` (no interpolation). NaN when there is no positive."""
    n_positive = int(labels.sum())
    if n_positive == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # The last index of each run of equal scores: one threshold per distinct score.
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), labels.size - 1]
    true_positives = np.cumsum(labels)[last_of_run]
    predicted_positive = last_of_run + 1
    precision = true_positives / predicted_positive
    recall = true_positives / n_positive
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic with average ranks for ties (equal to the
    trapezoidal area under the ROC curve); NaN when only one class is present."""
    n_positive = int(labels.sum())
    n_negative = labels.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels == 1].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def image_level_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Whole-image detection metrics over a set ("does the image contain an edit?").

    Args:
        scores: (N,) float, higher = more likely edited (e.g. ``SegmentationDetector.image_scores``).
        labels: (N,) in {0, 1}, 1 = edited/fake.
        threshold: an image is predicted fake when ``score > threshold`` (strict).
    Returns:
        {"accuracy", "average_precision" (step-wise, as sklearn; NaN without fakes),
         "roc_auc" (NaN with one class only), "f1" (fake = positive; 0 when undefined),
         "recall_fake", "recall_real" (BR-Gen's R@50 at threshold 0.5; NaN without that class)}
    Raises:
        ValueError: empty input, length mismatch, labels outside {0, 1}, non-finite scores.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.size == 0 or scores.size != labels.size:
        raise ValueError(f"need as many scores as labels (and at least one), got {scores.size} and {labels.size}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got values {np.unique(labels)}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    labels = labels.astype(np.int64)
    predicted = (scores > threshold).astype(np.int64)
    tp = int(np.sum((predicted == 1) & (labels == 1)))
    tn = int(np.sum((predicted == 0) & (labels == 0)))
    fp = int(np.sum((predicted == 1) & (labels == 0)))
    fn = int(np.sum((predicted == 0) & (labels == 1)))
    return {
        "accuracy": (tp + tn) / labels.size,
        "average_precision": _average_precision(scores, labels),
        "roc_auc": _roc_auc(scores, labels),
        "f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0,
        "recall_fake": tp / (tp + fn) if (tp + fn) else float("nan"),
        "recall_real": tn / (tn + fp) if (tn + fp) else float("nan"),
    }
