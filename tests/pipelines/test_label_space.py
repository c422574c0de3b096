"""An imported dataset's own label space (issue 20, item 17): one parameter,
``ingest.published.label_space``, set with ``--params``, is the label space of every stage of the
run (split, train, evaluate, export and the gates), with no generator registry entry and no conf env."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.config_checks import check_parameters
from pipelines.contract.labels import with_label_space


def _diffseg30k_folder(root: Path, n_forged: int, n_authentic: int) -> None:
    """DiffSeg30k pairs whose mask values 1 / 2 name the dataset's own classes ``lama`` / ``sdxl``
    (labels.json), in the opposite order to the label space the test sets; then authentic images."""
    rng = np.random.default_rng(7)
    root.mkdir(parents=True)
    items = {}
    for index in range(n_forged + n_authentic):
        number = f"{index:08d}"
        mask = np.zeros((48, 48), np.uint8)
        if index < n_forged:
            mask[4 + index % 9:26 + index % 9, 6:30] = 1 + index % 2
        else:
            items[number] = {"kind": "authentic"}
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(root / f"{number}.image.png")
        Image.fromarray(mask).save(root / f"{number}.mask.png")
    (root / "labels.json").write_text(json.dumps({"classes": ["background", "lama", "sdxl"], "items": items}))


def test_the_label_space_replaces_every_stages_generators_but_inpaints():
    params = {"ingest": {"published": {"label_space": "A;B", "generators": ["sdxl"]}}, "inpaint": {"generators": ["sdxl"]},
              "split": {"generators": ["sdxl"]}, "train": {"generators": ["sdxl"]}, "export": {"generators": ["sdxl"]}}
    space = [{"name": "A"}, {"name": "B"}]
    out = with_label_space(params)
    assert [out[s]["generators"] for s in ("split", "train", "export")] == [space] * 3
    assert out["ingest"]["published"]["generators"] == space
    assert out["inpaint"]["generators"] == ["sdxl"]  # inpaint builds generators: the registry decides there
    assert check_parameters(out, ["split", "train", "export", "ingest"]) == []  # names need no registry entry
    assert any("unknown generator 'A'" in p for p in check_parameters({"inpaint": {"generators": ["A"]}}))
    bad = check_parameters({"ingest": {"published": {"label_space": "A;;A"}}, "train": {}}, ["train"])
    assert bad == ["ingest.published.label_space: 1 to 254 distinct, non-empty names, got ['A', '', 'A']"]


@pytest.mark.slow
def test_an_import_with_its_own_label_space_runs_through_split_train_and_evaluate(project_copy: Path):
    """``kedro run --env tiny --pipeline published --params "ingest.source=diffseg30k,
    ingest.published.label_space=SDXL;LaMa"``: before, the inpaint gate stopped it (the names are not
    configured generators) and split / train / evaluate / export used globals.generators as classes."""
    from kedro.framework.cli.utils import _split_params
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    _diffseg30k_folder(project_copy / "data" / "01_raw" / "diffseg30k", n_forged=16, n_authentic=6)
    bootstrap_project(project_copy)
    cli = "ingest.source=diffseg30k,ingest.published.label_space=SDXL;LaMa,ingest.published.image_size=64"
    with KedroSession.create(project_path=project_copy, env="tiny", runtime_params=_split_params(None, None, cli)) as session:
        session.run(pipeline_name="published")
    data = project_copy / "data"
    splits = pd.read_parquet(next(data.rglob("05_model_input/splits.parquet")))
    assert set(splits["kind"]) == {"edited", "authentic"}
    assert set(splits.loc[splits["kind"] == "edited", "last_generator"]) == {"SDXL", "LaMa"}
    labels = pd.read_parquet(next(data.rglob("provenance.parquet"))).set_index("sample_id")["label"]
    assert labels["00000000"] == 2 and labels["00000001"] == 1  # lama (value 1) is LaMa, class 2 of SDXL;LaMa
    metrics = json.loads(next(data.rglob("metrics.json")).read_text())
    assert metrics["semantic"]["class_names"] == ["untouched", "SDXL", "LaMa"]  # the label space, in its order
    assert metrics["binary"]["class_names"] == ["untouched", "edited"]
    assert metrics["semantic"]["n_edited"] > 0
    gates = {p.name for p in (data / "08_reporting" / "gates").iterdir()}
    assert {"inpaint.md", "split.md"} <= gates  # the gates ran, and passed, with the label space
