"""The evaluation report: one self-contained HTML page per run (inline CSS, figures embedded as
base64 PNG, no external asset), tables laid out like the seeds' papers, and a comparison page
for several runs side by side.

The pages are Jinja2 templates (``templates/``: ``page`` and ``macros``, then one template per
report section); this module only gathers each section's numbers into plain dicts and tables, and
``figures`` draws every picture. Everything reads the metrics dicts written by
``nodes.evaluate_checkpoint`` (the same documents as ``metrics_<task>.json``), so a page can be
rebuilt from saved JSON alone:

    python -m pipelines.evaluate.report compare clean=data/08_reporting/metrics.json \\
        other=/elsewhere/metrics.json --out comparison.html

Whatever is empty still renders: an undefined metric is a dash, an undefined figure says so, and
the page names what is missing (e.g. a split without a single edited image).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from collections.abc import Iterable
from functools import cache
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from pipelines.evaluate import figures
from pipelines.evaluate.figures import protocol as _protocol
from pipelines.evaluate.figures import value as _value

TASKS = ("binary", "semantic")
DASH = Markup("&mdash;")
BREAKDOWN_TITLES = {"generator": "Per generator (configured name, from provenance)",
                    "turns": "Per number of edit turns",
                    "area_bucket": "Per edited-area bucket (BR-Gen Table 7 reports R@50 fake per bucket)",
                    "region_kind": "Per region kind (thing / stuff / background, BR-Gen)"}
# What a reader is told is undefined, per headline metric (label, path, needs a pixel-level model).
HEADLINE_METRICS = [("mIoU", ("pixel", "miou"), True), ("bF1", ("pixel", "boundary_f1"), True),
                    ("per-image F1 on manipulated images", ("pixel_per_image", "manipulated", "f1"), True),
                    ("image AP", ("image", "average_precision"), False), ("image AUC", ("image", "roc_auc"), False),
                    ("R@50 fake", ("image", "recall_fake"), False)]


@cache
def _environment() -> Environment:
    return Environment(loader=PackageLoader("pipelines.evaluate", "templates"),
                       autoescape=select_autoescape(["j2"], default_for_string=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _render(template: str, **context: Any) -> str:
    return _environment().get_template(template).render(**context)


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
        return str(value)
    return DASH if np.isnan(number) else f"{number:.{digits}f}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not np.isnan(float(value))


def table(header_groups: list[tuple[str, int]] | None, headers: list[str], rows: Iterable[list[Any]],
          caption: str = "", best: dict[int, str] | None = None, separators: Iterable[int] = ()) -> dict:
    """A table for the ``macros.table`` template: ``header_groups`` = [(label, span)] above
    ``headers``; numbers formatted to 3 decimals, None / NaN as a dash, a string in the first
    column kept as is; ``best`` = {column: "max" | "min"} bolds the best value per column (only
    where two or more are defined); ``separators``: row indices that start a new block."""
    rows = [list(r) for r in rows]
    bold: dict[int, float] = {}
    for column, mode in (best or {}).items():
        values = [float(r[column]) for r in rows if _is_number(r[column])]
        if len(values) > 1:
            bold[column] = max(values) if mode == "max" else min(values)
    cells = [[(value if (column == 0 and isinstance(value, str)) else _fmt(value),
               column in bold and _is_number(value) and float(value) == bold[column])
              for column, value in enumerate(row)] for row in rows]
    return {"caption": caption, "groups": header_groups or [], "headers": headers, "rows": cells,
            "separators": set(separators)}


def _figure(image: Any, caption: str, alt: str) -> dict | None:
    """A figure for ``macros.figure``: an (H, W, 3) uint8 array or a matplotlib figure, or None."""
    if image is None:
        return None
    return {"uri": figures.png_data_uri(image), "caption": caption, "alt": alt}


BF1_HEADERS = ["bF1 (2 px pooled)", "bF1 (bfscore 0.75 %)"]  # both conventions, named wherever one is shown


def _acc_miou_bf1(summary: dict | None) -> list[float | None]:
    return [_value(summary, "pixel", "accuracy"), _value(summary, "pixel", "miou"), _value(summary, "pixel", "boundary_f1"),
            _value(summary, "pixel", "boundary_f1_bfscore")]


def _image_cells(summary: dict | None) -> list[float | None]:
    return [_value(summary, "image", k) for k in ("accuracy", "average_precision", "roc_auc", "f1", "recall_fake", "recall_real")]


def _both_tasks_table(results: dict[str, dict], rows: list[tuple[str, dict[str, dict | None]]], first: str,
                      caption: str, with_n: bool = True) -> dict:
    """Rows of (label, {task: summary}) laid out as DiffSeg30k's tables: the binary task's Acc /
    mIoU / bF1, then the semantic task's, then the binary model's image AP and R@50."""
    tasks = [t for t in TASKS if t in results]
    groups = [("", 2 if with_n else 1)] + [(f"{t} segmentation", 4) for t in tasks] + [("image level (binary model)", 2)]
    headers = [first] + (["n edited"] if with_n else []) + ["Acc", "mIoU", *BF1_HEADERS] * len(tasks) + ["AP", "R@50 fake"]
    body = []
    for label, per_task in rows:
        any_summary = next((v for v in per_task.values() if v), None)
        row: list[Any] = [label] + ([None if any_summary is None else any_summary.get("n_fake")] if with_n else [])
        for task in tasks:
            row += _acc_miou_bf1(per_task.get(task))
        image_source = per_task.get("binary") or any_summary
        row += [_value(image_source, "image", "average_precision"), _value(image_source, "image", "recall_fake")]
        body.append(row)
    return table(groups, headers, body, caption=caption)


# --- sections: each returns the context of its template, or None when its protocol did not run ---


def _headline(results: dict[str, dict], in_domain: dict[str, dict | None], tolerance: Any,
              pixel_threshold: float | None) -> dict:
    first = next(iter(results.values()))
    tables = [_both_tasks_table(results, [(f"{first.get('model')} ({first.get('split')})", in_domain)], "Model",
                                "Localisation, DiffSeg30k Table 2 layout (dataset-level confusion matrix; mIoU and bF1 "
                                "exclude background)"),
              table([("", 1), ("pixel, dataset level", 4), ("", 1)],
                    ["task", "mIoU incl. background", "mean class Acc", "pixel Acc", "pixel AUC (pooled)",
                     "bF1 tolerance (px)"],
                    [[t, _value(s, "pixel", "miou_with_background"), _value(s, "pixel", "mean_class_accuracy"),
                      _value(s, "pixel", "accuracy"), _value(s, "pixel", "auc_pooled"), tolerance]
                     for t, s in in_domain.items()],
                    caption="Dataset-level pixel metrics, the other conventions (pytorch-fcn)")]
    rows = []
    for task, summary in in_domain.items():
        per_image = (summary or {}).get("pixel_per_image") or {}
        manipulated, everything = per_image.get("manipulated") or {}, per_image.get("all") or {}
        rows.append([task, *[manipulated.get(k) for k in ("n_images", "f1", "iou", "auc", "accuracy")],
                     *[everything.get(k) for k in ("n_images", "f1", "iou", "auc", "accuracy")]])
    tables.append(table([("", 1), ("manipulated images only", 5), ("all images (F1 = IoU = AUC = 0 on authentic)", 5)],
                        ["task", "n", "F1", "IoU", "AUC", "Acc", "n", "F1", "IoU", "AUC", "Acc"], rows,
                        caption=f"Per-image pixel metrics at threshold {_fmt(pixel_threshold, 2)} (strict >), "
                                "IMDL-BenCo convention (averaged over images)"))
    tables.append(table([("", 1), ("image level (does the image contain an edit?)", 6)],
                        ["task", "Acc", "AP (mAP)", "AUC", "F1", "R@50 fake", "R@50 real"],
                        [[t, *_image_cells(s)] for t, s in in_domain.items()],
                        caption="Image-level detection (DiffSeg30k Acc / mAP; BR-Gen F1 / AUC / R@50)"))
    return {"tables": tables, "notes": [n for m in results.values() for n in m.get("notes", [])]}


def _per_class(results: dict[str, dict], in_domain: dict[str, dict | None], tolerance: Any) -> dict:
    tables, figs = [], []
    for task, metrics in results.items():
        summary = in_domain[task]
        if not summary or not summary.get("pixel"):
            continue
        pixel, names = summary["pixel"], metrics.get("class_names", [])
        bfscore = pixel.get("boundary_f1_bfscore_per_class") or {}
        tables.append(table(None, ["class", "IoU", "class Acc (recall)", *BF1_HEADERS],
                            [[n, pixel["class_iou"].get(n), pixel["class_accuracy"].get(n),
                              None if k == 0 else pixel["boundary_f1_per_class"].get(n),
                              None if k == 0 else bfscore.get(n)] for k, n in enumerate(names)],
                            caption=f"{task} task, per class (bF1 pooled at {tolerance} px, and MATLAB bfscore per "
                                    "image at 0.75 % of the diagonal; background has no bF1)"))
        if summary.get("confusion_matrix"):
            figs.append(_figure(figures.confusion_figure(np.asarray(summary["confusion_matrix"]), names, task),
                                f"{task} task: confusion matrix over the whole split, rows normalised "
                                "(pixel counts in brackets)", f"{task} confusion matrix"))
    return {"tables": tables, "figures": figs,
            "missing": "No pixel-level result: per-class IoU and confusion matrices need a pixel-level model."}


def _breakdowns(results: dict[str, dict]) -> dict | None:
    present = [_protocol(m, "breakdowns") for m in results.values() if _protocol(m, "breakdowns")]
    if not present:
        return None
    breakdowns = []
    for by, heading in BREAKDOWN_TITLES.items():
        names = figures.breakdown_groups_of(results, by)
        if not names:
            continue
        rows = [(name, {t: (_protocol(m, "breakdowns") or {}).get(by, {}).get(name) for t, m in results.items()})
                for name in names]
        breakdowns.append({"heading": heading, "table": _both_tasks_table(results, rows, by.replace("_", " "), ""),
                           "figure": _figure(figures.breakdown_figure(results, by, heading), heading, f"{by} bars")})
    return {"membership": present[0].get("membership"), "include_authentic": present[0].get("include_authentic"),
            "breakdowns": breakdowns,
            "missing": "No breakdown group: the split has no edited image to group by generator, turns, area or "
                       "region kind."}


def _robustness(results: dict[str, dict], in_domain: dict[str, dict | None]) -> dict | None:
    if not any(_protocol(m, "robustness") for m in results.values()):
        return None
    robust = {t: _protocol(m, "robustness") or {} for t, m in results.items()}
    skipped = [r.get("skipped") for r in robust.values() if r.get("skipped")]
    condition_names: list[str] = []
    for r in robust.values():
        condition_names += [c["name"] for c in r.get("conditions", []) if c["name"] not in condition_names]
    if not condition_names:
        return {"table": None, "figure": None, "skipped": skipped[0] if skipped else "no conditions"}
    rows = [("baseline (clean)", in_domain)]
    rows += [(name, {t: next((c for c in r.get("conditions", []) if c["name"] == name), None)
                     for t, r in robust.items()}) for name in condition_names]
    return {"table": _both_tasks_table(results, rows, "Distortion", "Robustness, DiffSeg30k Table 3 layout "
                                       "(perturbations applied to the evaluation images only)", with_n=False),
            "figure": _figure(figures.robustness_figure(results), "Robustness curves (OpenSDI Fig. 5 style): each "
                              "metric against the perturbation strength; dashed lines are the clean values.",
                              "robustness curves"),
            "skipped": None}


def _cross_generator(results: dict[str, dict]) -> dict | None:
    if not any(_protocol(m, "cross_generator") for m in results.values()):
        return None
    cross = {t: _protocol(m, "cross_generator") or {} for t, m in results.items()}
    ran = {t: c for t, c in cross.items() if not c.get("skipped")}
    if not ran:
        return {"table": None, "skipped": next(iter(cross.values())).get("skipped")}
    reference = next(iter(ran.values()))
    rows = [("seen generators (in-domain)", {t: c.get("seen_set") for t, c in ran.items()}),
            ("held-out: " + " + ".join(reference["held_out"]), {t: c.get("held_out_set") for t, c in ran.items()})]
    rows += [(f"held-out: {name}", {t: c.get("per_generator", {}).get(name) for t, c in ran.items()})
             for name in reference["held_out"]]
    return {"table": _both_tasks_table({t: results[t] for t in ran}, rows, "Generalize to",
                                       "Cross-generator, DiffSeg30k Table 5 layout (train-on-one / test-on-each, "
                                       "OpenSDI Tables 3-4, is the per-held-out-generator rows)"),
            "held_out": reference["held_out"], "source": reference["source"], "membership": reference["membership"],
            "missing": reference.get("missing"), "skipped": None}


def _lora(results: dict[str, dict]) -> dict | None:
    if not any(_protocol(m, "lora_as_parent") for m in results.values()):
        return None
    tasks = []
    for task, metrics in results.items():
        lora = _protocol(metrics, "lora_as_parent") or {}
        if lora.get("skipped"):
            tasks.append((task, lora["skipped"], None))
            continue
        rows = []
        for pair in lora.get("pairs", []):
            if pair.get("skipped"):
                rows.append([f"{pair['variant']} as {pair['parent']}", None, None, None, None, None, None])
                continue
            for label, summary in ((pair["parent"], pair.get("parent_edits")),
                                   (f"{pair['variant']} as {pair['parent']}", pair.get("variant_as_parent"))):
                rows.append([label, None if summary is None else summary.get("n_fake"), *_acc_miou_bf1(summary),
                             _value(summary, "image", "recall_fake")])
        tasks.append((task, None, table(None, ["edits by", "n edited", "Acc", "mIoU", *BF1_HEADERS, "R@50 fake"], rows,
                                        caption=f"{task} task: LoRA variant scored as its parent class "
                                                "(DiffSeg30k Table 4)")))
    return {"tasks": tasks}


def _examples(examples: dict[str, np.ndarray | None]) -> dict:
    figs = [_figure(grid, f"{task} task: image, ground truth and prediction"
                    + (" (colours: generator that made the pixel)" if task == "semantic" else ""), f"{task} examples")
            for task, grid in examples.items() if grid is not None]
    return {"figures": figs, "missing": "No qualitative example: the split had no image to show."}


def _conventions(results: dict[str, dict]) -> dict:
    first = next(iter(results.values()))
    items = [(k, v) for k, v in first.get("conventions", {}).items()]
    items += [(f"{t}: training", json.dumps(m.get("training", {}))) for t, m in results.items()]
    items += [(f"{t}: evaluation seconds", json.dumps({k: round(v, 2) for k, v in (m.get("timing_s") or {}).items()}))
              for t, m in results.items()]
    return {"entries": items}


def _missing(results: dict[str, dict], in_domain: dict[str, dict | None]) -> list[str]:
    """Sentences naming what this run could not measure, shown under the page header."""
    first = next(iter(results.values()))
    out = []
    if first.get("n_edited") == 0:
        out.append("The split has no edited image: every metric of edited pixels or fake images (mIoU, bF1, "
                   "per-image F1 on manipulated images, image AP / AUC, R@50 fake, the breakdowns) is undefined "
                   "and shown as a dash.")
    if first.get("n_authentic") == 0:
        out.append("The split has no authentic image: image AP / AUC and R@50 real are undefined.")
    if out:  # a split without edited or authentic images: that sentence already names every gap
        return out
    for task, summary in in_domain.items():
        pixel_level = results[task].get("pixel_level", True)
        undefined = [label for label, path, pixel in HEADLINE_METRICS
                     if (pixel_level or not pixel) and _value(summary, *path) is None]
        if undefined:
            out.append(f"{task} task: {', '.join(undefined)} undefined (0 / 0), shown as a dash.")
    return out


def _header(results: dict[str, dict], in_domain: dict[str, dict | None], tolerance: Any,
            pixel_threshold: float | None) -> dict:
    first = next(iter(results.values()))
    return {"date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "split": first.get("split"),
            "n_images": first.get("n_images"), "n_edited": first.get("n_edited"),
            "n_authentic": first.get("n_authentic"), "models": [(t, m.get("model")) for t, m in results.items()],
            "tolerance": tolerance, "pixel_threshold": _fmt(pixel_threshold, 2),
            "image_threshold": _fmt(_value(first, "image", "threshold"), 2),
            "protocols": sorted({p for m in results.values() for p in (m.get("protocols") or {})}),
            "missing": _missing(results, in_domain)}


def _with_notes(section: dict, notes: list[str]) -> dict:
    return {**section, "notes": [*notes, *section.get("notes", [])]}


def _paper_tables(built: list[dict] | None) -> dict | None:
    """The ``paper_tables`` section: each cell's text, its paper number and footnoted n/a reasons."""
    if not built:
        return None
    tables = []
    for table in built:
        reasons: list[str] = []
        rows = []
        for row in table["rows"]:
            cells = []
            for cell in row["cells"]:
                if cell["na"]:
                    reasons.append(f"{row['label']}: {cell['na']}")
                cells.append({**cell, "note": len(reasons) if cell["na"] else 0,
                              "text": _fmt(cell["ours"], table["digits"]),
                              "paper_text": DASH if cell["paper"] is None else f"{cell['paper']:g}"})
            rows.append({"label": row["label"], "cells": cells})
        tables.append({**table, "rows": rows, "reasons": reasons})
    return {"tables": tables}


