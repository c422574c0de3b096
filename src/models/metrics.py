"""Pixel- and image-level metrics for edit localisation, pure numpy (+ scipy), streaming.

Conventions (see SEEDS.md):

- Class 0 is background (untouched pixels); DiffSeg30k excludes it from mIoU and boundary F1.
- mIoU comes from ONE confusion matrix accumulated over the whole set (as in pytorch-fcn and
  DeepLabV3Plus-Pytorch, the codebases behind DiffSeg30k's baselines), not from per-image IoUs.
- Boundary F1 has no public reference implementation; ``boundary_f1`` below defines it and its
  tolerance (default 2 px) must be stated in every report.
- Per-image pixel F1 / IoU / accuracy (IMDL-BenCo): a pixel is predicted edited when its "edited"
  probability is strictly greater than 0.5; each image gets its own F1 / IoU / accuracy, which are
  averaged over images. F1 and IoU are 0 on an authentic image whatever the prediction, so the
  average is reported over manipulated images only AND over all images, labelled as such.
- Image-level scores are "the image contains an edit" probabilities; a score counts as fake when
  it is strictly greater than the threshold (IMDL-BenCo's strict ``>``).

Everything streams: ``DetectionMetrics`` keeps a few counts per image (a C x C confusion matrix,
boundary counts, the binary TP/FP/FN/TN, the image score), never the images, so any subset of the
images seen (a generator, a turn count, an area bucket) can be summarised without re-predicting.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _as_label_batch(name: str, array: np.ndarray, num_classes: int) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"{name} must be (H, W) or (N, H, W), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if array.dtype == bool:
        return array.view(np.uint8)
    if array.size:
        low = 0 if np.issubdtype(array.dtype, np.unsignedinteger) else array.min()
        high = array.max()
        if low < 0 or high >= num_classes:
            raise ValueError(f"{name} values must lie in [0, {num_classes}), got [{array.min()}, {high}]")
    # Kept in its own (usually uint8) dtype: an int64 copy of a batch of label maps costs more
    # than every metric computed from it.
    return array


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


_CHUNK = 1 << 20


def _pair_histogram(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts of (target, pred) pairs over a checked batch of label maps.

    The pair index is formed in the smallest dtype that holds C * C (uint8 for up to 16 classes)
    and counted by bincount in chunks of ``_CHUNK`` pixels, so the int64 copy bincount makes
    stays in cache: ~5x faster than one int64 bincount over the whole batch.
    """
    classes = num_classes * num_classes
    dtype = np.uint8 if classes <= 256 else np.uint16 if classes <= 65536 else np.int64
    keys = target.astype(dtype) * dtype(num_classes)
    keys += pred.astype(dtype, copy=False)
    keys = keys.ravel()
    counts = np.zeros(classes, dtype=np.int64)
    for start in range(0, keys.size, _CHUNK):
        counts += np.bincount(keys[start:start + _CHUNK], minlength=classes)
    return counts.reshape(num_classes, num_classes)


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
        self.matrix += _pair_histogram(pred, target, self.num_classes)
        return self

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> ConfusionMatrix:
        """Wrap counts already accumulated, (C, C) or per image (N, C, C) (summed)."""
        matrix = np.asarray(matrix, dtype=np.int64)
        if matrix.ndim == 3:
            matrix = matrix.sum(axis=0)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"a confusion matrix must be (C, C) or (N, C, C), got shape {matrix.shape}")
        confusion = cls(matrix.shape[0])
        confusion.matrix += matrix
        return confusion

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

    def class_accuracy(self) -> np.ndarray:
        """(C,) float64 fraction of each ground-truth class's pixels predicted right (recall);
        NaN for a class absent from the ground truth."""
        support = self.matrix.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, np.diag(self.matrix) / support, np.nan)

    def mean_class_accuracy(self) -> float:
        """Mean over classes present in the ground truth (background included) of the fraction
        of their pixels predicted right (pytorch-fcn's "mean accuracy")."""
        return _nanmean(self.class_accuracy())


def confusion_matrices(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """One confusion matrix per image: (N, C, C) int64, ``[n, i, j]`` = pixels of image n with
    ground truth i predicted j. Raises like ``ConfusionMatrix.update``."""
    pred, target = _check_pair(pred, target, num_classes)
    out = np.zeros((pred.shape[0], num_classes, num_classes), dtype=np.int64)
    for index, (p, t) in enumerate(zip(pred, target)):
        out[index] = _pair_histogram(p[None], t[None], num_classes)
    return out


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


def _disk_offsets(tolerance_px: float) -> list[tuple[int, int]]:
    """Integer offsets (dy, dx) with dy^2 + dx^2 <= tolerance^2: the Euclidean disk of the tolerance."""
    radius = int(np.floor(tolerance_px))
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if dy * dy + dx * dx <= tolerance_px * tolerance_px]


