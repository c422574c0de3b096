"""Stats: the dataset statistics DiffSeg30k shows in its Fig. 3 (edited-object categories, mask
area ratio, edits per generator per turn, turn counts, real vs AI bases) plus per-split counts of
every split protocol, as PNG figures, one JSON and one HTML summary page."""

from __future__ import annotations

import html
import logging
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipelines.contract.params import StatsParams, params_of  # noqa: E402

logger = logging.getLogger(__name__)

FIGURES = {
    "categories.png": "Edited-object categories",
    "mask_area_ratio.png": "Mask area ratio",
    "edits_per_generator_turn.png": "Edits per generator per turn",
    "turn_counts.png": "Turns per sample",
    "base_kinds.png": "Real vs AI base images",
    "split_counts.png": "Items per split",
}


def _counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in series.value_counts().sort_index().items()}


def _bar(ax, labels: list[str], values: list[float], colour: str = "#4477aa", horizontal: bool = False) -> None:
    if not labels:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    if horizontal:
        ax.barh(range(len(labels)), values, color=colour)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
    else:
        ax.bar(range(len(labels)), values, color=colour)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if max(map(len, labels)) > 6 else 0, ha="right", fontsize=8)


def compute_statistics(
    base_manifest: pd.DataFrame,
    regions: pd.DataFrame,
    filtered_samples: pd.DataFrame,
    provenance: pd.DataFrame,
    split_tables: dict[str, Any],
    split_protocols: pd.DataFrame,
    filter_report: dict[str, Any],
    params: dict[str, Any],
) -> tuple[dict[str, plt.Figure], dict[str, Any], str]:
    """Returns (figures keyed by file name, statistics dict, HTML page).

    ``params.samples``: ``kept`` (the dataset as published after filtering) or ``all`` (every
    generated sample). ``params.top_categories``: bars in the category figure.
    """
    params = params_of(StatsParams, params)
    which = params.samples
    samples = filtered_samples[filtered_samples["kept"]] if which == "kept" else filtered_samples
    ids = set(samples["sample_id"])
    regions = regions[regions["sample_id"].isin(ids)]
    provenance = provenance[provenance["sample_id"].isin(ids)]
    tables = {name: (t() if callable(t) else t) for name, t in sorted((split_tables or {}).items())}
    top = params.top_categories
    # An addition edits one region in two turns (removal, then addition): count regions once.
    regions = regions.drop_duplicates("edit_group") if "edit_group" in regions else regions
    stats = _statistics(which, samples, filtered_samples, regions, provenance, base_manifest, tables, top)
    stats["protocols"] = split_protocols[["protocol", "kind", "status", "n_items"]].to_dict("records") if len(split_protocols) else []
    stats["filter"] = {k: filter_report.get(k) for k in ("n_samples", "n_kept", "n_dropped", "removal_rate", "per_reason",
                                                          "per_generator", "per_edit_type")} if filter_report else {}
    figures = {**_distribution_figures(stats, regions, top), **_sample_figures(stats, tables)}
    for figure in figures.values():
        figure.tight_layout()
    logger.info("statistics of %d %s samples, %d regions, %d split protocols", len(samples), which, len(regions), len(tables))
    return figures, stats, render_page(stats, params.figure_folder)


def _statistics(which: str, samples: pd.DataFrame, filtered_samples: pd.DataFrame, regions: pd.DataFrame,
                provenance: pd.DataFrame, base_manifest: pd.DataFrame, tables: dict[str, pd.DataFrame],
                top: int) -> dict[str, Any]:
    """The counts of the statistics page (regions already one row per edited region)."""
    categories = regions["label"].replace("", "(unnamed)").fillna("(unnamed)")
    stats: dict[str, Any] = {
        "samples": which, "n_samples": len(samples), "n_generated": len(filtered_samples), "n_regions": len(regions),
        "categories": dict(categories.value_counts().head(top).items()),
        "region_kinds": _counts(regions["kind"]),
        "edit_types": _counts(regions["edit_type"].replace("", "(unknown)")),
        "mask_area_ratio": {"mean": float(regions["area_ratio"].mean()) if len(regions) else None,
                            "median": float(regions["area_ratio"].median()) if len(regions) else None},
        "edits_per_generator_turn": {
            str(g): {str(t): int(n) for t, n in group.groupby("turn").size().items()}
            for g, group in provenance.assign(generator=provenance["generator"].replace("", "(unknown)")).groupby("generator")
        },
        "turn_counts": _counts(samples["n_turns"]),
    }
    bases = base_manifest[base_manifest["base_id"].isin(set(samples["base_id"]))]
    stats["base_kinds_of_edited"] = _counts(bases["kind"])
    stats["base_kinds_all"] = _counts(base_manifest["kind"])
    stats["splits"] = {
        name: {f"{split}/{kind}": int(n) for (split, kind), n in t.groupby(["split", "kind"]).size().items()}
        for name, t in tables.items()
    }
    return stats


