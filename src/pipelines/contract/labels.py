"""The label space: generator entries -> class names -> class indices.

The configured generator list (``globals.generators``) IS the label space, unless an imported
dataset names its own: ``ingest.published.label_space`` (class names, a list or one ``;``-separated
string, ``--params "ingest.published.label_space=SDXL;LaMa"``). Then that list is the run's label
space: ``with_label_space`` (applied once, where the parameters are loaded) puts it in place of
every stage's ``generators`` but inpaint's, the only stage that builds generators from the registry.
Each entry is
``{name, generator, label, task, kwargs, weight}``: ``name`` is what provenance records, ``generator``
the registry key (default: name), ``label`` the class it counts as (default: name; a LoRA
variant names its parent, as in DiffSeg30k's LoRA study), ``task`` is ``inpaint`` (default) or
``text-to-image`` (full-synthesis samples, OpenSDI). The classes are the distinct labels in
order of first appearance: label k (1-based) in a label map is ``generator_names(...)[k - 1]``;
0 is "untouched". Every stage reads the list through ``generator_entries`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# sections whose `generators` is the label space only (never built from the registry)
LABEL_SPACE_READERS = (("split",), ("train",), ("evaluate",), ("export",), ("ingest", "published"))

TASKS = ("inpaint", "text-to-image")
MAX_CLASSES = 254  # uint8 label maps: 0 = untouched, 255 kept free


def generator_entries(generators: Sequence[dict[str, Any] | str]) -> list[dict[str, Any]]:
    """The configured entries as dicts with every key filled: name, generator, label, task, kwargs,
    weight (relative chance of being drawn for an edit, default 1: OpenSDI's classic edits are
    rarer than the diffusion ones). A bare string is ``{name: <string>}``.

    Raises:
        ValueError: a missing or repeated name, an unknown task, a negative weight, or a class count
            outside 1..254.
    """
    entries = []
    for entry in generators:
        entry = {"name": entry} if isinstance(entry, str) else dict(entry)
        if not entry.get("name"):
            raise ValueError(f"every generator entry needs a name, got {entry}")
        name = str(entry["name"])
        task = entry.get("task", "inpaint")
        if task not in TASKS:
            raise ValueError(f"generator {name!r}: task must be one of {TASKS}, got {task!r}")
        weight = float(entry.get("weight", 1.0))
        if not weight >= 0:
            raise ValueError(f"generator {name!r}: weight must be a number >= 0, got {entry.get('weight')!r}")
        entries.append({"name": name, "generator": str(entry.get("generator") or name),
                        "label": str(entry.get("label") or name), "task": task, "kwargs": dict(entry.get("kwargs") or {}),
                        "weight": weight})
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise ValueError(f"generator names must be unique, got {names}")
    classes = list(dict.fromkeys(e["label"] for e in entries))
    if not 1 <= len(classes) <= MAX_CLASSES:
        raise ValueError(f"between 1 and {MAX_CLASSES} generator classes are supported (uint8 label maps), "
                         f"got {len(classes)}")
    return entries


def generator_names(generators: Sequence[dict[str, Any] | str]) -> list[str]:
    """Class names in label order: label k (1-based) is ``generator_names(...)[k - 1]``. These are
    the distinct ``label`` values (default: the entry's name) in order of first appearance, so a
    variant configured with its parent's label adds no class."""
    return list(dict.fromkeys(e["label"] for e in generator_entries(generators)))


def generator_labels(generators: Sequence[dict[str, Any] | str]) -> dict[str, int]:
    """Configured name -> its class label (1-based index into ``generator_names``)."""
    entries = generator_entries(generators)
    classes = list(dict.fromkeys(e["label"] for e in entries))
    return {e["name"]: classes.index(e["label"]) + 1 for e in entries}


def class_of(generators: Sequence[dict[str, Any] | str]) -> dict[str, str]:
    """Configured name -> the class name it counts as (its ``label``; itself by default)."""
    return {e["name"]: e["label"] for e in generator_entries(generators)}


def parse_label_space(value: Any) -> list[str] | None:
    """``ingest.published.label_space`` as class names in label order; None when not set (None,
    "" or []). A string is split on ``;`` (kedro's ``--params`` splits on commas).

    Raises:
        ValueError: an empty or repeated name (compared case-insensitively, ``_`` = ``-``), or more
            than 254 names.
    """
    if value in (None, "", []):
        return None
    names = [n.strip() for n in value.split(";")] if isinstance(value, str) else [str(n).strip() for n in value]
    keys = [n.lower().replace("_", "-") for n in names]
    if not all(names) or len(set(keys)) != len(keys) or len(names) > MAX_CLASSES:
        raise ValueError(f"ingest.published.label_space: 1 to {MAX_CLASSES} distinct, non-empty names, got {names}")
    return names


def run_label_space(params: dict[str, Any]) -> list[str] | None:
    """The label space an import run set (``ingest.published.label_space``), or None."""
    published = ((params.get("ingest") or {}).get("published") or {}) if isinstance(params, dict) else {}
    return parse_label_space(published.get("label_space")) if isinstance(published, dict) else None


def with_label_space(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` (the merged parameters) with ``ingest.published.label_space``, when set, as the
    ``generators`` of every section in ``LABEL_SPACE_READERS``: one entry per class name. Unchanged
    when it is not set or not valid (``pipelines.config_checks`` then names the problem)."""
    try:
        names = run_label_space(params)
    except ValueError:
        return params
    if names is None:
        return params
    for path in LABEL_SPACE_READERS:
        section = params
        for key in path:
            section = section.get(key) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section["generators"] = [{"name": name} for name in names]
    return params
