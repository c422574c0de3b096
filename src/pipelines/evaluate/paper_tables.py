"""A seed paper's tables in its own layout, each of our numbers beside the published one.

A recipe lists its tables under ``evaluate.paper_tables`` (``contract.params.PaperTable``): rows
and columns as the paper prints them, each cell naming where our number lives in metrics.json
(``ours``: a ``/``-separated path, so a generator called ``sd3.5`` is one key) and the paper's
number (``paper``). A list along the path is indexed by position (``0``) or by its items' ``name``
(``JPEG 60``). A cell whose path does not resolve says why instead of showing a number: the
``skipped`` text of the protocol it passes through (e.g. "no variants configured"), else the path
that is missing, so a table always comes out whole.
"""

from __future__ import annotations

import math
from typing import Any

from pipelines.contract.params import PaperCell, PaperTable


def resolve(metrics: dict[str, Any], path: str) -> tuple[float | None, str]:
    """(the number at ``path`` in ``metrics``, '') or (None, why it is not there)."""
    node: Any = metrics
    walked: list[str] = []
    for part in [p for p in path.split("/") if p]:
        if isinstance(node, dict) and node.get("skipped"):
            return None, f"{'/'.join(walked)}: skipped: {node['skipped']}"
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            node = _list_item(node, part)
        else:
            node = None
        walked.append(part)
        if node is None:
            return None, f"not computed: {'/'.join(walked)}"
    if isinstance(node, dict) and node.get("skipped"):
        return None, f"{path}: skipped: {node['skipped']}"
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        return None, f"not a number: {path}"
    if math.isnan(float(node)):
        return None, f"undefined (NaN): {path}"
    return float(node), ""


def _list_item(items: list[Any], part: str) -> Any:
    if part.isdigit():
        return items[int(part)] if int(part) < len(items) else None
    return next((item for item in items if isinstance(item, dict) and str(item.get("name")) == part), None)


def _cell(metrics: dict[str, Any], cell: PaperCell, table: PaperTable) -> dict[str, Any]:
    if cell.ours is None:
        value, why = None, cell.na or "not part of this run"
    else:
        value, why = resolve(metrics, cell.ours)
    ours = None if value is None else round(value * table.scale, table.digits)
    return {"ours": ours, "paper": cell.paper, "na": why if value is None else "", "path": cell.ours}


def build_tables(metrics: dict[str, Any], tables: list[PaperTable]) -> list[dict[str, Any]]:
    """Every table with its cells resolved: {id, title, source, columns, digits, notes,
    rows: [{label, cells: [{ours, paper, na, path}]}]}.

    Raises:
        ValueError: a row has another number of cells than the table has columns (names the table).
    """
    built = []
    for table in tables:
        for row in table.rows:
            if len(row.cells) != len(table.columns):
                raise ValueError(f"evaluate.paper_tables {table.id!r} row {row.label!r}: {len(row.cells)} cells "
                                 f"for {len(table.columns)} columns")
        rows = [{"label": row.label, "cells": [_cell(metrics, c, table) for c in row.cells]} for row in table.rows]
        built.append({"id": table.id, "title": table.title, "source": table.source, "columns": table.columns,
                      "digits": table.digits, "notes": table.notes, "rows": rows})
    return built


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def markdown(built: list[dict[str, Any]]) -> str:
    """The tables as markdown: per column ours, then the paper's number; a cell we could not fill
    shows "n/a" with a footnote giving the reason."""
    if not built:
        return "# Paper tables\n\nThis recipe configures no paper tables (`evaluate.paper_tables`).\n"
    lines = ["# Paper tables", "", "Each column shows this run's number, then the paper's (\"paper\").", ""]
    for table in built:
        lines += [f"## {table['title']}", "", f"Source: {table['source']}" if table["source"] else "", ""]
        header = ["", *[part for column in table["columns"] for part in (column, f"{column} (paper)")]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        reasons: list[str] = []
        for row in table["rows"]:
            cells = [row["label"]]
            for cell in row["cells"]:
                if cell["na"]:
                    reasons.append(f"{row['label']}: {cell['na']}")
                    cells.append(f"n/a [{len(reasons)}]")
                else:
                    cells.append(_number(cell["ours"], table["digits"]))
                cells.append("-" if cell["paper"] is None else f"{cell['paper']:g}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"{i}. {why}" for i, why in enumerate(reasons, 1)]
        lines += [f"- {note}" for note in table["notes"]]
        lines.append("")
    return "\n".join(lines)
