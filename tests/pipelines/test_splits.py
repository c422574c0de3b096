"""Split protocols: random 8:2 / 8:1:1 by photo group, leave-generators-out (DiffSeg30k),
train-on-one-generator (OpenSDI), published splits; authentic negatives; reproducible from a seed."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from pipelines.contract.ids import REAL_ONLY_KIND, pool_of, real_only_id
from pipelines.split.nodes import expand_protocols, make_splits

GENERATORS = [{"name": n} for n in ("flux", "hunyuan", "sd2", "sd3.5", "glide", "kolors")]
NAMES = [g["name"] for g in GENERATORS]


@pytest.fixture(scope="module")
def data():
    """40 photo groups of 2 bases each; every base has 3 samples edited by 1-3 distinct generators."""
    rng = np.random.default_rng(0)
    manifest, samples = [], []
    for g in range(40):
        for b in range(2):
            base_id = f"p{g}-c{b}"
            manifest.append({"base_id": base_id, "group_id": f"p{g}", "kind": "real" if g % 5 else "ai"})
            for v in range(3):
                gens = list(rng.choice(NAMES, size=int(rng.integers(1, 4)), replace=False))
                samples.append({"sample_id": f"{base_id}-v{v}", "base_id": base_id, "group_id": f"p{g}",
                                "generators": gens, "last_generator": gens[-1], "kept": v != 2 or g % 3 != 0})
    return pd.DataFrame(samples), pd.DataFrame(manifest)


def params(**extra):
    return {"seed": 0, "names": ["train", "val"], "ratios": [0.8, 0.2], "generators": GENERATORS, "add_authentic": True,
            "protocols": {
                "random": {"kind": "random"},
                "brgen": {"kind": "random", "names": ["train", "val", "test"], "ratios": [0.8, 0.1, 0.1]},
                "leave-out": {"kind": "leave_out", "pairs": [["flux", "hunyuan"], ["sd2", "sd3.5"], ["GLIDE", "Kolors"],
                                                             ["flux", "dalle3"]]},
                "train-on": {"kind": "train_on_one", "train_on": "each"},
            }, **extra}


def no_leaks(table: pd.DataFrame) -> bool:
    return bool((table.groupby("group_id")["split"].nunique() == 1).all() and
                (table.groupby("base_id")["split"].nunique() == 1).all())


def test_every_protocol_is_a_named_table_without_leaks(data):
    samples, manifest = data
    splits, tables, protocols = make_splits(samples, manifest, params())
    expected = {"random", "brgen", "leave-out-flux+hunyuan", "leave-out-sd2+sd3.5", "leave-out-GLIDE+Kolors",
                *(f"train-on-{n}" for n in NAMES)}
    assert set(tables) == expected
    assert splits.equals(tables["random"])
    for name, table in tables.items():
        assert no_leaks(table), name
        assert set(table["protocol"]) == {name}
    status = protocols.set_index("protocol")["status"]
    assert status["leave-out-flux+dalle3"].startswith("skipped") and "dalle3" in status["leave-out-flux+dalle3"]
    assert (status.drop("leave-out-flux+dalle3") == "ok").all()


@pytest.mark.parametrize(("name", "ratios"), [("random", [0.8, 0.2]), ("brgen", [0.8, 0.1, 0.1])])
def test_random_protocols_cut_groups_by_ratio(data, name, ratios):
    samples, manifest = data
    table = make_splits(samples, manifest, params())[1][name]
    shares = table.groupby("group_id")["split"].first().value_counts(normalize=True)
    for split, ratio in zip(["train", "val", "test"], ratios):
        assert shares[split] == pytest.approx(ratio, abs=1 / 40)
    kept = samples[samples["kept"]]
    assert set(table.loc[table["kind"] == "edited", "item_id"]) == set(kept["sample_id"])
    assert set(table.loc[table["kind"] == "authentic", "base_id"]) == set(manifest.loc[manifest["kind"] == "real", "base_id"])


def test_leave_out_trains_without_and_tests_on_the_held_out_generators(data):
    samples, manifest = data
    table = make_splits(samples, manifest, params())[1]["leave-out-GLIDE+Kolors"]  # names match case-insensitively
    edited = table[table["kind"] == "edited"]
    gens = edited["generators"].map(set)
    held = {"glide", "kolors"}
    assert not any(g & held for g in gens[edited["split"] == "train"])
    assert all(g & held for g in gens[edited["split"] == "test"])
    assert set(table["split"]) == {"train", "test"} and (table["kind"] == "authentic").any()
    # train and test groups are the same seeded cut as the random protocol's train / val
    random = make_splits(samples, manifest, params())[1]["random"].groupby("group_id")["split"].first()
    for group, split in table.groupby("group_id")["split"].first().items():
        assert {"train": "train", "test": "val"}[split] == random[group]


def test_train_on_one_generator_tests_on_all(data):
    samples, manifest = data
    tables = make_splits(samples, manifest, params())[1]
    table = tables["train-on-sd2"]
    train = table[(table["split"] == "train") & (table["kind"] == "edited")]
    test = table[(table["split"] == "test") & (table["kind"] == "edited")]
    assert len(train) and all(g == ["sd2"] for g in train["generators"])
    assert set(itertools.chain.from_iterable(test["generators"])) == set(NAMES)


def test_authentic_negatives_in_train_can_be_capped(data):
    samples, manifest = data
    full = make_splits(samples, manifest, params())[0]
    capped = make_splits(samples, manifest, params(n_authentic_train=5))[0]
    count = lambda t, s: int(((t["kind"] == "authentic") & (t["split"] == s)).sum())  # noqa: E731
    assert count(capped, "train") == 5 < count(full, "train")
    assert count(capped, "val") == count(full, "val")
    assert make_splits(samples, manifest, params(n_authentic_train=5))[0].equals(capped)  # seeded choice


def test_splits_are_reproducible_from_the_seed(data):
    samples, manifest = data
    a = make_splits(samples, manifest, params())[1]
    b = make_splits(samples.sample(frac=1, random_state=3), manifest, params())[1]
    c = make_splits(samples, manifest, params(seed=1))[1]
    for name in a:
        key = ["protocol", "item_id"]
        pd.testing.assert_frame_equal(a[name].sort_values(key).reset_index(drop=True),
                                      b[name].sort_values(key).reset_index(drop=True))
    assert not a["random"].sort_values("item_id")["split"].reset_index(drop=True).equals(
        c["random"].sort_values("item_id")["split"].reset_index(drop=True))


def test_use_picks_the_protocol_and_refuses_a_skipped_one(data):
    samples, manifest = data
    splits = make_splits(samples, manifest, params(use="leave-out-sd2+sd3.5"))[0]
    assert set(splits["protocol"]) == {"leave-out-sd2+sd3.5"}
    with pytest.raises(ValueError, match="leave-out-flux\\+dalle3"):
        make_splits(samples, manifest, params(use="leave-out-flux+dalle3"))


def test_published_protocol_keeps_the_shipped_split_and_groups_without_manifest_rows():
    samples = pd.DataFrame({"sample_id": ["a", "b", "c"], "base_id": ["a", "b", "c"], "group_id": ["a", "b", "c"],
                            "generators": [["sd2"]] * 3, "last_generator": ["sd2"] * 3, "kept": True,
                            "published_split": ["train", "train", "test"]})
    manifest = pd.DataFrame({"base_id": ["r"], "group_id": ["r"], "kind": ["real"], "published_split": ["test"]})
    p = {"seed": 0, "use": "published", "generators": [{"name": "sd2"}],
         "protocols": {"published": {"kind": "published"}, "random": {"kind": "random"}}}
    splits, tables, _ = make_splits(samples, manifest, p)
    assert dict(zip(splits["item_id"], splits["split"])) == {"a": "train", "b": "train", "c": "test", "r-authentic": "test"}
    assert set(tables["random"]["group_id"]) == {"a", "b", "c", "r"}  # imported groups need no manifest row


def test_protocol_configuration_errors_are_clear():
    with pytest.raises(ValueError, match="split.protocols.x.kind: 'k-fold' must be one of 'random'"):
        expand_protocols({"protocols": {"x": {"kind": "k-fold"}}}, NAMES)
    with pytest.raises(ValueError, match="sum to 1"):
        expand_protocols({"protocols": {"x": {"kind": "random", "names": ["a", "b"], "ratios": [0.5, 0.6]}}}, NAMES)


def test_cross_generator_protocols_count_a_variant_as_its_label():
    """An entry's ``label`` holds in split too: holding out ``sdxl`` holds out its LoRA variant."""
    groups = [f"g{i}" for i in range(20)]
    rows = [{"sample_id": f"{g}-{gen}", "base_id": g, "group_id": g, "last_generator": gen, "generators": [gen],
             "kept": True} for g in groups for gen in ("sdxl", "sdxl-lora", "telea")]
    samples, manifest = pd.DataFrame(rows), pd.DataFrame({"base_id": groups, "group_id": groups, "kind": "real"})
    params = {"seed": 0, "generators": [{"name": "sdxl"}, {"name": "sdxl-lora", "label": "sdxl"}, {"name": "telea"}],
              "protocols": {"out": {"kind": "leave_out", "held_out": ["sdxl"]}}, "use": "out"}
    splits, _, protocols = make_splits(samples, manifest, params)
    edited = splits[splits["kind"] == "edited"]
    train, test = (edited.loc[edited["split"] == s, "generators"] for s in ("train", "test"))
    assert {g for gens in train for g in gens} == {"telea"}  # the variant is held out too
    assert {g for gens in test for g in gens} == {"sdxl", "sdxl-lora"}
    assert protocols.set_index("protocol").at["out", "status"] == "ok"