def boundary_counts(pred: np.ndarray, target: np.ndarray, num_classes: int, tolerance_px: float = 2) -> np.ndarray:
    """Per-image boundary match counts, the raw material of ``boundary_f1``.

    Args:
        pred, target: (H, W) or (N, H, W) integer class maps in [0, num_classes).
        num_classes: C, background included.
        tolerance_px: matching tolerance (Euclidean, ``<=``), in pixels; >= 0.
    Returns:
        (N, 4, C) int64: for each image and class, [matched predicted, all predicted, matched
        ground-truth, all ground-truth] boundary pixels (column 0, background, is all zeros).

    Vectorised and sparse: boundary pixels are a few percent of an image, so for each of them
    the other side's boundary label is gathered at every offset of the tolerance disk (13
    offsets at 2 px) from a zero-padded plane, instead of dilating whole images per class.
    """
    pred, target = _check_pair(pred, target, num_classes)
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
    n, height, width = pred.shape
    counts = np.zeros((n, 4, num_classes), dtype=np.int64)
    offsets = _disk_offsets(tolerance_px)
    radius = int(np.floor(tolerance_px))
    padded_width = width + 2 * radius
    plane_size = (height + 2 * radius) * padded_width
    label_dtype = np.int16 if num_classes <= np.iinfo(np.int16).max else np.int64
    edges = {}
    for name, labels in (("pred", pred), ("gt", target)):
        boundary = class_boundaries(labels) & (labels > 0)
        where = np.flatnonzero(boundary)
        image, rest = np.divmod(where, height * width)
        row, col = np.divmod(rest, width)
        # Background (0) marks "no boundary here": class 0 boundaries are never counted.
        plane = np.pad(np.where(boundary, labels, 0).astype(label_dtype), ((0, 0), (radius, radius), (radius, radius)))
        edges[name] = (labels.ravel()[where], image, image * plane_size + (row + radius) * padded_width + col + radius,
                       plane.ravel())

    def matched(source: str, reference: str) -> np.ndarray:
        labels, _, flat, _ = edges[source]
        plane = edges[reference][3]
        hit = np.zeros(labels.size, dtype=bool)
        for dy, dx in offsets:
            hit |= plane[flat + dy * padded_width + dx] == labels
        return hit

    def per_class(source: str, select: np.ndarray | None = None) -> np.ndarray:
        labels, image = edges[source][:2]
        keys = image * num_classes + labels
        return np.bincount(keys if select is None else keys[select], minlength=n * num_classes).reshape(n, num_classes)

    counts[:, 0] = per_class("pred", matched("pred", "gt"))
    counts[:, 1] = per_class("pred")
    counts[:, 2] = per_class("gt", matched("gt", "pred"))
    counts[:, 3] = per_class("gt")
    return counts


class BoundaryF1:
    """Streaming boundary F1 per class over a dataset (definition in ``boundary_f1``).

    Per class c it accumulates: ``pred_total`` (boundary pixels of c in predictions),
    ``pred_matched`` (those within tolerance of a ground-truth boundary pixel of c, the true
    positives of precision; the rest are false positives), ``gt_total`` and ``gt_matched``
    (ground-truth boundary pixels of c and those within tolerance of a predicted one; the
    unmatched ones are false negatives).
    """

    def __init__(self, num_classes: int, tolerance_px: float = 2):
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

    @classmethod
    def from_counts(cls, counts: np.ndarray, tolerance_px: float = 2) -> BoundaryF1:
        """Build from ``boundary_counts`` output, (N, 4, C) or summed (4, C)."""
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim == 3:
            counts = counts.sum(axis=0)
        metric = cls(counts.shape[1], tolerance_px)
        metric.pred_matched, metric.pred_total, metric.gt_matched, metric.gt_total = (row.copy() for row in counts)
        return metric

    def update(self, pred: np.ndarray, target: np.ndarray) -> BoundaryF1:
        """Add one (H, W) or a batch (N, H, W) of predicted and ground-truth class indices."""
        counts = boundary_counts(pred, target, self.num_classes, self.tolerance_px).sum(axis=0)
        self.pred_matched += counts[0]
        self.pred_total += counts[1]
        self.gt_matched += counts[2]
        self.gt_total += counts[3]
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


# --- IMDL-BenCo per-image pixel metrics ------------------------------------------------------