def _distribution_figures(stats: dict[str, Any], regions: pd.DataFrame, top: int) -> dict[str, plt.Figure]:
    """(a) categories, (b) mask area ratio, (c) edits per generator per turn."""
    figures: dict[str, plt.Figure] = {}
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(stats["categories"]), 4) + 1), dpi=100)
    _bar(ax, list(stats["categories"]), list(stats["categories"].values()), horizontal=True)
    ax.set_xlabel("edited regions")
    ax.set_title(f"(a) edited-object categories (top {top})")
    figures["categories.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist(regions["area_ratio"].astype(float), bins=np.linspace(0, 1, 21), color="#4477aa", edgecolor="white")
    ax.set_xlabel("mask area / image area")
    ax.set_ylabel("regions")
    ax.set_title("(b) mask area ratio")
    figures["mask_area_ratio.png"] = fig

    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    gens = sorted(stats["edits_per_generator_turn"])
    turns = sorted({t for g in gens for t in stats["edits_per_generator_turn"][g]}, key=int)
    width = 0.8 / max(len(turns), 1)
    for i, turn in enumerate(turns):
        ax.bar(np.arange(len(gens)) + i * width, [stats["edits_per_generator_turn"][g].get(turn, 0) for g in gens],
               width=width, label=f"turn {turn}")
    ax.set_xticks(np.arange(len(gens)) + width * (len(turns) - 1) / 2, gens, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("edits")
    ax.set_title("(c) edits per generator per turn")
    if turns:
        ax.legend(fontsize=8)
    figures["edits_per_generator_turn.png"] = fig
    return figures


def _sample_figures(stats: dict[str, Any], tables: dict[str, pd.DataFrame]) -> dict[str, plt.Figure]:
    """(d) turn counts, (e) base kinds, and items per split per protocol."""
    figures: dict[str, plt.Figure] = {}
    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=100)
    _bar(ax, list(stats["turn_counts"]), list(stats["turn_counts"].values()))
    ax.set_xlabel("turns (edits) per sample")
    ax.set_ylabel("samples")
    ax.set_title("(d) turn-count distribution")
    figures["turn_counts.png"] = fig

    fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=100)
    kinds = stats["base_kinds_of_edited"]
    if kinds:
        ax.pie(list(kinds.values()), labels=[f"{k} ({v})" for k, v in kinds.items()], autopct="%1.0f%%",
               colors=["#4477aa", "#ee6677", "#228833"][: len(kinds)])
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center")
    ax.set_title("(e) base images of the edited samples")
    figures["base_kinds.png"] = fig

    labels, edited, authentic = [], [], []
    for name, table in tables.items():
        for split, group in table.groupby("split", sort=False):
            labels.append(f"{name} / {split}")
            edited.append(int((group["kind"] == "edited").sum()))
            authentic.append(int((group["kind"] == "authentic").sum()))
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(len(labels), 4) + 1), dpi=100)
    if labels:
        ax.barh(range(len(labels)), edited, color="#4477aa", label="edited")
        ax.barh(range(len(labels)), authentic, left=edited, color="#bbbbbb", label="authentic")
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.legend(fontsize=8)
    ax.set_xlabel("items")
    ax.set_title("items per split, per protocol")
    figures["split_counts.png"] = fig
    return figures


def _table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_page(stats: dict[str, Any], folder: str) -> str:
    """One self-contained HTML summary; figures are linked from ``folder`` beside the page."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>EditLens dataset statistics</title>",
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:100%;border:1px solid #eee}</style>",
        "</head><body><h1>EditLens dataset statistics</h1>",
        f"<p>{stats['n_samples']} {html.escape(stats['samples'])} samples of {stats['n_generated']} generated, "
        f"{stats['n_regions']} edited regions. Figures follow DiffSeg30k's Fig. 3.</p>",
    ]
    for name, title in FIGURES.items():
        parts.append(f"<h2>{html.escape(title)}</h2><img src='{html.escape(folder)}/{name}' alt='{html.escape(title)}'>")
    split_rows = [[p, k, n] for p, counts in stats["splits"].items() for k, n in counts.items()]
    parts.append("<h2>Split protocols</h2>" + _table(
        [[p["protocol"], p["kind"], p["status"], p["n_items"]] for p in stats["protocols"]],
        ["protocol", "kind", "status", "items"]))
    parts.append("<h2>Per-split counts</h2>" + _table(split_rows, ["protocol", "split / kind", "items"]))
    filt = stats.get("filter") or {}
    if filt:
        parts.append("<h2>Quality filter</h2>" + _table(
            [[filt.get("n_samples"), filt.get("n_kept"), filt.get("n_dropped"), f"{filt.get('removal_rate', 0):.3f}"]],
            ["samples", "kept", "dropped", "removal rate"]))
        parts.append(_table([[r, n] for r, n in (filt.get("per_reason") or {}).items()], ["drop reason", "samples"]))
        parts.append(_table([[g, c["kept"], c["dropped"]] for g, c in (filt.get("per_generator") or {}).items()],
                            ["generator", "kept", "dropped"]))
        parts.append(_table([[e, c["kept"], c["dropped"]] for e, c in (filt.get("per_edit_type") or {}).items()],
                            ["edit type", "kept", "dropped"]))
    parts.append("<p>Data quality gate reports: <a href='gates/'>gates/</a> (one Markdown page per stage boundary).</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
