"""Behaviour identity across a refactor (issue 14): run the tiny env of two checkouts in scratch
folders and compare every output file.

    python benchmarks/behaviour_identity.py run <checkout> <scratch> ['<runtime params as JSON>']
    python benchmarks/behaviour_identity.py compare <scratch_old> <scratch_new>

``run`` must be started with PYTHONPATH=<checkout>:<checkout>/src (each checkout imports its own
code). ``compare`` checks bytes first; where bytes differ it compares what the file holds: tables
by content (a comma-joined list column of the old format read as a list), safetensors tensor by
tensor, JSON as "every key and value of the old file is in the new one" (new keys allowed), and
lists the rest. Images, label maps and masks must be byte-identical.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np


def run(checkout: Path, scratch: Path, params: dict) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    shutil.copy(checkout / "pyproject.toml", scratch / "pyproject.toml")
    shutil.copytree(checkout / "conf", scratch / "conf", ignore=shutil.ignore_patterns("local"))
    (scratch / "conf" / "local").mkdir(exist_ok=True)
    (scratch / "src").mkdir()
    os.chdir(scratch)
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(scratch)
    with KedroSession.create(project_path=scratch, env="tiny", runtime_params=params) as session:
        session.run()


def missing_from(old, new, path: str = "") -> list[str]:
    """Where ``new`` lacks or changes a key / value of ``old`` (NaN equals NaN)."""
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return [f"{path}: not a mapping"]
        return [d for k, v in old.items() for d in (missing_from(v, new[k], f"{path}/{k}") if k in new else [f"missing {path}/{k}"])]
    if isinstance(old, list):
        if not isinstance(new, list) or len(old) != len(new):
            return [f"{path}: list differs"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in missing_from(a, b, f"{path}/{i}")]
    same = old == new or (isinstance(old, float) and isinstance(new, float) and np.isnan(old) and np.isnan(new))
    return [] if same else [f"{path}: {old!r} != {new!r}"]


def _tables(old: Path, new: Path) -> str:
    import pandas as pd

    x, y = pd.read_parquet(old), pd.read_parquet(new)
    for column in y.columns:
        if column in x.columns and y[column].map(lambda v: isinstance(v, (list, np.ndarray))).any():
            y[column] = y[column].map(lambda v: [str(e) for e in v])
            x[column] = x[column].map(lambda s: [e for e in str(s).split(",") if e != ""])
    common = [c for c in x.columns if c in y.columns]
    same = x[common].reset_index(drop=True).astype(str).equals(y[common].reset_index(drop=True).astype(str))
    return f"content {'same' if same else 'DIFFERENT'}, columns added {sorted(set(y) - set(x))}, dropped {sorted(set(x) - set(y))}"


def _file(old: Path, new: Path) -> str:
    if old.suffix == ".parquet":
        return _tables(old, new)
    if old.suffix == ".safetensors":
        from safetensors.numpy import load_file

        a, b = load_file(old), load_file(new)
        return "tensors " + ("same" if a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a) else "DIFFERENT")
    if old.suffix == ".json":
        diffs = missing_from(json.loads(old.read_text()), json.loads(new.read_text()))
        return "old keys and values all in new" if not diffs else f"{len(diffs)} differences: " + "; ".join(diffs[:5])
    return "bytes differ"


def compare(old_root: Path, new_root: Path) -> int:
    old_files = {p.relative_to(old_root) for p in (old_root / "data").rglob("*") if p.is_file()}
    new_files = {p.relative_to(new_root) for p in (new_root / "data").rglob("*") if p.is_file()}
    print(f"only in old: {sorted(map(str, old_files - new_files))}\nonly in new: {sorted(map(str, new_files - old_files))}")
    common = sorted(old_files & new_files)
    differ = [f for f in common if not filecmp.cmp(old_root / f, new_root / f, shallow=False)]
    print(f"{len(common)} files in both, {len(common) - len(differ)} byte-identical")
    bad = 0
    for f in differ:
        verdict = _file(old_root / f, new_root / f)
        bad += f.suffix in {".png", ".npy", ".npz"} or "DIFFERENT" in verdict
        print(f"  {f}: {verdict}")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(Path(sys.argv[2]).resolve(), Path(sys.argv[3]).resolve(), json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})
    else:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