def binary_pixel_counts(edited_pred: np.ndarray, edited_target: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per-image binary pixel counts [TP, FP, FN, TN], (N, 4) int64.

    Args:
        edited_pred: (H, W) or (N, H, W): boolean "predicted edited" masks, or float probabilities
            that a pixel is edited, thresholded strictly (``> threshold``, IMDL-BenCo).
        edited_target: same shape; nonzero = edited (a binary mask or a class label map).
    Raises:
        ValueError: shapes differ or are not 2-D / 3-D.
    """
    pred, target = np.asarray(edited_pred), np.asarray(edited_target)
    if pred.ndim == 2:
        pred, target = pred[None], target[None]
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(f"need (H, W) or (N, H, W) pairs of one shape, got {pred.shape} and {target.shape}")
    pred = pred if pred.dtype == bool else pred > threshold
    target = target.astype(bool, copy=False)
    tp = np.count_nonzero(pred & target, axis=(1, 2))
    fp = np.count_nonzero(pred & ~target, axis=(1, 2))
    fn = np.count_nonzero(~pred & target, axis=(1, 2))
    tn = pred.shape[1] * pred.shape[2] - tp - fp - fn
    return np.stack([tp, fp, fn, tn], axis=1).astype(np.int64)


def per_image_pixel_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """IMDL-BenCo's per-image pixel F1, IoU and accuracy from ``binary_pixel_counts``.

    F1 = 2TP / (2TP + FP + FN) and IoU = TP / (TP + FP + FN), both 0 when TP = 0 (so 0 on every
    authentic image, and on an image where nothing is edited or predicted); accuracy =
    (TP + TN) / pixels. IMDL-BenCo adds 1e-8 to the denominators instead; the values differ by
    less than 1e-7. Returns {"f1", "iou", "accuracy"}, each (N,) float64.
    """
    tp, fp, fn, tn = np.asarray(counts, dtype=np.float64).reshape(-1, 4).T
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        iou = np.where(tp > 0, tp / (tp + fp + fn), 0.0)
        accuracy = (tp + tn) / (tp + fp + fn + tn)
    return {"f1": f1, "iou": iou, "accuracy": accuracy}


# --- everything at once, streamed, summarised over any subset --------------------------------


class DetectionMetrics:
    """All of EditLens' metrics for one detector over a set of images, streamed in batches.

    Per image it keeps only counts: a C x C confusion matrix (int64), boundary counts (4 x C), the
    binary TP/FP/FN/TN at ``pixel_threshold``, the image score and the image label. ``summary``
    aggregates any subset of the images seen, so breakdowns (per generator, per turn count, ...)
    cost no second prediction pass. Memory: about (C^2 + 4C + 6) * 8 bytes per image.

    Args:
        class_names: C names in label order, class 0 = untouched background.
        boundary_tolerance_px: bF1 tolerance (stated in every summary).
        pixel_threshold: per-image metrics count a pixel as edited when its edited probability
            is strictly greater than this (IMDL-BenCo: 0.5).
        image_threshold: image-level threshold (strict), see ``image_level_metrics``.
        pixel_level: False for whole-image classifiers; their pixel metrics are None.
    """

    def __init__(self, class_names: list[str], boundary_tolerance_px: float = 2, pixel_threshold: float = 0.5,
                 image_threshold: float = 0.5, pixel_level: bool = True):
        if len(class_names) < 2:
            raise ValueError(f"need at least two classes (background + edited), got {class_names}")
        self.class_names = [str(name) for name in class_names]
        self.num_classes = len(class_names)
        self.tolerance_px = boundary_tolerance_px
        self.pixel_threshold = float(pixel_threshold)
        self.image_threshold = float(image_threshold)
        self.pixel_level = bool(pixel_level)
        self._confusion: list[np.ndarray] = []
        self._boundary: list[np.ndarray] = []
        self._binary: list[np.ndarray] = []
        self._bfscore: list[np.ndarray] = []
        self._pixel_auc: list[np.ndarray] = []
        self._auc_histograms: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._fake: list[np.ndarray] = []

    def __len__(self) -> int:
        return int(sum(len(s) for s in self._scores))

    def update(self, image_scores: np.ndarray, is_fake: np.ndarray, pred: np.ndarray | None = None,
               target: np.ndarray | None = None, edited_probability: np.ndarray | None = None,
               item_ids: list[str] | None = None) -> DetectionMetrics:
        """Add a batch of N images.

        Args:
            image_scores: (N,) floats, "the image contains an edit", higher = more likely.
            is_fake: (N,) in {0, 1}: the image's label (1 = edited), which decides "manipulated".
            pred, target: (N, H, W) predicted and ground-truth class maps in [0, C); required
                when ``pixel_level``, ignored otherwise.
            edited_probability: (N, H, W) probability that each pixel is edited, for the per-image
                metrics at ``pixel_threshold``; None uses ``pred > 0``.
            item_ids: (N,) names of the images, used only to name a bad one in an error.
        Raises:
            ValueError: mismatched lengths or shapes, labels out of range, a score that is not a
                finite number, an ``is_fake`` other than 0/1, an ``edited_probability`` that is NaN
                or outside [0, 1]; the error names the first bad image (its id, else its index in
                the batch) and nothing of the batch is added, so earlier batches stay summarisable.
        """
        scores = np.asarray(image_scores, dtype=np.float64).ravel()
        raw_fake = np.asarray(is_fake).ravel()
        if scores.size != raw_fake.size:
            raise ValueError(f"{scores.size} image scores for {raw_fake.size} labels")

        def name(index: int) -> str:
            return f"image {item_ids[index]!r}" if item_ids is not None and index < len(item_ids) else f"image {index} of the batch"

        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise ValueError(f"{name(int(bad[0]))}: image score {scores[bad[0]]} is not a finite number")
        numeric = raw_fake.astype(np.float64) if raw_fake.dtype != object else np.array([float("nan")] * raw_fake.size)
        bad = np.flatnonzero(~np.isin(numeric, (0.0, 1.0)))
        if bad.size:
            value = raw_fake[bad[0]]
            raise ValueError(f"{name(int(bad[0]))}: is_fake must be 0 or 1, got {getattr(value, 'item', lambda: value)()!r}")
        fake = numeric.astype(np.int64)
        if self.pixel_level:
            if pred is None or target is None:
                raise ValueError("pixel-level metrics need pred and target class maps")
            pred, target = _check_pair(pred, target, self.num_classes)
            if pred.shape[0] != scores.size:
                raise ValueError(f"{pred.shape[0]} class maps for {scores.size} image scores")
            edited = pred > 0 if edited_probability is None else np.asarray(edited_probability).reshape(pred.shape)
            if edited_probability is not None:
                outside = ~((edited >= 0) & (edited <= 1))  # NaN included
                if outside.any():
                    first = int(np.argwhere(outside)[0][0])
                    raise ValueError(f"{name(first)}: edited_probability has values that are NaN or outside [0, 1]")
            self._confusion.append(confusion_matrices(pred, target, self.num_classes))
            self._boundary.append(boundary_counts(pred, target, self.num_classes, self.tolerance_px))
            self._binary.append(binary_pixel_counts(edited, target > 0, self.pixel_threshold))
            self._bfscore.append(bfscore_per_image(pred, target, self.num_classes))
            self._pixel_auc.append(per_image_pixel_auc(edited, target > 0))
            self._auc_histograms.append(pixel_auc_histograms(edited, target > 0))
        self._scores.append(scores)
        self._fake.append(fake)
        return self

    def per_image(self) -> dict[str, np.ndarray]:
        """The per-image values in update order: {"score": (N,) float64 image scores, "is_fake":
        (N,) int 0/1, "iou": (N,) float64 IMDL-BenCo pixel IoU (NaN for image-level models)} (BR-Gen's
        tables group them by generator family, region kind and edited area)."""
        scores, fake = np.concatenate(self._scores or [np.zeros(0)]), np.concatenate(self._fake or [np.zeros(0, int)])
        if self.pixel_level and self._binary:
            iou = per_image_pixel_scores(np.concatenate(self._binary))["iou"]
        else:
            iou = np.full(scores.size, np.nan)
        return {"score": scores.astype(np.float64), "is_fake": fake.astype(int), "iou": iou}

    def summary(self, indices: np.ndarray | list[int] | None = None) -> dict:
        """Every metric over the images at ``indices`` (positions in update order; None = all).

        Returns a JSON-ready dict (NaN where undefined):
            n_images, n_fake, n_real;
            pixel: dataset-level confusion-matrix metrics (accuracy, mean_class_accuracy, miou
                with background excluded, miou_with_background, class_iou, class_accuracy),
                boundary_f1 (our pooled convention: + per class, tolerance in px) and
                boundary_f1_bfscore (MATLAB ``bfscore``: per image at 0.75 % of the diagonal,
                averaged; + per class), or None for image-level models;
                auc_pooled: pixel ROC AUC with every pixel of the subset in one ranking (scores
                binned to 1/``AUC_BINS``);
            pixel_per_image: IMDL-BenCo per-image F1 / IoU / accuracy / AUC averaged over
                ``manipulated`` images and over ``all`` images, or None;
            image: image_level_metrics at ``image_threshold`` (None for an empty subset);
            confusion_matrix: C x C list, or None.
        """
        scores, fake = np.concatenate(self._scores or [np.zeros(0)]), np.concatenate(self._fake or [np.zeros(0, int)])
        select = np.arange(scores.size) if indices is None else np.asarray(indices, dtype=np.int64).ravel()
        out: dict = {"n_images": int(select.size), "n_fake": int(fake[select].sum()),
                     "n_real": int(select.size - fake[select].sum()), "pixel": None, "pixel_per_image": None,
                     "image": None, "confusion_matrix": None}
        if select.size:
            out["image"] = {"threshold": self.image_threshold, **image_level_metrics(scores[select], fake[select],
                                                                                     self.image_threshold)}
        if not self.pixel_level or not select.size:
            return out
        names = self.class_names
        confusion = ConfusionMatrix.from_matrix(np.concatenate(self._confusion)[select])
        boundary = BoundaryF1.from_counts(np.concatenate(self._boundary)[select], self.tolerance_px)
        out["pixel"] = {
            "accuracy": confusion.pixel_accuracy(),
            "mean_class_accuracy": confusion.mean_class_accuracy(),
            "miou": confusion.mean_iou(exclude_background=True),
            "miou_with_background": confusion.mean_iou(exclude_background=False),
            "class_iou": dict(zip(names, confusion.class_iou().tolist())),
            "class_accuracy": dict(zip(names, confusion.class_accuracy().tolist())),
            "boundary_f1": boundary.mean(),
            "boundary_f1_per_class": dict(zip(names[1:], boundary.per_class()[1:].tolist())),
            "boundary_tolerance_px": self.tolerance_px,
            **self._bfscore_summary(select),
        }
        per_image = per_image_pixel_scores(np.concatenate(self._binary)[select])
        auc = np.concatenate(self._pixel_auc)[select]
        out["pixel"]["auc_pooled"] = auc_from_histograms(np.concatenate(self._auc_histograms)[select].sum(axis=0))
        manipulated = fake[select] == 1

        def average(mask: np.ndarray) -> dict:
            count = int(mask.sum())
            return {"n_images": count, **{k: float(v[mask].mean()) if count else float("nan") for k, v in per_image.items()},
                    "auc": _nanmean(auc[mask]) if count else float("nan")}

        out["pixel_per_image"] = {"threshold": self.pixel_threshold, "manipulated": average(manipulated),
                                  "all": average(np.ones_like(manipulated))}
        out["confusion_matrix"] = confusion.matrix.tolist()
        return out

    def _bfscore_summary(self, select: np.ndarray) -> dict:
        """``boundary_f1_bfscore`` over the selected images, as ``boundary_f1_bfscore`` computes it
        (background excluded; each image the mean of its classes, then the mean over images)."""
        scores = np.concatenate(self._bfscore)[select].copy()
        scores[:, 0] = np.nan
        with np.errstate(invalid="ignore"):
            per_image = np.array([_nanmean(row) for row in scores])
            per_class = [_nanmean(column) for column in scores.T]
        return {"boundary_f1_bfscore": _nanmean(per_image),
                "boundary_f1_bfscore_per_class": dict(zip(self.class_names[1:], per_class[1:])),
                "bfscore_tolerance": f"{BFSCORE_TOLERANCE_RATIO:.2%} of the image diagonal"}


# --- BR-Gen (Tables 2-4, 7): R@50 by generator family, region kind and mask area ----------------

# BR-Gen's five inpainters by architecture ("Split A" of Tables 2-3): LaMa and MAT are GANs,
# SDXL, BrushNet and PowerPaint diffusion models (paper section 3.3). Registry names of EditLens'
# generator zoo; a caller with other generator names passes its own mapping.
BRGEN_GENERATOR_FAMILY = {"lama": "gan", "mat": "gan", "sdxl-inpaint": "diffusion", "brushnet": "diffusion",
                          "powerpaint": "diffusion"}
# Table 4's cross-type transfers: train on forged images of one value, test on the other's.
BRGEN_CROSS_TYPE = {
    "gan->diffusion": ("generator_family", "gan", "diffusion"),
    "diffusion->gan": ("generator_family", "diffusion", "gan"),
    "background->stuff": ("region_kind", "background", "stuff"),
    "stuff->background": ("region_kind", "stuff", "background"),
}
# Table 7's mask-area columns "< 20 %" ... "< 100 %" (upper edges of the edited-area ratio).
BRGEN_AREA_EDGES = (0.2, 0.4, 0.6, 0.8, 1.0)


def _brgen_inputs(scores: np.ndarray, is_fake: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_fake = np.asarray(is_fake).ravel()
    if scores.size == 0 or scores.size != is_fake.size:
        raise ValueError(f"need as many scores as labels (and at least one), got {scores.size} and {is_fake.size}")
    if not np.isin(is_fake, (0, 1)).all():
        raise ValueError(f"is_fake must be 0 (real) or 1 (fake), got values {np.unique(is_fake)}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    out = [scores, is_fake.astype(bool)]
    for column in columns:
        column = np.asarray(column, dtype=object).ravel()
        if column.size != scores.size:
            raise ValueError(f"a group column has {column.size} entries for {scores.size} images")
        out.append(column)
    return tuple(out)


def recall_at_50_by_group(scores: np.ndarray, is_fake: np.ndarray, groups: np.ndarray,
                          threshold: float = 0.5) -> dict[str, float]:
    """BR-Gen's per-type R@50: the recall of the FORGED images of each group value (e.g. "gan" /
    "diffusion", "stuff" / "background") at ``score > threshold``, and "real": the recall of the
    real images (their group value is ignored). Groups with no forged image are left out; "real" is
    NaN without real images.

    Args:
        scores: (N,) image "contains an edit" scores; is_fake: (N,) 0/1; groups: (N,) group values
            (None for real images is fine).
    Raises:
        ValueError: length mismatch, empty input, labels outside {0, 1}, non-finite scores.
    """
    scores, fake, groups = _brgen_inputs(scores, is_fake, groups)
    predicted = scores > threshold
    out = {"real": float(np.mean(~predicted[~fake])) if (~fake).any() else float("nan")}
    for value in sorted({g for g in groups[fake]}, key=str):
        members = fake & (groups == value)
        out[str(value)] = float(np.mean(predicted[members]))
    return out


def recall_at_50_by_area(scores: np.ndarray, is_fake: np.ndarray, area_ratio: np.ndarray,
                         edges: tuple[float, ...] = BRGEN_AREA_EDGES, cumulative: bool = True,
                         threshold: float = 0.5) -> dict[str, float]:
    """Table 7: R@50 of the forged images by edited-area ratio, one entry per upper edge,
    keyed "<20%" etc. ``cumulative`` (default): all forged images with area < edge, the literal
    reading of the paper's column heads (its values fall steadily, as cumulative columns would);
    False: the bin between the previous edge and this one. Empty columns are NaN.

    Raises:
        ValueError: as ``recall_at_50_by_group``; edges not increasing in (0, 1]; area ratios of
            forged images outside [0, 1].
    """
    scores, fake, areas = _brgen_inputs(scores, is_fake, area_ratio)
    edges = tuple(float(e) for e in edges)
    if not edges or any(b <= a for a, b in zip((0.0, *edges), edges)) or edges[-1] > 1.0:
        raise ValueError(f"edges must increase within (0, 1], got {edges}")
    areas = areas[fake].astype(np.float64)
    if ((areas < 0) | (areas > 1)).any():
        raise ValueError("area ratios of forged images must lie in [0, 1]")
    hits = scores[fake] > threshold
    out = {}
    lower = 0.0
    for edge in edges:
        last = edge == edges[-1]
        inside = (areas <= edge) if last else (areas < edge)  # the last column includes area 1.0
        if not cumulative:
            inside &= areas >= lower
        out[f"<{round(edge * 100)}%"] = float(np.mean(hits[inside])) if inside.any() else float("nan")
        lower = edge
    return out


def brgen_table_row(scores: np.ndarray, is_fake: np.ndarray, pixel_iou: np.ndarray, generator_family: np.ndarray,
                    region_kind: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """One detector's row of BR-Gen Tables 2 / 3.

    Args:
        scores: (N,) image scores; is_fake: (N,) 0/1.
        pixel_iou: (N,) per-image localisation IoU (``per_image_pixel_scores(...)["iou"]``), used
            over forged images only (NaN entries allowed for detectors without masks: IoU is NaN).
        generator_family: (N,) "gan" / "diffusion" per forged image (``BRGEN_GENERATOR_FAMILY``).
        region_kind: (N,) "stuff" / "background" per forged image.

    Returns:
        {"r50_real", "f1", "auc", "r50_fake", "iou", "r50_gan", "r50_diffusion", "r50_background",
        "r50_stuff"}: the columns in the paper's order (F1 / AUC image-level, fake = positive).
    """
    scores, fake, iou, family, kind = _brgen_inputs(scores, is_fake, pixel_iou, generator_family, region_kind)
    image = image_level_metrics(scores, fake.astype(np.int64), threshold)
    forged_iou = iou[fake].astype(np.float64)
    by_family = recall_at_50_by_group(scores, fake, family, threshold)
    by_kind = recall_at_50_by_group(scores, fake, kind, threshold)
    return {
        "r50_real": image["recall_real"], "f1": image["f1"], "auc": image["roc_auc"], "r50_fake": image["recall_fake"],
        "iou": float(np.mean(forged_iou)) if forged_iou.size and np.isfinite(forged_iou).all() else float("nan"),
        "r50_gan": by_family.get("gan", float("nan")), "r50_diffusion": by_family.get("diffusion", float("nan")),
        "r50_background": by_kind.get("background", float("nan")), "r50_stuff": by_kind.get("stuff", float("nan")),
    }


def brgen_cross_type_selection(is_fake: np.ndarray, generator_family: np.ndarray, region_kind: np.ndarray,
                               protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """Table 4: which images a cross-type protocol trains and tests on, as two bool (N,) masks.

    Training keeps the real images and the forged images of the source type; testing the real
    images and the forged images of the target type (both within whatever split the arrays come
    from). The paper reports R@50 on the test side: ``recall_at_50_by_group`` there.

    Raises:
        ValueError: unknown ``protocol`` (the message lists ``BRGEN_CROSS_TYPE``), length mismatch.
    """
    if protocol not in BRGEN_CROSS_TYPE:
        raise ValueError(f"unknown BR-Gen cross-type protocol {protocol!r}; known: {sorted(BRGEN_CROSS_TYPE)}")
    column, source, target = BRGEN_CROSS_TYPE[protocol]
    fake = np.asarray(is_fake).ravel().astype(bool)
    values = np.asarray(generator_family if column == "generator_family" else region_kind, dtype=object).ravel()
    if values.size != fake.size:
        raise ValueError(f"{column} has {values.size} entries for {fake.size} images")
    return ~fake | (values == source), ~fake | (values == target)
# --- boundary F1, MATLAB ``bfscore`` convention --------------------------------------------------
#
# DiffSeg30k reports "bF1" without defining it (section 4.2). ``boundary_f1`` above is our pooled
# 2 px definition; the functions below are the common one, MATLAB's ``bfscore`` (Csurka et al.,
# BMVC 2013; Image Processing Toolbox): per image and per class, a distance tolerance of 0.75 % of
# the image diagonal, then averaged over images. Reports must name which one a number is.

BFSCORE_TOLERANCE_RATIO = 0.0075


def bfscore_tolerance(height: int, width: int, ratio: float = BFSCORE_TOLERANCE_RATIO) -> float:
    """MATLAB ``bfscore``'s default distance tolerance in pixels: ``ratio`` (0.75 %) of the image
    diagonal, ``ratio * sqrt(height^2 + width^2)`` (3.84 px at 512 x 512)."""
    if ratio < 0:
        raise ValueError(f"ratio must be >= 0, got {ratio}")
    return float(ratio * np.hypot(height, width))


def bfscore_per_image(pred: np.ndarray, target: np.ndarray, num_classes: int,
                      tolerance_ratio: float = BFSCORE_TOLERANCE_RATIO,
                      tolerance_px: float | None = None) -> np.ndarray:
    """Per-image, per-class BF score as MATLAB's ``bfscore`` computes it on label maps.

    For each image and each class c:

    1. Boundary of c: pixels of c with a 4-neighbour (inside the image) of another class, as
       ``bwperim`` on the binary mask ``label == c`` (the image edge is not a boundary).
    2. theta = ``tolerance_px``, or ``tolerance_ratio`` x the image diagonal when None (MATLAB's
       default 0.75 %). A predicted boundary pixel matches when its Euclidean distance to the
       nearest ground-truth boundary pixel of c is strictly below theta (``bwdist < theta``);
       precision = matched / all predicted boundary pixels of c; recall symmetrically.
    3. score = 2PR / (P + R); 0 when P + R = 0 or only one side has a boundary; NaN when c is
       absent from both maps; 1 when c fills both images (present, no boundary on either side).

    Args:
        pred, target: (H, W) or (N, H, W) integer class maps in [0, num_classes).
        num_classes: C, background (0) included; background is scored too (callers following
            DiffSeg30k drop column 0, as ``boundary_f1_bfscore`` does).
        tolerance_ratio: fraction of the diagonal (>= 0), used when ``tolerance_px`` is None.
        tolerance_px: an explicit tolerance in pixels (>= 0), overriding the ratio.
    Returns:
        (N, C) float64 scores in [0, 1] or NaN.
    Raises:
        ValueError: bad shapes, dtypes or values (see ``boundary_counts``), negative tolerance.
    """
    from scipy.ndimage import distance_transform_edt

    pred, target = _check_pair(pred, target, num_classes)
    n, height, width = pred.shape
    theta = bfscore_tolerance(height, width, tolerance_ratio) if tolerance_px is None else float(tolerance_px)
    if theta < 0:
        raise ValueError(f"tolerance_px must be >= 0, got {tolerance_px}")
    scores = np.full((n, num_classes), np.nan)
    pred_edges, gt_edges = class_boundaries(pred), class_boundaries(target)
    for i in range(n):
        present = np.union1d(np.unique(pred[i]), np.unique(target[i]))
        for c in present:
            pred_boundary = pred_edges[i] & (pred[i] == c)
            gt_boundary = gt_edges[i] & (target[i] == c)
            pred_count, gt_count = int(pred_boundary.sum()), int(gt_boundary.sum())
            if pred_count == 0 and gt_count == 0:
                # No boundary on either side: c fills one image or both.
                scores[i, c] = float((pred[i] == c).any() and (target[i] == c).any())
                continue
            if pred_count == 0 or gt_count == 0:
                scores[i, c] = 0.0
                continue
            # Distance from every pixel to the nearest boundary pixel of the other side.
            to_gt = distance_transform_edt(~gt_boundary)
            to_pred = distance_transform_edt(~pred_boundary)
            precision = float((to_gt[pred_boundary] < theta).mean())
            recall = float((to_pred[gt_boundary] < theta).mean())
            scores[i, c] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return scores


def boundary_f1_bfscore(pred: np.ndarray, target: np.ndarray, num_classes: int,
                        tolerance_ratio: float = BFSCORE_TOLERANCE_RATIO, tolerance_px: float | None = None,
                        include_background: bool = False) -> dict[str, object]:
    """Boundary F1 in MATLAB ``bfscore``'s convention (per image, 0.75 % of the diagonal), averaged.

    As MATLAB's ``evaluateSemanticSegmentation`` averages it: each image's score is the mean of
    its per-class scores (``bfscore_per_image``, NaN classes skipped); the dataset score is the
    mean of the image scores (images with no scored class skipped); a class's score is the mean
    over the images where it is scored. Background (class 0) is excluded unless
    ``include_background``, as DiffSeg30k excludes it from every metric. For a binary task pass
    0/1 maps with ``num_classes=2``: the score is the "edited" class's.

    Returns:
        {"boundary_f1_bfscore": float or NaN, "boundary_f1_bfscore_per_class": (C,) float64 array
        (NaN for background when excluded and for classes never scored), "boundary_f1_bfscore_per_image":
        (N,) float64 array, "tolerance_ratio": float or None, "tolerance_px": float or None}.
    Raises:
        ValueError: as ``bfscore_per_image``.
    """
    scores = bfscore_per_image(pred, target, num_classes, tolerance_ratio, tolerance_px)
    if not include_background:
        scores[:, 0] = np.nan
    with np.errstate(invalid="ignore"):
        per_image = np.array([_nanmean(row) for row in scores])
        per_class = np.array([_nanmean(column) for column in scores.T])
    return {
        "boundary_f1_bfscore": _nanmean(per_image),
        "boundary_f1_bfscore_per_class": per_class,
        "boundary_f1_bfscore_per_image": per_image,
        "tolerance_ratio": None if tolerance_px is not None else float(tolerance_ratio),
        "tolerance_px": None if tolerance_px is None else float(tolerance_px),
    }
# --- pixel-level AUC (IMDL-BenCo reports it beside pixel F1 / IoU) ---------------------------


def _edited_pairs(edited_prob: np.ndarray, edited_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prob, target = np.asarray(edited_prob, dtype=np.float64), np.asarray(edited_target)
    if prob.ndim == 2:
        prob, target = prob[None], target[None]
    if prob.ndim != 3 or prob.shape != target.shape:
        raise ValueError(f"need (H, W) or (N, H, W) pairs of one shape, got {prob.shape} and {target.shape}")
    if not np.isfinite(prob).all():
        raise ValueError("edited probabilities must be finite")
    return prob, target.astype(bool, copy=False)


def per_image_pixel_auc(edited_prob: np.ndarray, edited_target: np.ndarray) -> np.ndarray:
    """Pixel-level ROC AUC of each image, IMDL-BenCo's ``PixelAUC`` convention (mode "origin").

    Each image's pixels are ranked by their edited probability against its own mask. As in
    IMDL-BenCo (``evaluation/AUC.py``), an image with no edited pixel (an authentic image) scores
    0.0 and the reported number is the mean over ALL images; an image whose every pixel is edited
    has no ROC curve and gets NaN (IMDL-BenCo divides by zero there). Ties are averaged (the
    Mann-Whitney statistic, equal to sklearn's ``roc_auc_score``); IMDL-BenCo's trapezoid over
    an arbitrary order of tied scores can differ when many pixels share a score.

    Args:
        edited_prob: (H, W) or (N, H, W) float, probability that a pixel is edited.
        edited_target: same shape; nonzero = edited (a binary mask or a class label map).
    Returns:
        (N,) float64 in [0, 1] (NaN as above).
    Raises:
        ValueError: shapes differ or are not 2-D / 3-D, or a probability is not finite.
    """
    prob, target = _edited_pairs(edited_prob, edited_target)
    out = np.empty(prob.shape[0], dtype=np.float64)
    for index, (scores, labels) in enumerate(zip(prob, target)):
        labels = labels.ravel()
        out[index] = 0.0 if not labels.any() else _roc_auc(scores.ravel(), labels.astype(np.int64))
    return out


def pixel_auc(edited_prob: np.ndarray, edited_target: np.ndarray) -> float:
    """Dataset-level pixel ROC AUC: every pixel of every image pooled into one ranking.

    Args, raises: as ``per_image_pixel_auc``.
    Returns:
        float in [0, 1], equal to sklearn's ``roc_auc_score`` on the flattened arrays; NaN when
        the pixels are all edited or all untouched.
    """
    prob, target = _edited_pairs(edited_prob, edited_target)
    return _roc_auc(prob.ravel(), target.ravel().astype(np.int64))


AUC_BINS = 1000  # pooled pixel AUC: scores binned to 1/1000, so any number of images streams in fixed memory


def pixel_auc_histograms(edited_prob: np.ndarray, edited_target: np.ndarray, bins: int = AUC_BINS) -> np.ndarray:
    """Per image, the counts of untouched and of edited pixels per score bin: (N, 2, bins) int64.

    Scores in [0, 1] fall into ``bins`` equal bins (1.0 into the last). ``auc_from_histograms`` of
    the sum over images is the pooled pixel AUC with ties inside a bin averaged (it equals
    ``pixel_auc`` when no two pixels of different classes share a bin but not a score).

    Raises:
        ValueError: as ``per_image_pixel_auc``.
    """
    prob, target = _edited_pairs(edited_prob, edited_target)
    index = np.clip((prob * bins).astype(np.int64), 0, bins - 1)
    out = np.zeros((prob.shape[0], 2, bins), dtype=np.int64)
    for i in range(prob.shape[0]):
        out[i, 0] = np.bincount(index[i][~target[i]], minlength=bins)
        out[i, 1] = np.bincount(index[i][target[i]], minlength=bins)
    return out


def auc_from_histograms(histogram: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney, ties averaged) from (2, bins) counts of negatives / positives per
    ascending score bin; NaN when either class is empty."""
    negative, positive = (np.asarray(h, dtype=np.float64) for h in histogram)
    n_negative, n_positive = negative.sum(), positive.sum()
    if n_negative == 0 or n_positive == 0:
        return float("nan")
    below = np.concatenate([[0.0], np.cumsum(negative)[:-1]])  # negatives in lower bins
    return float((positive * (below + 0.5 * negative)).sum() / (n_negative * n_positive))