def render_report(results: dict[str, dict], examples: dict[str, np.ndarray | None] | None = None,
                  title: str = "EditLens evaluation report", paper_tables: list[dict] | None = None,
                  learning_curve: Any = None) -> str:
    """The HTML page for one evaluation run.

    Args:
        results: {task: metrics dict of ``evaluate_checkpoint``}, tasks "binary" and/or "semantic".
        examples: {task: qualitative grid image (H, W, 3) uint8 or None} (optional; no section if None).
        paper_tables: ``paper_tables.build_tables`` output: the recipe's paper tables, first on the
            page (no section when None or empty).
        learning_curve: the learning-curve figure (matplotlib, ``learning_curve.learning_curve_figure``)
            or None (no section).
    Returns:
        A complete HTML document (str) with every figure embedded.
    Raises:
        ValueError: no task has metrics.
    """
    unsupported = [n for m in results.values() if m and m.get("unsupported_task") for n in m.get("notes", [])]
    results = {t: m for t, m in results.items() if m and not m.get("unsupported_task")}
    if not results:
        raise ValueError("render_report needs the metrics of at least one task")
    first = next(iter(results.values()))
    tolerance = first.get("conventions", {}).get("boundary_tolerance_px")
    pixel_threshold = next((_value(m, "pixel_per_image", "threshold") for m in results.values()
                            if m.get("pixel_per_image")), None)
    in_domain = {t: _protocol(m, "in_domain") for t, m in results.items()}
    sections = [
        ("paper-tables", "The paper's tables: ours beside the published numbers", _paper_tables(paper_tables)),
        ("headline", "Headline results", _with_notes(_headline(results, in_domain, tolerance, pixel_threshold), unsupported)),
        ("per-class", "Per class and confusion matrices", _per_class(results, in_domain, tolerance)),
        ("breakdowns", "Breakdowns", _breakdowns(results)),
        ("robustness", "Robustness", _robustness(results, in_domain)),
        ("cross-generator", "Cross-generator generalisation", _cross_generator(results)),
        ("lora", "Generator variants (LoRA) as their parent", _lora(results)),
        ("learning-curve", "Learning curve", None if learning_curve is None else {"figures": [_figure(
            learning_curve, "Validation metrics against training steps (train.trainer.val_every), one panel per task",
            "learning curve")], "missing": "No learning curve."}),
        ("examples", "Qualitative examples", None if examples is None else _examples(examples)),
        ("conventions", "Conventions and provenance of the numbers", _conventions(results)),
    ]
    shown = [{"anchor": anchor, "heading": heading, "template": anchor.replace("-", "_") + ".html.j2", "s": context}
             for anchor, heading, context in sections if context is not None]
    return _render("report.html.j2", title=title, sections=shown,
                   header=_header(results, in_domain, tolerance, pixel_threshold))