def _with_pools(manifest: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """``manifest`` plus real-only pool photos (as ingest.real_pools writes them): photos q<k>."""
    rows, k = [], 0
    for pool, size in sizes.items():
        for _ in range(size):
            rows.append({"base_id": real_only_id(f"q{k}", pool), "group_id": f"q{k}", "kind": REAL_ONLY_KIND})
            k += 1
    return pd.concat([manifest, pd.DataFrame(rows)], ignore_index=True)


def test_real_only_pools_join_the_protocols_they_name_without_moving_a_base(data):
    """DiffSeg30k sec. 4: 5k further real photos in segmentation training, 30k real negatives for
    the classifiers; both disjoint from the edited bases, neither changes the group cut."""
    samples, manifest = data
    pooled = _with_pools(manifest, {"authentic": 12, "negatives": 20})
    pools = {"authentic": {"n": 5, "protocols": ["random", "leave-out"]},
             "negatives": {"protocols": ["classifier"]}}
    protocols = {**params()["protocols"], "classifier": {"kind": "random"}}
    tables = make_splits(samples, pooled, params(pools=pools, protocols=protocols))[1]
    plain = make_splits(samples, manifest, params())[1]

    def pool_items(table, pool):
        return table[table["base_id"].map(pool_of) == pool]

    for name, table in tables.items():
        assert no_leaks(table), name
        base_rows = table[table["base_id"].map(pool_of).isna()]
        if name in plain:  # the bases' rows are exactly those of the run without pools
            pd.testing.assert_frame_equal(base_rows.reset_index(drop=True), plain[name].reset_index(drop=True))
        want_authentic = 5 if name == "random" or name.startswith("leave-out-") else 0
        got = pool_items(table, "authentic")
        assert len(got) == want_authentic and set(got["split"]) <= {"train"}, name
        assert (got["kind"] == "authentic").all() and (got["image_dataset"] == "base_images").all()
        assert len(pool_items(table, "negatives")) == (20 if name == "classifier" else 0), name
    drawn = set(pool_items(tables["random"], "authentic")["base_id"])
    assert drawn == set(pool_items(tables["leave-out-sd2+sd3.5"], "authentic")["base_id"])  # one seeded draw
    # no pool photo shares a photo group with an edited base on either side
    bases = set(tables["classifier"].loc[tables["classifier"]["base_id"].map(pool_of).isna(), "group_id"])
    assert not bases & set(pool_items(tables["classifier"], "negatives")["group_id"])


def test_pool_photos_of_an_edited_photo_or_an_unplaced_pool_are_refused(data):
    samples, manifest = data
    pooled = _with_pools(manifest, {"authentic": 3})
    with pytest.raises(ValueError, match="split.pools does not place"):
        make_splits(samples, pooled, params())
    leaked = pooled.copy()
    leaked.loc[leaked.index[-1], "group_id"] = "p1"  # the same photo as an edited base
    with pytest.raises(ValueError, match="share their photo with an edited base"):
        make_splits(samples, leaked, params(pools={"authentic": {}}))
    with pytest.raises(ValueError, match="not a split of protocol"):
        make_splits(samples, pooled, params(pools={"authentic": {"split": "holdout"}}))
