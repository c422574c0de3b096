"""The evaluation report: one self-contained HTML page per run (inline CSS, figures embedded as
base64 PNG, no external asset), tables laid out like the seeds' papers, and a comparison page
for several runs side by side.

Everything here reads the metrics dicts written by ``nodes.evaluate_checkpoint`` (the same
documents as ``metrics_<task>.json``), so a page can be rebuilt from saved JSON alone:

    python -m pipelines.evaluate.report compare clean=data/08_reporting/metrics.json \\
        other=/elsewhere/metrics.json --out comparison.html
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import io
import json
from collections.abc import Iterable
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
TASKS = ("binary", "semantic")
DASH = "&mdash;"


def colourise(label_map: np.ndarray, image: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend class colours over ``image`` where ``label_map`` > 0; (H,W,3) uint8."""
    colours = PALETTE[label_map % len(PALETTE)].astype(np.float32)
    out = image.astype(np.float32)
    edited = label_map > 0
    out[edited] = (1 - alpha) * out[edited] + alpha * colours[edited]
    return out.round().astype(np.uint8)


# --- figures ---------------------------------------------------------------------------------


def figure_to_array(fig: plt.Figure) -> np.ndarray:
    """Render a matplotlib figure to an (H, W, 3) uint8 RGB array and close it."""
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array


def png_data_uri(image: np.ndarray | plt.Figure) -> str:
    """A ``data:image/png;base64,...`` URI for an (H, W, 3) uint8 array or a figure."""
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


def confusion_figure(matrix: np.ndarray, names: list[str], task: str) -> plt.Figure:
    """Row-normalised confusion matrix (rows: ground truth), with pixel counts in each cell."""
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
    for (r, c), value in np.ndenumerate(normalised):
        ax.text(c, r, f"{value:.2f}\n({matrix[r, c]})", ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")
    ax.set_title(f"{task} task: pixel confusion (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
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
        panels = [image, colourise(target, image), colourise(prediction, image) if pixel_level else image]
        for c, picture in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(("image", "ground truth", "prediction")[c], fontsize=10)
        axes[r, 0].set_ylabel(caption, fontsize=8, rotation=0, ha="right", va="center", labelpad=6)
        label = f"image score {score:.2f}" + ("" if pixel_level else " (image-level model)")
        axes[r, 2].text(0.02, 0.03, label, transform=axes[r, 2].transAxes, fontsize=7, color="white",
                        bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5})
    handles = [Patch(color=PALETTE[k % len(PALETTE)] / 255.0, label=name) for k, name in enumerate(names) if k > 0]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False,
               title=f"{task} task colours" + (": generator that last edited the pixel" if task == "semantic" else ""),
               title_fontsize=8)
    return figure_to_array(fig)


def _value(summary: dict | None, *path: str) -> float | None:
    node: Any = summary
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return None if node is None else float(node)


# (label, path into a summary) of the metrics a figure or a comparison shows.
KEY_METRICS = [
    ("pixel Acc", ("pixel", "accuracy")),
    ("mIoU", ("pixel", "miou")),
    ("bF1", ("pixel", "boundary_f1")),
    ("pixel F1 (manip.)", ("pixel_per_image", "manipulated", "f1")),
    ("image AP", ("image", "average_precision")),
    ("R@50 fake", ("image", "recall_fake")),
]


def breakdown_figure(results: dict[str, dict], by: str, title: str) -> plt.Figure | None:
    """Grouped bars per group of breakdown ``by``: mIoU and per-image F1 of both tasks and the
    binary model's forged-image recall (R@50)."""
    groups: list[str] = []
    for metrics in results.values():
        for name in (_protocol(metrics, "breakdowns") or {}).get(by, {}):
            if name not in groups:
                groups.append(name)
    if not groups:
        return None
    series = []
    for task, metrics in results.items():
        table = (_protocol(metrics, "breakdowns") or {}).get(by, {})
        if metrics.get("pixel_level", True):
            series.append((f"{task} mIoU", [_value(table.get(g), "pixel", "miou") for g in groups]))
            series.append((f"{task} pixel F1", [_value(table.get(g), "pixel_per_image", "manipulated", "f1") for g in groups]))
        series.append((f"{task} R@50 fake", [_value(table.get(g), "image", "recall_fake") for g in groups]))
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


