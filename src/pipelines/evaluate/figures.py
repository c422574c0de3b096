"""Every figure of the evaluate stage, drawn in one place: class overlays (the per-example PNGs and
the qualitative grid share ``overlay_panels``), the confusion matrix, breakdown bars, robustness
curves and the comparison bars, plus the PNG / data-URI conversion the HTML report embeds.

Figures never raise on an empty input: where a metric family is undefined (no edited image in the
split, an image-level model, a protocol that did not run) the figure says so in words.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402

# Class colours: untouched is transparent, then one distinct colour per class / generator label.
PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [0, 128, 128], [170, 110, 40],
], dtype=np.uint8)

# (label, path into a summary) of the metrics a figure or a comparison shows.
KEY_METRICS = [
    ("pixel Acc", ("pixel", "accuracy")),
    ("mIoU", ("pixel", "miou")),
    ("bF1", ("pixel", "boundary_f1")),
    ("pixel F1 (manip.)", ("pixel_per_image", "manipulated", "f1")),
    ("image AP", ("image", "average_precision")),
    ("R@50 fake", ("image", "recall_fake")),
]
CURVE_METRICS = (("mIoU", ("pixel", "miou")), ("pixel F1", ("pixel_per_image", "manipulated", "f1")),
                 ("image AP", ("image", "average_precision")))
UNDEFINED = "undefined (0 / 0)"


def value(summary: dict | None, *path: str) -> float | None:
    """``summary[path[0]][path[1]]...`` as a float, or None where any step is missing or None."""
    node: Any = summary
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return None if node is None else float(node)


def protocol(metrics: dict | None, name: str) -> dict | None:
    """The result of protocol ``name`` inside one task's metrics dict, or None if it did not run."""
    return ((metrics or {}).get("protocols") or {}).get(name)


# --- conversion ------------------------------------------------------------------------------


def figure_to_array(fig: plt.Figure) -> np.ndarray:
    """Render a matplotlib figure to an (H, W, 3) uint8 RGB array and close it."""
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array


def png_data_uri(image: np.ndarray | plt.Figure) -> str:
    """A ``data:image/png;base64,...`` URI for an (H, W, 3) uint8 array or a figure (closed)."""
    if isinstance(image, plt.Figure):
        image = figure_to_array(image)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def message_figure(text: str) -> plt.Figure:
    """A small figure holding only ``text`` (where a plot does not apply)."""
    fig, ax = plt.subplots(figsize=(4, 1.2), dpi=100)
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True)
    ax.axis("off")
    return fig


def _legend(fig: plt.Figure, handles: list, labels: list[str] | None = None, max_columns: int = 4, **kwargs) -> None:
    """``fig.legend`` that draws nothing for zero entries (matplotlib refuses ``ncol=0``)."""
    if not handles:
        return
    labels = labels if labels is not None else [h.get_label() for h in handles]
    fig.legend(handles, labels, ncol=min(len(handles), max_columns), frameon=False, **kwargs)


# --- overlays --------------------------------------------------------------------------------