def runs_of(metrics: dict, prefix: str) -> dict[str, dict]:
    """The runs inside one checkpoint's metrics: ``"<prefix>: clean"`` (in-domain) and one per
    robustness condition, each a summary dict."""
    runs = {f"{prefix}: clean": _protocol(metrics, "in_domain") or metrics}
    for condition in (_protocol(metrics, "robustness") or {}).get("conditions", []):
        runs[f"{prefix}: {condition['name']}"] = condition
    return runs


def render_comparison(runs: dict[str, dict], title: str = "EditLens comparison") -> str:
    """Several runs side by side: one row per run (a summary dict: in-domain result, a robustness
    condition, or another model's), the best value per column in bold, and bars of the key metrics.
    Raises ValueError for no run."""
    if not runs:
        raise ValueError("render_comparison needs at least one run")
    headers = ["run", "n", "Acc", "mIoU", "mIoU+bg", *BF1_HEADERS, "F1", "IoU", "F1", "IoU",
               "Acc", "AP", "AUC", "F1", "R@50 fake", "R@50 real"]
    groups = [("", 2), ("pixel, dataset level", 5), ("per image, manip.", 2), ("per image, all", 2), ("image level", 6)]
    rows = [[name, s.get("n_images"), *[_value(s, "pixel", k) for k in ("accuracy", "miou", "miou_with_background",
                                                                         "boundary_f1", "boundary_f1_bfscore")],
             *[_value(s, "pixel_per_image", group, k) for group in ("manipulated", "all") for k in ("f1", "iou")],
             *_image_cells(s)] for name, s in runs.items()]
    return _render("comparison.html.j2", title=title, date=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                   n_runs=len(runs), table=table(groups, headers, rows, best={k: "max" for k in range(2, len(headers))}),
                   figure=_figure(figures.comparison_figure(runs), "Key metrics per run", "comparison bars"))


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
