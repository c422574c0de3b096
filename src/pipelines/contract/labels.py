"""The label space: generator entries -> class names -> class indices.

The configured generator list (``globals.generators``) IS the label space. Each entry is
``{name, generator, label, task, kwargs}``: ``name`` is what provenance records, ``generator``
the registry key (default: name), ``label`` the class it counts as (default: name; a LoRA
variant names its parent, as in DiffSeg30k's LoRA study), ``task`` is ``inpaint`` (default) or
``text-to-image`` (full-synthesis samples, OpenSDI). The classes are the distinct labels in
order of first appearance: label k (1-based) in a label map is ``generator_names(...)[k - 1]``;
0 is "untouched". Every stage reads the list through ``generator_entries`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TASKS = ("inpaint", "text-to-image")
MAX_CLASSES = 254  # uint8 label maps: 0 = untouched, 255 kept free


def generator_entries(generators: Sequence[dict[str, Any] | str]) -> list[dict[str, Any]]:
    """The configured entries as dicts with every key filled: name, generator, label, task, kwargs.
    A bare string is ``{name: <string>}``.

    Raises:
        ValueError: a missing or repeated name, an unknown task, or a class count outside 1..254.
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
        entries.append({"name": name, "generator": str(entry.get("generator") or name),
                        "label": str(entry.get("label") or name), "task": task, "kwargs": dict(entry.get("kwargs") or {})})
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