def colourise(label_map: np.ndarray, image: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend class colours over ``image`` (H, W, 3) uint8 where ``label_map`` (H, W) int > 0;
    returns (H, W, 3) uint8. Class k takes ``PALETTE[k % len(PALETTE)]``."""
    colours = PALETTE[label_map % len(PALETTE)].astype(np.float32)
    out = image.astype(np.float32)
    edited = label_map > 0
    out[edited] = (1 - alpha) * out[edited] + alpha * colours[edited]
    return out.round().astype(np.uint8)


def overlay_panels(image: np.ndarray, target: np.ndarray, prediction: np.ndarray,
                   pixel_level: bool = True) -> list[tuple[np.ndarray, str]]:
    """The three panels of one example, the only place overlays are drawn: (image, "image"),
    (ground-truth colours, "ground truth"), (predicted colours, "prediction"). An image-level model
    has no prediction map: its panel is the plain image."""
    return [(image, "image"), (colourise(target, image), "ground truth"),
            (colourise(prediction, image) if pixel_level else image, "prediction")]


def class_handles(names: list[str]) -> list[Patch]:
    """Legend patches of every class but the first (untouched, drawn transparent)."""
    return [Patch(color=PALETTE[k % len(PALETTE)] / 255.0, label=name) for k, name in enumerate(names) if k > 0]


def overlay_figure(image: np.ndarray, target: np.ndarray, prediction: np.ndarray, names: list[str], title: str,
                   pixel_level: bool = True, score: float | None = None) -> plt.Figure:
    """One example as a 1 x 3 figure (the per-example PNG the evaluate node saves), class legend below."""
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.4), dpi=100)
    for ax, (panel, label) in zip(axes, overlay_panels(image, target, prediction, pixel_level)):
        ax.imshow(panel)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if not pixel_level:
        axes[2].text(0.5, 0.5, f"image-level model\nscore {score:.2f}", transform=axes[2].transAxes, ha="center",
                     va="center", fontsize=10, color="white", bbox={"facecolor": "black", "alpha": 0.6})
    _legend(fig, class_handles(names), max_columns=5, loc="lower center", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig


def examples_grid(examples: list[tuple], captions: list[str], names: list[str], task: str,
                  pixel_level: bool = True) -> np.ndarray:
    """Qualitative examples as one image: a row per example (image | ground truth | prediction)
    and a colour legend (one colour per generator for the semantic task, one "edited" colour for
    the binary task). ``examples``: (image, target class map, predicted class map, image score).
    Returns an (H, W, 3) uint8 array."""
    if not examples:
        return figure_to_array(message_figure(f"{task}: no examples"))
    rows = len(examples)
    # Square panels in a fixed layout (no tight_layout): captions in the left margin, legend below.
    width, left, panel_gap = 8.0, 0.24, 0.04
    panel = width * (1 - left - 0.01) / (3 + 2 * panel_gap)
    top_pad, bottom_pad = 0.35, 0.75
    height = rows * panel * 1.06 + top_pad + bottom_pad
    fig, axes = plt.subplots(rows, 3, figsize=(width, height), dpi=90, squeeze=False)
    fig.subplots_adjust(left=left, right=0.99, top=1 - top_pad / height, bottom=bottom_pad / height,
                        wspace=panel_gap, hspace=0.06)
    for r, ((image, target, prediction, score), caption) in enumerate(zip(examples, captions)):
        for c, (picture, label) in enumerate(overlay_panels(image, target, prediction, pixel_level)):
            ax = axes[r, c]
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(label, fontsize=10)
        axes[r, 0].set_ylabel(caption, fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
        label = f"image score {score:.2f}" + ("" if pixel_level else " (image-level model)")
        axes[r, 2].text(0.02, 0.03, label, transform=axes[r, 2].transAxes, fontsize=7, color="white",
                        bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5})
    _legend(fig, class_handles(names), loc="lower center", fontsize=8, title_fontsize=8,
            title=f"{task} task colours" + (": generator that last edited the pixel" if task == "semantic" else ""))
    return figure_to_array(fig)


# --- metric figures --------------------------------------------------------------------------


def confusion_figure(matrix: np.ndarray, names: list[str], task: str) -> plt.Figure:
    """Row-normalised confusion matrix (rows: ground truth), with pixel counts in each cell; a row
    without ground-truth pixels stays 0 (no division by zero)."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    size = 2.0 + 0.8 * len(names)
    fig, ax = plt.subplots(figsize=(size, size * 0.85), dpi=110)
    im = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    for (r, c), share in np.ndenumerate(normalised):
        ax.text(c, r, f"{share:.2f}\n({matrix[r, c]})", ha="center", va="center", fontsize=7,
                color="white" if share > 0.5 else "black")
    ax.set_title(f"{task} task: pixel confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def breakdown_groups_of(results: dict[str, dict], by: str) -> list[str]:
    """Group names of breakdown ``by`` over every task, in first-seen order."""
    groups: list[str] = []
    for metrics in results.values():
        for name in (protocol(metrics, "breakdowns") or {}).get(by, {}):
            if name not in groups:
                groups.append(name)
    return groups


def _breakdown_series(results: dict[str, dict], by: str, groups: list[str]) -> list[tuple[str, list]]:
    series = []
    for task, metrics in results.items():
        table = (protocol(metrics, "breakdowns") or {}).get(by, {})
        if metrics.get("pixel_level", True):
            series.append((f"{task} mIoU", [value(table.get(g), "pixel", "miou") for g in groups]))
            series.append((f"{task} pixel F1", [value(table.get(g), "pixel_per_image", "manipulated", "f1")
                                                for g in groups]))
        series.append((f"{task} R@50 fake", [value(table.get(g), "image", "recall_fake") for g in groups]))
    return series


def breakdown_figure(results: dict[str, dict], by: str, title: str) -> plt.Figure | None:
    """Grouped bars per group of breakdown ``by``: mIoU and per-image F1 of both tasks and the
    binary model's forged-image recall (R@50). None when the breakdown has no group."""
    groups = breakdown_groups_of(results, by)
    if not groups:
        return None
    series = _breakdown_series(results, by, groups)
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(groups) + 2.5), 3.2), dpi=100)
    x = np.arange(len(groups))
    colours = plt.get_cmap("tab10").colors
    for k, (label, values) in enumerate(series):
        heights = [np.nan if v is None else v for v in values]
        ax.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=label, color=colours[k % 10])
    ax.set_xticks(x, groups, rotation=0 if len(groups) < 7 else 30)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=min(3, len(series)), loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def _robustness_families(results: dict[str, dict]) -> list[str]:
    families: dict[str, None] = {}
    for metrics in results.values():
        for condition in (protocol(metrics, "robustness") or {}).get("conditions", []):
            families[condition["perturbation"]] = None
    return list(families)