def robustness_figure(results: dict[str, dict]) -> plt.Figure | None:
    """One panel per perturbation family: metric vs level for each task, the clean value as a
    dashed line of the same colour (JPEG quality decreases to the right, as degradation grows)."""
    families: dict[str, None] = {}
    for metrics in results.values():
        for condition in (_protocol(metrics, "robustness") or {}).get("conditions", []):
            families[condition["perturbation"]] = None
    if not families:
        return None
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.3), dpi=100, squeeze=False)
    colours = plt.get_cmap("tab10").colors
    xlabels = {"jpeg": "JPEG quality", "resize": "resize factor (and back)", "blur": "Gaussian blur sigma (px)"}
    for ax, family in zip(axes[0], families):
        k = 0
        for task, metrics in results.items():
            conditions = [c for c in (_protocol(metrics, "robustness") or {}).get("conditions", [])
                          if c["perturbation"] == family]
            if not conditions:
                continue
            levels = [c["level"] for c in conditions]
            clean = _protocol(metrics, "in_domain")
            for label, path in (("mIoU", ("pixel", "miou")), ("pixel F1", ("pixel_per_image", "manipulated", "f1")),
                                ("image AP", ("image", "average_precision"))):
                values = [_value(c, *path) for c in conditions]
                if all(v is None for v in values):
                    continue
                colour = colours[k % 10]
                k += 1
                order = np.argsort(levels)
                ax.plot(np.asarray(levels)[order], np.asarray([np.nan if v is None else v for v in values])[order],
                        marker="o", color=colour, label=f"{task} {label}")
                reference = _value(clean, *path)
                if reference is not None:
                    ax.axhline(reference, color=colour, linestyle="--", linewidth=0.8, alpha=0.7)
        if family == "jpeg":
            ax.invert_xaxis()
        ax.set_xlabel(xlabels.get(family, family))
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
        ax.set_title(f"{family} (dashed: clean)", fontsize=10)
    axes[0][0].set_ylabel("score")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def comparison_figure(runs: dict[str, dict]) -> plt.Figure:
    """Horizontal grouped bars: one group per run, a bar per key metric."""
    names = list(runs)
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(names) * 1.0 + 1.6), dpi=100)
    y = np.arange(len(names))
    height = 0.8 / len(KEY_METRICS)
    colours = plt.get_cmap("tab10").colors
    for k, (label, path) in enumerate(KEY_METRICS):
        values = [_value(runs[n], *path) for n in names]
        ax.barh(y + (k - (len(KEY_METRICS) - 1) / 2) * height, [np.nan if v is None else v for v in values], height,
                label=label, color=colours[k])
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, ncol=len(KEY_METRICS), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return fig


