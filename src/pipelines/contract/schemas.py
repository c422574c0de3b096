"""The schema of every table passed between stages: its columns, in order, and their dtypes.

A stage builds its tables with ``table(name, rows)`` and never spells a column list itself; the
``TableSchemaHooks`` check every catalog table named here when it is saved and when it is loaded
(``check``), and the Great Expectations gates take their expected columns from ``SCHEMAS``
(``gate_expectations``). To add a column: add it here, then fill it where the table is built.

Dtype kinds: ``str`` (pandas string or object of str), ``int``, ``float``, ``bool``, and the list
kinds ``list[str]``, ``list[int]``, ``list[float]``: a cell is a Python list (parquet
``list<string>`` / ``list<int64>`` / ``list<double>``; ``pipelines.datasets.TableDataset`` loads
them back as lists), e.g. ``samples.generators`` == ["telea", "tiny-sd"] in turn order; an empty
list, never None or a joined string. A table may carry extra columns after its own
(``filtered_samples`` adds ``quality_<check>`` columns; an imported ``samples`` table adds
``origin`` ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes


class SchemaError(ValueError):
    """A table does not have the columns or dtypes its schema says; the message names the table."""


@dataclass(frozen=True)
class TableSchema:
    """``columns``: column -> dtype kind, in table order."""

    name: str
    columns: Mapping[str, str]

    @property
    def names(self) -> list[str]:
        return list(self.columns)


_ITEM_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int, np.integer), "float": (float, int, np.floating, np.integer),
}


def _is_list_column(kind: str) -> Callable[[pd.Series], bool]:
    """A check that every cell is a list (or tuple / 1-D array) whose items are all of ``kind``."""
    types = _ITEM_TYPES[kind]

    def check(column: pd.Series) -> bool:
        if not ptypes.is_object_dtype(column):
            return False
        return all(isinstance(cell, (list, tuple, np.ndarray)) and all(isinstance(v, types) and not isinstance(v, bool)
                                                                       for v in cell) for cell in column)
    return check


_CHECKS = {
    "str": lambda s: ptypes.is_string_dtype(s) or ptypes.is_object_dtype(s),
    "int": ptypes.is_integer_dtype,
    "float": lambda s: ptypes.is_float_dtype(s) or ptypes.is_integer_dtype(s),
    "bool": ptypes.is_bool_dtype,
    **{f"list[{kind}]": _is_list_column(kind) for kind in _ITEM_TYPES},
}


def _schema(name: str, spec: str) -> TableSchema:
    """``"a:str b:int"`` -> TableSchema (one line per table below reads like the table's header)."""
    return TableSchema(name, dict(part.split(":") for part in spec.split()))


MANIFEST = _schema("base_manifest", "base_id:str group_id:str source:str kind:str source_path:str category:str "
                   "caption:str orig_height:int orig_width:int height:int width:int crop:str sha256:str")
ANNOTATIONS = _schema("base_annotations", "base_id:str ann_index:int category:str supercategory:str isthing:bool "
                      "area_ratio:float rle:str")
ISSUES = _schema("ingest_issues", "source:str item:str reason:str")
REGIONS = _schema("regions", "region_id:str sample_id:str base_id:str turn:int label:str kind:str score:float "
                  "area_ratio:float area_bucket:str edit_group:str edit_type:str description:str perturbed:bool "
                  "prompt:str perceiver:str label_source:str prompt_source:str")
SAMPLES = _schema("samples", "sample_id:str base_id:str group_id:str base_kind:str n_turns:int generators:list[str] "
                  "last_generator:str edited_area_ratio:float edit_types:list[str] region_kinds:list[str]")
PROVENANCE = _schema("provenance", "sample_id:str turn:int generator:str label:int region_id:str kind:str "
                     "edit_type:str prompt:str seed:int mask_area_ratio:float changed_pixel_ratio:float registry:str "
                     "model:str candidate_seeds:list[int] candidate_scores:list[float] details:str "
                     "prompt_source:str prompt_image:str")  # who wrote the prompt, from which image
FILTERED_SAMPLES = TableSchema("filtered_samples", {**SAMPLES.columns, "drop_reason": "str", "kept": "bool"})
SPLITS = _schema("splits", "item_id:str split:str kind:str image_dataset:str image_key:str label_key:str base_id:str "
                 "group_id:str last_generator:str generators:list[str] protocol:str")
SPLIT_PROTOCOLS = _schema("split_protocols", "protocol:str kind:str status:str split_names:str ratios:str "
                          "held_out:str train_on:str seed:int n_items:int n_edited:int n_authentic:int n_groups:int")

SCHEMAS: dict[str, TableSchema] = {s.name: s for s in (
    MANIFEST, ANNOTATIONS, ISSUES, REGIONS, SAMPLES, PROVENANCE, FILTERED_SAMPLES, SPLITS, SPLIT_PROTOCOLS,
)}
# Published imports add these after the samples / manifest columns (pipelines.ingest import).
PUBLISHED_SAMPLE_EXTRAS = ["origin", "published_split", "label_kind", "source_path"]


def table(name: str, rows: Iterable[Mapping[str, Any]] | None = None, extra: Iterable[str] = ()) -> pd.DataFrame:
    """A DataFrame of ``rows`` with exactly the schema's columns (then ``extra``), in order."""
    return pd.DataFrame(list(rows or []), columns=[*SCHEMAS[name].names, *extra])


def problems(name: str, frame: pd.DataFrame) -> list[str]:
    """What is wrong with ``frame`` as table ``name``: missing columns, then wrong dtypes (checked
    only on a non-empty table: an empty one has no values to type). Extra columns are allowed."""
    schema = SCHEMAS[name]
    found = [str(c) for c in frame.columns]
    out = [f"missing column {c!r}" for c in schema.names if c not in found]
    if len(frame):
        for column, kind in schema.columns.items():
            if column in found and not _CHECKS[kind](frame[column]):
                out.append(f"column {column!r} is {frame[column].dtype}, expected {kind}")
    return out


def check(name: str, frame: Any, where: str = "") -> None:
    """Raise ``SchemaError`` naming the table (and ``where``: a path or a node) when ``frame`` does
    not fit table ``name``'s schema. Tables not in ``SCHEMAS`` and non-DataFrames pass unchecked."""
    if name not in SCHEMAS or not isinstance(frame, pd.DataFrame):
        return
    found = problems(name, frame)
    if found:
        at = f" ({where})" if where else ""
        raise SchemaError(f"table {name!r}{at} does not match pipelines.contract.schemas: " + "; ".join(found))


def gate_expectations(name: str) -> list[dict[str, Any]]:
    """The Great Expectations entries (as in conf/base/gates.yml) a gate runs first on a table that
    is contract table ``name``: its columns must all exist (extra columns pass)."""
    return [{"expectation": "expect_table_columns_to_match_set", "column_set": SCHEMAS[name].names,
             "exact_match": False, "why": f"columns of {name} (pipelines.contract.schemas)"}]


def list_columns(name: str) -> list[str]:
    """The columns of table ``name`` whose cells are lists (kinds ``list[...]``)."""
    return [c for c, kind in SCHEMAS[name].columns.items() if kind.startswith("list[")]


# Column lists, for code that names them (the schemas above are the source).
MANIFEST_COLUMNS = MANIFEST.names
ANNOTATION_COLUMNS = ANNOTATIONS.names
ISSUE_COLUMNS = ISSUES.names
REGION_COLUMNS = REGIONS.names
SAMPLE_COLUMNS = SAMPLES.names
PROVENANCE_COLUMNS = PROVENANCE.names
SPLIT_COLUMNS = SPLITS.names
PROTOCOL_COLUMNS = SPLIT_PROTOCOLS.names