def _robustness_panel(ax: plt.Axes, results: dict[str, dict], family: str) -> int:
    """Draw every defined metric of ``family`` on ``ax``; returns the number of curves drawn."""
    colours = plt.get_cmap("tab10").colors
    drawn = 0
    for task, metrics in results.items():
        conditions = [c for c in (protocol(metrics, "robustness") or {}).get("conditions", [])
                      if c["perturbation"] == family]
        levels = np.asarray([c["level"] for c in conditions])
        order = np.argsort(levels)
        for label, path in CURVE_METRICS:
            values = [value(c, *path) for c in conditions]
            if all(v is None for v in values):
                continue
            colour = colours[drawn % 10]
            drawn += 1
            ax.plot(levels[order], np.asarray([np.nan if v is None else v for v in values])[order],
                    marker="o", color=colour, label=f"{task} {label}")
            reference = value(protocol(metrics, "in_domain"), *path)
            if reference is not None:
                ax.axhline(reference, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
    return drawn


def robustness_figure(results: dict[str, dict]) -> plt.Figure | None:
    """One panel per perturbation family: metric vs level for each task, the clean value as a
    dashed line of the same colour (JPEG quality decreases to the right, as degradation grows).
    A panel where every metric is undefined says so; None when no condition ran."""
    families = _robustness_families(results)
    if not families:
        return None
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.3), dpi=100, squeeze=False)
    xlabels = {"jpeg": "JPEG quality", "resize": "resize factor (and back)", "blur": "Gaussian blur sigma (px)"}
    for ax, family in zip(axes[0], families):
        if not _robustness_panel(ax, results, family):
            ax.text(0.5, 0.5, f"every metric {UNDEFINED}:\nno edited pixel or image", ha="center", va="center",
                    fontsize=8, transform=ax.transAxes)
        if family == "jpeg":
            ax.invert_xaxis()
        ax.set_xlabel(xlabels.get(family, family))
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.set_title(f"{family} (dashed: clean)", fontsize=10)
    axes[0][0].set_ylabel("score")
    handles, labels = axes[0][0].get_legend_handles_labels()
    _legend(fig, handles, labels, max_columns=6, loc="lower center", fontsize=7)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def comparison_figure(runs: dict[str, dict]) -> plt.Figure:
    """Horizontal grouped bars: one group per run, a bar per key metric (missing bars: undefined)."""
    names = list(runs)
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(names) * 1.0 + 1.6), dpi=100)
    y = np.arange(len(names))
    height = 0.8 / len(KEY_METRICS)
    colours = plt.get_cmap("tab10").colors
    for k, (label, path) in enumerate(KEY_METRICS):
        values = [value(runs[n], *path) for n in names]
        ax.barh(y + (k - (len(KEY_METRICS) - 1) / 2) * height, [np.nan if v is None else v for v in values], height,
                label=label, color=colours[k])
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, ncol=len(KEY_METRICS), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return fig