# --- HTML ------------------------------------------------------------------------------------

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em;margin-bottom:.3em}
.meta{color:#555;font-size:.9em}.note{color:#555;font-size:.85em;margin:.3em 0 1em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
caption{caption-side:top;text-align:left;font-weight:600;padding-bottom:.3em}
th,td{padding:.25em .65em;border-bottom:1px solid #e3e3e3;text-align:right;white-space:nowrap}
th{background:#f4f4f4;border-bottom:1px solid #999}th.group{text-align:center;border-bottom:1px solid #bbb}
td:first-child,th:first-child{text-align:left}td.best{font-weight:700}
tr.sep td{border-top:2px solid #999}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.grid2{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
nav a{margin-right:1em;font-size:.9em}code{background:#f4f4f4;padding:0 .25em}
dl dt{font-weight:600;margin-top:.5em}dl dd{margin-left:1.5em;font-size:.9em}
.skip{color:#8a6d3b;background:#fcf8e3;padding:.4em .8em;border-radius:3px;font-size:.9em}
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    return DASH if np.isnan(number) else f"{number:.{digits}f}"


def _esc(text: Any) -> str:
    return html.escape(str(text))


def table(header_groups: list[tuple[str, int]] | None, headers: list[str], rows: Iterable[list[Any]],
          caption: str = "", best: dict[int, str] | None = None, separators: Iterable[int] = ()) -> str:
    """An HTML table; ``header_groups`` = [(label, span)] above ``headers``; numbers formatted to 3
    decimals, None as a dash; ``best`` = {column: "max" | "min"} bolds the best value per column;
    ``separators``: row indices that start a new block (a rule above them)."""
    rows = [list(r) for r in rows]
    separators = set(separators)
    bold: dict[int, float] = {}
    for column, mode in (best or {}).items():
        values = [r[column] for r in rows if isinstance(r[column], (int, float)) and r[column] is not None
                  and not np.isnan(float(r[column]))]
        if len(values) > 1:
            bold[column] = max(values) if mode == "max" else min(values)
    out = ["<table>"]
    if caption:
        out.append(f"<caption>{caption}</caption>")
    if header_groups:
        out.append("<tr>" + "".join(f'<th class="group" colspan="{span}">{label}</th>' for label, span in header_groups) + "</tr>")
    out.append("<tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>")
    for index, row in enumerate(rows):
        cells = []
        for column, value in enumerate(row):
            is_best = column in bold and isinstance(value, (int, float)) and value is not None and float(value) == bold[column]
            text = value if (column == 0 and isinstance(value, str)) else _fmt(value)
            cells.append(f'<td class="best">{text}</td>' if is_best else f"<td>{text}</td>")
        css = ' class="sep"' if index in separators and index else ""
        out.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _figure_html(image: np.ndarray | plt.Figure | None, caption: str, alt: str) -> str:
    if image is None:
        return ""
    return f'<figure><img alt="{_esc(alt)}" src="{png_data_uri(image)}"><figcaption>{caption}</figcaption></figure>'


def _protocol(metrics: dict | None, name: str) -> dict | None:
    return ((metrics or {}).get("protocols") or {}).get(name)


def _acc_miou_bf1(summary: dict | None) -> list[float | None]:
    return [_value(summary, "pixel", "accuracy"), _value(summary, "pixel", "miou"), _value(summary, "pixel", "boundary_f1")]


def _image_cells(summary: dict | None) -> list[float | None]:
    return [_value(summary, "image", k) for k in ("accuracy", "average_precision", "roc_auc", "f1", "recall_fake", "recall_real")]


def _both_tasks_table(results: dict[str, dict], rows: list[tuple[str, dict[str, dict | None]]], first: str,
                      caption: str, with_n: bool = True) -> str:
    """Rows of (label, {task: summary}) laid out as DiffSeg30k's tables: the binary task's Acc /
    mIoU / bF1, then the semantic task's, then the binary model's image AP and R@50."""
    tasks = [t for t in TASKS if t in results]
    groups = [("", 2 if with_n else 1)] + [(f"{t} segmentation", 3) for t in tasks] + [("image level (binary model)", 2)]
    headers = [first] + (["n edited"] if with_n else []) + ["Acc", "mIoU", "bF1"] * len(tasks) + ["AP", "R@50 fake"]
    body = []
    for label, per_task in rows:
        any_summary = next((v for v in per_task.values() if v), None)
        row: list[Any] = [_esc(label)] + ([None if any_summary is None else any_summary.get("n_fake")] if with_n else [])
        for task in tasks:
            row += _acc_miou_bf1(per_task.get(task))
        image_source = per_task.get("binary") or any_summary
        row += [_value(image_source, "image", "average_precision"), _value(image_source, "image", "recall_fake")]
        body.append(row)
    return table(groups, headers, body, caption=caption)


def render_report(results: dict[str, dict], examples: dict[str, np.ndarray | None] | None = None,
                  title: str = "EditLens evaluation report") -> str:
    """The HTML page for one evaluation run.

    Args:
        results: {task: metrics dict of ``evaluate_checkpoint``}, tasks "binary" and/or "semantic".
        examples: {task: qualitative grid image (H, W, 3) uint8} (optional).
    Returns:
        A complete HTML document (str) with every figure embedded.
    """
    results = {t: m for t, m in results.items() if m}
    if not results:
        raise ValueError("render_report needs the metrics of at least one task")
    first = next(iter(results.values()))
    tolerance = first.get("conventions", {}).get("boundary_tolerance_px")
    protocols_run = sorted({p for m in results.values() for p in (m.get("protocols") or {})})
    pixel_threshold = next((_value(m, "pixel_per_image", "threshold") for m in results.values() if m.get("pixel_per_image")), None)
    image_threshold = _value(first, "image", "threshold")
    models = ", ".join(f"{t}: <code>{_esc(m.get('model'))}</code>" for t, m in results.items())
    sections: list[str] = []
    nav: list[tuple[str, str]] = []

    def section(anchor: str, heading: str, body: str) -> None:
        nav.append((anchor, heading))
        sections.append(f'<h2 id="{anchor}">{heading}</h2>\n{body}')

    # 1. headline tables, as the papers lay them out
    in_domain = {t: _protocol(m, "in_domain") for t, m in results.items()}
    body = [_both_tasks_table(results, [(f"{first.get('model')} ({first.get('split')})", in_domain)], "Model",
                              "Localisation, DiffSeg30k Table 2 layout (dataset-level confusion matrix; mIoU and bF1 "
                              "exclude background)")]
    body.append(table([("", 1), ("pixel, dataset level", 3), ("", 1)], ["task", "mIoU incl. background",
                      "mean class Acc", "pixel Acc", "bF1 tolerance (px)"],
                      [[t, _value(s, "pixel", "miou_with_background"), _value(s, "pixel", "mean_class_accuracy"),
                        _value(s, "pixel", "accuracy"), tolerance] for t, s in in_domain.items()],
                      caption="Dataset-level pixel metrics, the other conventions (pytorch-fcn)"))
    rows = []
    for task, summary in in_domain.items():
        per_image = (summary or {}).get("pixel_per_image") or {}
        manipulated, everything = per_image.get("manipulated") or {}, per_image.get("all") or {}
        rows.append([task, manipulated.get("n_images"), manipulated.get("f1"), manipulated.get("iou"), manipulated.get("accuracy"),
                     everything.get("n_images"), everything.get("f1"), everything.get("iou"), everything.get("accuracy")])
    body.append(table([("", 1), ("manipulated images only", 4), ("all images (F1 = IoU = 0 on authentic)", 4)],
                      ["task", "n", "F1", "IoU", "Acc", "n", "F1", "IoU", "Acc"], rows,
                      caption=f"Per-image pixel metrics at threshold {_fmt(pixel_threshold, 2)} (strict &gt;), IMDL-BenCo convention "
                              "(averaged over images)"))
    body.append(table([("", 1), ("image level (does the image contain an edit?)", 6)],
                      ["task", "Acc", "AP (mAP)", "AUC", "F1", "R@50 fake", "R@50 real"],
                      [[t, *_image_cells(s)] for t, s in in_domain.items()],
                      caption="Image-level detection (DiffSeg30k Acc / mAP; BR-Gen F1 / AUC / R@50)"))
    notes = [n for m in results.values() for n in m.get("notes", [])]
    if notes:
        body.append("".join(f'<p class="skip">{_esc(n)}</p>' for n in notes))
    section("headline", "Headline results", "\n".join(body))

    # 2. per class + confusion matrices
    body = []
    figures = []
    for task, metrics in results.items():
        summary = in_domain[task]
        if not summary or not summary.get("pixel"):
            continue
        pixel = summary["pixel"]
        names = metrics.get("class_names", [])
        body.append(table(None, ["class", "IoU", "class Acc (recall)", "bF1"],
                          [[_esc(n), pixel["class_iou"].get(n), pixel["class_accuracy"].get(n),
                            None if k == 0 else pixel["boundary_f1_per_class"].get(n)] for k, n in enumerate(names)],
                          caption=f"{task} task, per class (bF1 at {tolerance} px; background has no bF1)"))
        if summary.get("confusion_matrix"):
            figures.append(_figure_html(confusion_figure(np.asarray(summary["confusion_matrix"]), names, task),
                                        f"{task} task: confusion matrix over the whole split, rows normalised "
                                        "(pixel counts in brackets)", f"{task} confusion matrix"))
    if body:
        section("per-class", "Per class and confusion matrices",
                '<div class="grid2">' + "".join(body) + '</div><div class="grid2">' + "".join(figures) + "</div>")

    # 3. breakdowns
    if any(_protocol(m, "breakdowns") for m in results.values()):
        body = []
        reference = next(_protocol(m, "breakdowns") for m in results.values() if _protocol(m, "breakdowns"))
        body.append(f'<p class="note">Each group = its edited images (membership by '
                    f'<code>{_esc(reference.get("membership"))}</code> turn) + '
                    f'{"all" if reference.get("include_authentic") else "no"} authentic images of the split as '
                    "negatives. Same predictions as the headline tables, grouped.</p>")
        titles = {"generator": "Per generator (configured name, from provenance)", "turns": "Per number of edit turns",
                  "area_bucket": "Per edited-area bucket (BR-Gen Table 7 reports R@50 fake per bucket)",
                  "region_kind": "Per region kind (thing / stuff / background, BR-Gen)"}
        for by, heading in titles.items():
            names: list[str] = []
            for m in results.values():
                for name in (_protocol(m, "breakdowns") or {}).get(by, {}):
                    if name not in names:
                        names.append(name)
            if not names:
                continue
            rows = [(name, {t: (_protocol(m, "breakdowns") or {}).get(by, {}).get(name) for t, m in results.items()})
                    for name in names]
            body.append(f"<h3>{heading}</h3>")
            body.append(_both_tasks_table(results, rows, by.replace("_", " "), ""))
            body.append(_figure_html(breakdown_figure(results, by, heading), heading, f"{by} bars"))
        section("breakdowns", "Breakdowns", "\n".join(body))

    # 4. robustness
    if any(_protocol(m, "robustness") for m in results.values()):
        robust = {t: _protocol(m, "robustness") or {} for t, m in results.items()}
        skipped = [r.get("skipped") for r in robust.values() if r.get("skipped")]
        condition_names: list[str] = []
        for r in robust.values():
            for c in r.get("conditions", []):
                if c["name"] not in condition_names:
                    condition_names.append(c["name"])
        if condition_names:
            rows = [("baseline (clean)", in_domain)]
            rows += [(name, {t: next((c for c in r.get("conditions", []) if c["name"] == name), None)
                             for t, r in robust.items()}) for name in condition_names]
            body = [_both_tasks_table(results, rows, "Distortion",
                                      "Robustness, DiffSeg30k Table 3 layout (perturbations applied to the evaluation "
                                      "images only)", with_n=False),
                    _figure_html(robustness_figure(results), "Robustness curves (OpenSDI Fig. 5 style): each metric "
                                 "against the perturbation strength; dashed lines are the clean values.",
                                 "robustness curves")]
        else:
            body = [f'<p class="skip">{_esc(skipped[0] if skipped else "no conditions")}</p>']
        section("robustness", "Robustness", "\n".join(body))

    # 5. cross-generator
    if any(_protocol(m, "cross_generator") for m in results.values()):
        cross = {t: _protocol(m, "cross_generator") or {} for t, m in results.items()}
        ran = {t: c for t, c in cross.items() if not c.get("skipped")}
        if ran:
            reference = next(iter(ran.values()))
            rows = [("seen generators (in-domain)", {t: c.get("seen_set") for t, c in ran.items()}),
                    ("held-out: " + " + ".join(reference["held_out"]), {t: c.get("held_out_set") for t, c in ran.items()})]
            for name in reference["held_out"]:
                rows.append((f"held-out: {name}", {t: c.get("per_generator", {}).get(name) for t, c in ran.items()}))
            body = [f'<p class="note">Held-out generators {_esc(reference["held_out"])} (from {_esc(reference["source"])}); '
                    f'an image belongs to the held-out set by its <code>{_esc(reference["membership"])}</code> turn.'
                    + (f' Not present in the split: {_esc(reference["missing"])}.' if reference.get("missing") else "")
                    + "</p>",
                    _both_tasks_table({t: results[t] for t in ran}, rows, "Generalize to",
                                      "Cross-generator, DiffSeg30k Table 5 layout (train-on-one / test-on-each, "
                                      "OpenSDI Tables 3-4, is the per-held-out-generator rows)")]
        else:
            body = [f'<p class="skip">Skipped: {_esc(next(iter(cross.values())).get("skipped"))}. Train with '
                    "<code>train.exclude_generators</code> (recorded in the checkpoint) or set "
                    "<code>evaluate.protocols.cross_generator.held_out</code>.</p>"]
        section("cross-generator", "Cross-generator generalisation", "\n".join(body))

    # 6. LoRA as parent
    if any(_protocol(m, "lora_as_parent") for m in results.values()):
        body = []
        for task, metrics in results.items():
            lora = _protocol(metrics, "lora_as_parent") or {}
            if lora.get("skipped"):
                body.append(f'<p class="skip">{task}: skipped: {_esc(lora["skipped"])}</p>')
                continue
            rows = []
            for pair in lora.get("pairs", []):
                if pair.get("skipped"):
                    rows.append([_esc(f"{pair['variant']} as {pair['parent']}"), None, None, None, None, None])
                    continue
                for label, summary in ((pair["parent"], pair.get("parent_edits")),
                                       (f"{pair['variant']} as {pair['parent']}", pair.get("variant_as_parent"))):
                    rows.append([_esc(label), None if summary is None else summary.get("n_fake"), *_acc_miou_bf1(summary),
                                 _value(summary, "image", "recall_fake")])
            body.append(table(None, ["edits by", "n edited", "Acc", "mIoU", "bF1", "R@50 fake"], rows,
                              caption=f"{task} task: LoRA variant scored as its parent class (DiffSeg30k Table 4)"))
        section("lora", "Generator variants (LoRA) as their parent", "\n".join(body))

    # 7. qualitative examples
    if examples:
        figures = [_figure_html(grid, f"{task} task: image, ground truth and prediction"
                                + (" (colours: generator that made the pixel)" if task == "semantic" else ""),
                                f"{task} examples") for task, grid in examples.items() if grid is not None]
        if figures:
            section("examples", "Qualitative examples", '<div class="grid2">' + "".join(figures) + "</div>")

    # 8. conventions
    conventions = first.get("conventions", {})
    items = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in conventions.items())
    training = "".join(f"<dt>{t}: training</dt><dd>{_esc(json.dumps(m.get('training', {})))}</dd>" for t, m in results.items())
    timing = "".join(f"<dt>{t}: evaluation seconds</dt><dd>{_esc(json.dumps({k: round(v, 2) for k, v in (m.get('timing_s') or {}).items()}))}</dd>"
                     for t, m in results.items())
    section("conventions", "Conventions and provenance of the numbers", f"<dl>{items}{training}{timing}</dl>")

    header = (f"<h1>{_esc(title)}</h1><p class=\"meta\">{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} &middot; "
              f"split <code>{_esc(first.get('split'))}</code>: {first.get('n_images')} images ({first.get('n_edited')} edited, "
              f"{first.get('n_authentic')} authentic) &middot; models {models} &middot; bF1 tolerance {tolerance} px &middot; "
              f"per-image pixel threshold {_fmt(pixel_threshold, 2)}, image threshold {_fmt(image_threshold, 2)} "
              f"(strict &gt;) &middot; protocols: {', '.join(protocols_run)}</p>")
    links = "<nav>" + "".join(f'<a href="#{a}">{h}</a>' for a, h in nav) + "</nav>"
    return _page(title, header + links + "\n".join(sections))


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def runs_of(metrics: dict, prefix: str) -> dict[str, dict]:
    """The runs inside one checkpoint's metrics: ``"<prefix>: clean"`` (in-domain) and one per
    robustness condition, each a summary dict."""
    runs = {f"{prefix}: clean": _protocol(metrics, "in_domain") or metrics}
    for condition in (_protocol(metrics, "robustness") or {}).get("conditions", []):
        runs[f"{prefix}: {condition['name']}"] = condition
    return runs


def render_comparison(runs: dict[str, dict], title: str = "EditLens comparison") -> str:
    """Several runs side by side: one row per run (a summary dict: in-domain result, a robustness
    condition, or another model's), the best value per column in bold, and bars of the key metrics."""
    if not runs:
        raise ValueError("render_comparison needs at least one run")
    headers = ["run", "n", "Acc", "mIoU", "mIoU+bg", "bF1", "F1", "IoU", "F1", "IoU",
               "Acc", "AP", "AUC", "F1", "R@50 fake", "R@50 real"]
    groups = [("", 2), ("pixel, dataset level", 4), ("per image, manip.", 2), ("per image, all", 2), ("image level", 6)]
    rows = []
    for name, s in runs.items():
        rows.append([_esc(name), s.get("n_images"), _value(s, "pixel", "accuracy"), _value(s, "pixel", "miou"),
                     _value(s, "pixel", "miou_with_background"), _value(s, "pixel", "boundary_f1"),
                     _value(s, "pixel_per_image", "manipulated", "f1"), _value(s, "pixel_per_image", "manipulated", "iou"),
                     _value(s, "pixel_per_image", "all", "f1"), _value(s, "pixel_per_image", "all", "iou"),
                     *_image_cells(s)])
    body = [f"<h1>{_esc(title)}</h1>",
            f'<p class="meta">{_dt.datetime.now().strftime("%Y-%m-%d %H:%M")} &middot; {len(runs)} runs; best value per '
            "column in bold. Dataset level = one confusion matrix over the set (DiffSeg30k); per image = IMDL-BenCo "
            "averages at threshold 0.5; image scores as defined in each run's report.</p>",
            table(groups, headers, rows, best={k: "max" for k in range(2, len(headers))}),
            _figure_html(comparison_figure(runs), "Key metrics per run", "comparison bars")]
    return _page(title, "\n".join(body))


def main(argv: list[str] | None = None) -> None:
    """``python -m pipelines.evaluate.report compare NAME=metrics.json ... --out page.html``: a
    comparison page of saved metrics (a combined metrics.json or one task's file)."""
    import fsspec

    parser = argparse.ArgumentParser(prog="python -m pipelines.evaluate.report", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    compare = sub.add_parser("compare", help="several saved runs side by side")
    compare.add_argument("runs", nargs="+", help="NAME=PATH of a metrics JSON (local path or fsspec URL)")
    compare.add_argument("--out", required=True, help="where to write the HTML page")
    compare.add_argument("--clean-only", action="store_true", help="leave the robustness conditions out")
    args = parser.parse_args(argv)
    runs: dict[str, dict] = {}
    for spec in args.runs:
        name, _, path = spec.partition("=")
        if not path:
            name, path = spec, spec
        with fsspec.open(path, "r") as fh:
            document = json.load(fh)
        per_task = {t: document[t] for t in TASKS if isinstance(document.get(t), dict)} or {document.get("task", "run"): document}
        for task, metrics in per_task.items():
            found = runs_of(metrics, f"{name} / {task}")
            if args.clean_only:
                found = dict(list(found.items())[:1])
            runs.update(found)
    with fsspec.open(args.out, "w") as fh:
        fh.write(render_comparison(runs))
    print(f"wrote {args.out} ({len(runs)} runs)")


if __name__ == "__main__":
    main()
