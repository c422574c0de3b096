"""Dataset statistics (DiffSeg30k Fig. 3 + per-split counts): numbers, figures and the page."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro_datasets.matplotlib import MatplotlibDataset

from pipelines.stats.nodes import FIGURES, compute_statistics


@pytest.fixture
def inputs():
    manifest = pd.DataFrame({"base_id": ["a", "b", "c"], "group_id": ["a", "b", "c"], "kind": ["real", "ai", "real"]})
    filtered = pd.DataFrame({"sample_id": ["a-v0", "b-v0", "c-v0"], "base_id": ["a", "b", "c"], "n_turns": [3, 1, 2],
                             "kept": [True, True, False]})
    # a-v0: an addition (removal + addition of one region, edit_group g1) then an attribute change
    regions = pd.DataFrame({
        "region_id": ["a-v0-t1", "a-v0-t2", "a-v0-t3", "b-v0-t1", "c-v0-t1", "c-v0-t2"],
        "sample_id": ["a-v0", "a-v0", "a-v0", "b-v0", "c-v0", "c-v0"],
        "edit_group": ["a-v0-g1", "a-v0-g1", "a-v0-g2", "b-v0-g1", "c-v0-g1", "c-v0-g2"],
        "label": ["person", "person", "sky", "dog", "car", "tree"], "kind": ["thing", "thing", "stuff", "thing", "thing", "thing"],
        "edit_type": ["removal", "addition", "attribute", "removal", "attribute", "attribute"],
        "area_ratio": [0.1, 0.1, 0.4, 0.05, 0.2, 0.3],
    })
    provenance = pd.DataFrame({"sample_id": ["a-v0"] * 3 + ["b-v0", "c-v0", "c-v0"], "turn": [1, 2, 3, 1, 1, 2],
                               "generator": ["telea", "tiny-sd", "telea", "navier_stokes", "telea", "telea"]})
    table = pd.DataFrame({"item_id": ["a-v0", "b-v0", "a-authentic", "c-authentic"], "split": ["train", "val", "train", "val"],
                          "kind": ["edited", "edited", "authentic", "authentic"]})
    protocols = pd.DataFrame([{"protocol": "random", "kind": "random", "status": "ok", "n_items": 4}])
    report = {"n_samples": 3, "n_kept": 2, "n_dropped": 1, "removal_rate": 1 / 3, "per_reason": {"brisque > 60": 1},
              "per_generator": {"telea": {"kept": 1, "dropped": 1}}, "per_edit_type": {"attribute": {"kept": 1, "dropped": 1}}}
    return manifest, regions, filtered, provenance, {"random": lambda: table}, protocols, report


def test_statistics_count_the_kept_dataset(inputs):
    figures, stats, page = compute_statistics(*inputs, {"samples": "kept"})
    assert set(figures) == set(FIGURES)
    assert stats["n_samples"] == 2 and stats["n_regions"] == 3  # the addition's two turns are one region
    assert stats["categories"] == {"person": 1, "sky": 1, "dog": 1}
    assert stats["turn_counts"] == {"1": 1, "3": 1}
    assert stats["edits_per_generator_turn"] == {"navier_stokes": {"1": 1}, "telea": {"1": 1, "3": 1}, "tiny-sd": {"2": 1}}
    assert stats["base_kinds_of_edited"] == {"ai": 1, "real": 1}
    assert stats["splits"]["random"] == {"train/authentic": 1, "train/edited": 1, "val/authentic": 1, "val/edited": 1}
    for name in FIGURES:
        assert f"src='statistics/{name}'" in page
    assert "brisque &gt; 60" in page and "Split protocols" in page
    _, everything, _ = compute_statistics(*inputs, {"samples": "all"})
    assert everything["n_samples"] == 3


def test_figures_save_through_the_catalog_dataset(inputs, tmp_path):
    figures, _, _ = compute_statistics(*inputs, {})
    MatplotlibDataset(filepath=str(tmp_path / "statistics"), save_args={"format": "png"}).save(figures)
    assert sorted(p.name for p in (tmp_path / "statistics").iterdir()) == sorted(FIGURES)
    assert all(p.stat().st_size > 2000 for p in (tmp_path / "statistics").iterdir())
