"""The contract between stages: schemas checked on save and load, the label space, no import side effects."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from pipelines.contract import schemas
from pipelines.contract.labels import class_of, generator_labels, generator_names
from pipelines.hooks import TableSchemaHooks


def test_schema_hook_refuses_a_table_with_a_missing_or_mistyped_column():
    hooks = TableSchemaHooks()
    good = schemas.table("samples", [{"sample_id": "a-v0", "base_id": "a", "group_id": "a", "base_kind": "real",
                                      "n_turns": 1, "generators": ["telea"], "last_generator": "telea",
                                      "edited_area_ratio": 0.1, "edit_types": ["removal"], "region_kinds": ["thing"]}])
    hooks.before_dataset_saved("samples", good)
    hooks.after_dataset_loaded("samples", good)
    with pytest.raises(schemas.SchemaError, match=r"table 'samples' \(about to be saved\).*missing column 'n_turns'"):
        hooks.before_dataset_saved("samples", good.drop(columns="n_turns"))
    with pytest.raises(schemas.SchemaError, match=r"column 'n_turns' is .*expected int"):
        hooks.after_dataset_loaded("samples", good.assign(n_turns=["one"]))
    hooks.before_dataset_saved("not_a_contract_table", pd.DataFrame())  # others pass unchecked


def test_an_entrys_label_is_its_class_everywhere():
    entries = [{"name": "sdxl"}, {"name": "sdxl-lora", "label": "sdxl"}, "telea"]
    assert generator_names(entries) == ["sdxl", "telea"]
    assert generator_labels(entries) == {"sdxl": 1, "sdxl-lora": 1, "telea": 2}
    assert class_of(entries) == {"sdxl": "sdxl", "sdxl-lora": "sdxl", "telea": "telea"}


def test_importing_the_datasets_registers_no_filesystem():
    code = ("import fsspec, pipelines.datasets as d; before = fsspec.get_filesystem_class('file').__name__; "
            "d.register_filesystems(); print(before, fsspec.get_filesystem_class('file').__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["LocalFileSystem", "AllOrNothingLocalFileSystem"]
