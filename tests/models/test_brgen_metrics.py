"""BR-Gen's table metrics (Tables 2-4, 7) in models.metrics, against direct counts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from models.metrics import (
    BRGEN_CROSS_TYPE,
    brgen_cross_type_selection,
    brgen_table_row,
    recall_at_50_by_area,
    recall_at_50_by_group,
)


@pytest.fixture()
def table():
    rng = np.random.default_rng(0)
    n = 400
    fake = rng.random(n) < 0.7
    scores = np.clip(rng.normal(0.35 + 0.3 * fake, 0.25), 0, 1)
    family = np.where(fake, rng.choice(["gan", "diffusion"], n), None)
    kind = np.where(fake, rng.choice(["stuff", "background"], n), None)
    area = np.where(fake, rng.random(n), 0.0)
    iou = np.where(fake, rng.random(n), 0.0)
    return scores, fake.astype(int), family, kind, area, iou


def test_recall_by_group_counts_forged_images_of_each_group(table):
    scores, fake, family, _, _, _ = table
    got = recall_at_50_by_group(scores, fake, family)
    assert set(got) == {"real", "gan", "diffusion"}
    for value in ("gan", "diffusion"):
        members = [s for s, f, g in zip(scores, fake, family) if f and g == value]
        assert got[value] == pytest.approx(sum(s > 0.5 for s in members) / len(members))
    reals = scores[fake == 0]
    assert got["real"] == pytest.approx(np.mean(reals <= 0.5))
    assert np.isnan(recall_at_50_by_group([0.9], [1], ["gan"])["real"])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        recall_at_50_by_group([0.2], [2], ["gan"])


def test_recall_by_area_cumulative_and_binned(table):
    scores, fake, _, _, area, _ = table
    cumulative = recall_at_50_by_area(scores, fake, area)
    binned = recall_at_50_by_area(scores, fake, area, cumulative=False)
    assert list(cumulative) == ["<20%", "<40%", "<60%", "<80%", "<100%"]
    forged = fake == 1
    for edge, key in zip((0.2, 0.4, 0.6, 0.8, 1.0), cumulative):
        members = forged & (area <= edge if edge == 1.0 else area < edge)
        assert cumulative[key] == pytest.approx(np.mean(scores[members] > 0.5))
        lower = edge - 0.2
        members = forged & (area >= lower - 1e-12) & (area <= edge if edge == 1.0 else area < edge)
        assert binned[key] == pytest.approx(np.mean(scores[members] > 0.5))
    assert cumulative["<100%"] == pytest.approx(np.mean(scores[forged] > 0.5))
    assert np.isnan(recall_at_50_by_area([0.9], [1], [0.9])["<20%"])
    with pytest.raises(ValueError, match="edges"):
        recall_at_50_by_area(scores, fake, area, edges=(0.5, 0.4))


def test_table_row_matches_sklearn_and_direct_counts(table):
    scores, fake, family, kind, _, iou = table
    row = brgen_table_row(scores, fake, iou, family, kind)
    assert list(row) == ["r50_real", "f1", "auc", "r50_fake", "iou", "r50_gan", "r50_diffusion",
                         "r50_background", "r50_stuff"]
    assert row["f1"] == pytest.approx(f1_score(fake, scores > 0.5))
    assert row["auc"] == pytest.approx(roc_auc_score(fake, scores))
    assert row["r50_fake"] == pytest.approx(np.mean(scores[fake == 1] > 0.5))
    assert row["iou"] == pytest.approx(np.mean(iou[fake == 1]))
    assert row["r50_stuff"] == pytest.approx(np.mean(scores[(fake == 1) & (kind == "stuff")] > 0.5))
    assert np.isnan(brgen_table_row(scores, fake, np.full(len(scores), np.nan), family, kind)["iou"])


def test_cross_type_selection_keeps_reals_and_one_type(table):
    _, fake, family, kind, _, _ = table
    assert set(BRGEN_CROSS_TYPE) == {"gan->diffusion", "diffusion->gan", "background->stuff", "stuff->background"}
    train, test = brgen_cross_type_selection(fake, family, kind, "gan->diffusion")
    assert (train[fake == 0]).all() and (test[fake == 0]).all()
    assert set(family[train & (fake == 1)]) == {"gan"} and set(family[test & (fake == 1)]) == {"diffusion"}
    train, test = brgen_cross_type_selection(fake, family, kind, "stuff->background")
    assert set(kind[train & (fake == 1)]) == {"stuff"} and set(kind[test & (fake == 1)]) == {"background"}
    with pytest.raises(ValueError, match="gan->diffusion"):
        brgen_cross_type_selection(fake, family, kind, "gan->stuff")
