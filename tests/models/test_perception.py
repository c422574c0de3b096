"""Perceivers, region selection, region counts and edit prompts, on real photos and hand-built masks."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from skimage import data

from models.perception import (
    EDIT_TYPES,
    REGION_KINDS,
    Region,
    RegionBalancer,
    area_bucket,
    choose_edit_type,
    choose_region_count,
    create_perceiver,
    list_perceivers,
    make_edit_prompt,
    mask_iou,
    perturb_description,
    plan_edit_types,
    select_regions,
)
from models.registry import UnknownNameError


def _photo(name: str, size: int = 256) -> np.ndarray:
    return cv2.resize(getattr(data, name)(), (size, size), interpolation=cv2.INTER_AREA)


def _box(shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    return mask


def _region(mask: np.ndarray, score: float = 1.0, label: str = "thing", kind: str = "thing") -> Region:
    return Region(mask=mask, label=label, kind=kind, score=score, source="test")


# --- registry -------------------------------------------------------------------------------


def test_registry_lists_both_perceivers():
    assert {"annotations", "superpixel"} <= set(list_perceivers())


def test_unknown_perceiver_lists_known_names():
    with pytest.raises(UnknownNameError, match="annotations.*superpixel"):
        create_perceiver("grounded-sam")


# --- Region ---------------------------------------------------------------------------------


def test_region_validates_mask_and_kind():
    mask = _box((10, 10), slice(0, 5), slice(0, 2))
    assert _region(mask).area_ratio == pytest.approx(0.1)
    with pytest.raises(ValueError, match="bool"):
        _region(mask.astype(np.uint8))
    with pytest.raises(ValueError, match="kind"):
        _region(mask, kind="object")


def test_mask_iou():
    a = _box((10, 10), slice(0, 10), slice(0, 4))
    b = _box((10, 10), slice(0, 10), slice(2, 6))
    assert mask_iou(a, b) == pytest.approx(20 / 60)
    assert mask_iou(a, a) == 1.0
    empty = np.zeros((10, 10), dtype=bool)
    assert mask_iou(empty, empty) == 0.0
    with pytest.raises(ValueError, match="shape"):
        mask_iou(a, np.zeros((5, 5), dtype=bool))


# --- annotations perceiver ------------------------------------------------------------------

SHAPE = (100, 100)


def _annotations() -> list[dict]:
    return [
        # 100 px person (0.01) vs 150 px car (0.015): boosted person scores 0.02 > 0.015.
        {"category": "person", "isthing": True, "mask": _box(SHAPE, slice(50, 60), slice(10, 20))},
        {"category": "car", "isthing": True, "mask": _box(SHAPE, slice(50, 65), slice(40, 50))},
        {
            "category": "sky-other-merged",
            "isthing": False,
            "mask": _box(SHAPE, slice(0, 20), slice(0, 100)),
            "supercategory": "sky",
        },
        {"category": "dog", "isthing": True, "mask": np.zeros(SHAPE, dtype=bool)},  # empty: skipped
    ]


def test_annotations_perceiver_ranks_person_over_bigger_object_and_adds_background():
    image = np.zeros((*SHAPE, 3), dtype=np.uint8)
    annotations = _annotations()
    regions = create_perceiver("annotations").propose(image, annotations)

    things_union = annotations[0]["mask"] | annotations[1]["mask"]
    expected = [  # (label, kind, score) by descending score
        ("background", "background", 1 - 250 / 10_000),
        ("sky", "stuff", 0.2),
        ("person", "thing", 0.01 * 2.0),
        ("car", "thing", 0.015),
    ]
    assert [(r.label, r.kind) for r in regions] == [(label, kind) for label, kind, _ in expected]
    assert [r.score for r in regions] == pytest.approx([score for _, _, score in expected])
    assert all(r.source == "annotations" for r in regions)
    np.testing.assert_array_equal(regions[0].mask, ~things_union)
    np.testing.assert_array_equal(regions[2].mask, annotations[0]["mask"])


def test_annotations_perceiver_without_boost_keeps_area_order():
    image = np.zeros((*SHAPE, 3), dtype=np.uint8)
    regions = create_perceiver("annotations", person_boost=1.0).propose(image, _annotations())
    assert [r.label for r in regions if r.kind == "thing"] == ["car", "person"]


def test_annotations_perceiver_no_background_without_things():
    image = np.zeros((*SHAPE, 3), dtype=np.uint8)
    stuff_only = [a for a in _annotations() if not a["isthing"]]
    regions = create_perceiver("annotations").propose(image, stuff_only)
    assert [r.kind for r in regions] == ["stuff"]


def test_annotations_perceiver_rejects_bad_input():
    perceiver = create_perceiver("annotations")
    image = np.zeros((*SHAPE, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="annotations"):
        perceiver.propose(image, None)
    bad = _annotations()[:1]
    bad[0] = dict(bad[0], mask=bad[0]["mask"].astype(np.uint8))
    with pytest.raises(ValueError, match="bool"):
        perceiver.propose(image, bad)
    with pytest.raises(ValueError, match="does not match image size"):
        perceiver.propose(np.zeros((50, 50, 3), dtype=np.uint8), _annotations())
    with pytest.raises(ValueError, match="lacks key"):
        perceiver.propose(image, [{"category": "car", "mask": _annotations()[0]["mask"]}])


# --- superpixel perceiver -------------------------------------------------------------------


@pytest.fixture(scope="module")
def superpixel():
    return create_perceiver("superpixel")


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_superpixel_perceiver_on_photos(superpixel, name):
    image = _photo(name)
    regions = superpixel.propose(image)

    assert len(regions) >= 3
    for region in regions:
        assert region.mask.dtype == np.bool_ and region.mask.shape == (256, 256)
        assert region.kind in REGION_KINDS
        assert region.mask.any() and not region.mask.all()
        assert region.source == "superpixel"
        assert region.label.startswith("the ") or region.label == "background"
    scores = [r.score for r in regions]
    assert scores == sorted(scores, reverse=True)
    assert sum(r.kind == "background" for r in regions) <= 1

    again = superpixel.propose(image.copy())
    assert [(r.label, r.kind, r.score) for r in again] == [(r.label, r.kind, r.score) for r in regions]
    for a, b in zip(regions, again):
        np.testing.assert_array_equal(a.mask, b.mask)


def test_superpixel_background_is_inverse_of_things(superpixel):
    regions = superpixel.propose(_photo("astronaut"))
    things = [r.mask for r in regions if r.kind == "thing"]
    backgrounds = [r for r in regions if r.kind == "background"]
    assert things and len(backgrounds) == 1
    np.testing.assert_array_equal(backgrounds[0].mask, ~np.logical_or.reduce(things))


def test_superpixel_full_size_masks_for_large_non_square_image(superpixel):
    image = data.rocket()  # 427 x 640, segmented at 256 on the long side
    regions = superpixel.propose(image)
    assert len(regions) >= 3
    assert all(r.mask.shape == image.shape[:2] for r in regions)


def test_superpixel_flat_image_and_bad_input(superpixel):
    assert superpixel.propose(np.full((64, 64, 3), 128, dtype=np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        superpixel.propose(np.zeros((64, 64, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        superpixel.propose(np.zeros((64, 64), dtype=np.uint8))


# --- select_regions -------------------------------------------------------------------------


def test_select_regions_drops_overlaps_above_threshold_only():
    shape = (40, 40)
    a = _box(shape, slice(0, 10), slice(0, 10))  # 100 px
    iou_08 = _box(shape, slice(0, 10), slice(0, 8))  # 80 px inside a: IoU 0.8
    iou_07 = _box(shape, slice(0, 10), slice(0, 7))  # IoU exactly 0.7: kept (strictly >)
    iou_05 = _box(shape, slice(0, 5), slice(0, 10))  # IoU 0.5
    assert mask_iou(a, iou_08) == pytest.approx(0.8)
    assert mask_iou(a, iou_05) == pytest.approx(0.5)
    far = _box(shape, slice(20, 40), slice(20, 40))  # 400 px, disjoint

    regions = [_region(m, score=s) for m, s in ((a, 5), (iou_08, 4), (iou_05, 3), (far, 2))]
    kept = select_regions(regions, 3, min_area_ratio=0.0, max_area_ratio=1.0)
    assert [r.score for r in kept] == [5, 3, 2]

    kept = select_regions([_region(a), _region(iou_07)], 3, min_area_ratio=0.0, max_area_ratio=1.0)
    assert len(kept) == 2
    kept = select_regions([_region(a), _region(iou_05)], 3, iou_threshold=0.4,
                          min_area_ratio=0.0, max_area_ratio=1.0)
    assert len(kept) == 1


def test_select_regions_respects_area_bounds_and_count():
    shape = (40, 40)
    small = _box(shape, slice(0, 4), slice(0, 4))  # 0.01
    medium = _box(shape, slice(10, 20), slice(10, 30))  # 0.125
    large = _box(shape, slice(0, 40), slice(0, 30))  # 0.75
    medium2 = _box(shape, slice(25, 35), slice(0, 10))  # 0.0625
    regions = [_region(m, score=s) for m, s in ((large, 4), (small, 3), (medium, 2), (medium2, 1))]

    kept = select_regions(regions, 3, min_area_ratio=0.05, max_area_ratio=0.5)
    assert [r.score for r in kept] == [2, 1]  # fewer than asked: only two survive
    kept = select_regions(regions, 1, min_area_ratio=0.0, max_area_ratio=1.0)
    assert [r.score for r in kept] == [4]
    assert select_regions([], 2, min_area_ratio=0.0, max_area_ratio=1.0) == []


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"count": 0}, "count"),
        ({"count": 1.5}, "count"),
        ({"iou_threshold": 1.5}, "iou_threshold"),
        ({"min_area_ratio": -0.1}, "min_area_ratio"),
        ({"max_area_ratio": 2.0}, "max_area_ratio"),
        ({"min_area_ratio": 0.6, "max_area_ratio": 0.5}, "min_area_ratio"),
    ],
)
def test_select_regions_validates_arguments(kwargs, argument):
    call = {"count": 2, "min_area_ratio": 0.0, "max_area_ratio": 1.0, **kwargs}
    count = call.pop("count")
    with pytest.raises(ValueError, match=argument):
        select_regions([], count, **call)


# --- choose_region_count --------------------------------------------------------------------


def test_choose_region_count_follows_1_4_5():
    rng = np.random.default_rng(0)
    draws = np.array([choose_region_count(rng, (1, 4, 5)) for _ in range(10_000)])
    assert set(np.unique(draws)) == {1, 2, 3}
    frequencies = np.bincount(draws, minlength=4)[1:] / draws.size
    # Binomial standard error at 10k draws is <= 0.005; allow four of them.
    np.testing.assert_allclose(frequencies, [0.1, 0.4, 0.5], atol=0.02)

    first = [choose_region_count(np.random.default_rng(7), (1, 4, 5)) for _ in range(5)]
    assert len(set(first)) == 1  # same seed, same draw
    assert choose_region_count(rng, (0, 0, 1)) == 3


@pytest.mark.parametrize("weights", [(1, -1, 5), (0, 0, 0), (), (1, float("nan"))])
def test_choose_region_count_rejects_bad_weights(weights):
    with pytest.raises(ValueError, match="weights"):
        choose_region_count(np.random.default_rng(0), weights)


# --- prompts --------------------------------------------------------------------------------


def test_edit_prompts_mention_label_and_differ_by_type():
    region = _region(_box((8, 8), slice(0, 4), slice(0, 4)), label="person")
    prompts = {t: make_edit_prompt(region, t, np.random.default_rng(3)) for t in EDIT_TYPES}
    assert all("person" in p for p in prompts.values()), prompts
    assert len(set(prompts.values())) == len(EDIT_TYPES)
    assert make_edit_prompt(region, "addition", np.random.default_rng(3)) == prompts["addition"]
    assert any(word in prompts["removal"] for word in ("remov", "erase", "without"))


def test_stuff_and_background_prompts_are_scene_rewrites():
    mask = _box((8, 8), slice(0, 4), slice(0, 8))
    sky = _region(mask, label="sky", kind="stuff")
    sky_scenes = ("stormy sky", "starry night sky", "pink sunset sky", "clear blue sky")
    rng = np.random.default_rng(0)
    for _ in range(20):
        prompt = make_edit_prompt(sky, "attribute", rng)
        assert "the sky" in prompt and any(scene in prompt for scene in sky_scenes), prompt

    background = _region(~mask, label="background", kind="background")
    assert "the background" in make_edit_prompt(background, "removal", rng)
    coloured = _region(mask, label="the dark blue area", kind="thing")
    prompt = make_edit_prompt(coloured, "attribute", rng)
    assert "the dark blue area" in prompt and "the the" not in prompt


def test_prompt_rejects_unknown_edit_type():
    region = _region(_box((8, 8), slice(0, 4), slice(0, 4)))
    with pytest.raises(ValueError, match="unknown edit type"):
        make_edit_prompt(region, "recolour", np.random.default_rng(0))


def test_choose_edit_type():
    rng = np.random.default_rng(1)
    draws = [choose_edit_type(rng, {"attribute": 1, "addition": 1, "removal": 2}) for _ in range(4000)]
    assert set(draws) == set(EDIT_TYPES) - {"add"}  # the types with weight; "add" (OpenSDI) has none here
    assert draws.count("removal") / len(draws) == pytest.approx(0.5, abs=0.03)
    assert choose_edit_type(rng, {"removal": 1.0}) == "removal"
    with pytest.raises(ValueError, match="unknown edit type"):
        choose_edit_type(rng, {"inpaint": 1.0})
    with pytest.raises(ValueError, match="zero"):
        choose_edit_type(rng, {"attribute": 0.0})


def test_template_articles_agree():
    background = _region(np.ones((8, 8), dtype=bool), label="background", kind="background")
    prompts = {make_edit_prompt(background, "removal", np.random.default_rng(i)) for i in range(60)}
    assert not any(" a uncluttered" in p or " a empty" in p for p in prompts), prompts


# --- edit plans: an addition takes two turns --------------------------------------------------

WEIGHTS = {"attribute": 1, "addition": 1, "removal": 1}


def _turns(plan: list[str]) -> int:
    return sum(2 if t == "addition" else 1 for t in plan)


def test_plan_edit_types_spends_the_turn_budget():
    rng = np.random.default_rng(0)
    for _ in range(500):
        budget = int(rng.integers(1, 4))
        n_regions = int(rng.integers(0, 4))
        plan = plan_edit_types(rng, n_regions, budget, WEIGHTS)
        assert len(plan) <= n_regions and _turns(plan) <= budget
        assert set(plan) <= set(EDIT_TYPES)
        if n_regions >= budget:
            assert _turns(plan) == budget  # enough regions: every turn is used
    # One turn left: never an addition; only additions weighted and one turn: no plan.
    assert all(plan_edit_types(rng, 3, 1, WEIGHTS) != ["addition"] for _ in range(50))
    assert plan_edit_types(rng, 3, 1, {"addition": 1}) == []
    assert plan_edit_types(rng, 3, 3, {"addition": 1}) == ["addition"]
    draws = [t for _ in range(2000) for t in plan_edit_types(rng, 3, 3, WEIGHTS)]
    assert draws.count("addition") / len(draws) > 0.2  # additions stay common at budget 3
    with pytest.raises(ValueError, match="turn_budget"):
        plan_edit_types(rng, 1, -1, WEIGHTS)


# --- BR-Gen perturbation (word lists) ---------------------------------------------------------


def test_perturb_description_rewrites_stuff_within_its_kind():
    rng = np.random.default_rng(0)
    sky = {perturb_description("the blue sky", "stuff", rng) for _ in range(40)}
    assert sky <= {"a stormy sky", "a starry night sky", "a pink sunset sky", "a clear blue sky"} and len(sky) > 1
    assert "the sky" not in {perturb_description("the sky", "stuff", rng) for _ in range(20)}
    recoloured = perturb_description("the dark blue area", "stuff", rng)
    assert recoloured.startswith("the dark ") and recoloured.endswith(" area") and "blue" not in recoloured
    assert "sky" not in perturb_description("the light sky blue area", "stuff", rng)  # a colour, not the sky
    assert perturb_description("the field", "stuff", rng).endswith(" field")
    assert perturb_description("$a dog$ on green grass", "background", rng).startswith("a dog in ")
    assert "$" not in perturb_description("the background", "background", rng)
    with pytest.raises(ValueError, match="stuff and background"):
        perturb_description("a car", "thing", rng)


# --- dataset-level balance --------------------------------------------------------------------


def test_area_bucket():
    assert area_bucket(0.0) == "0.00-0.05" and area_bucket(0.05) == "0.05-0.10"
    assert area_bucket(1.0) == "0.40-1.00" and area_bucket(0.3, [0, 0.5, 1]) == "0.00-0.50"
    with pytest.raises(ValueError, match="outside"):
        area_bucket(1.5)
    with pytest.raises(ValueError, match="increasing"):
        area_bucket(0.1, [0.2, 0.1])


def _synthetic_candidates(rng: np.random.Generator) -> list[Region]:
    """One image's candidates: a large, boosted person always ranked first, and a few others."""
    shape = (40, 40)
    specs = [("person", 0.3, 6.0), ("dog", 0.08, 1.0), ("car", 0.15, 1.0), ("sky", 0.45, 0.8), ("cup", 0.02, 0.5)]
    regions = []
    for label, area, score in specs:
        side = int(round(np.sqrt(area) * 40))
        top, left = rng.integers(0, 40 - side + 1, size=2)
        regions.append(_region(_box(shape, slice(top, top + side), slice(left, left + side)), score=score,
                               label=label, kind="stuff" if label == "sky" else "thing"))
    return regions


def _chosen_labels(strength: float) -> list[str]:
    balancer = RegionBalancer(strength=strength)
    rng = np.random.default_rng(0)
    labels = []
    for _ in range(300):
        candidates = _synthetic_candidates(rng)
        (region,) = select_regions(balancer.order(candidates, rng), 1, min_area_ratio=0.0, max_area_ratio=1.0)
        balancer.record(region)
        labels.append(region.label)
    return labels


def test_balancer_evens_out_categories_across_the_dataset():
    unbalanced, balanced = _chosen_labels(0.0), _chosen_labels(1.0)

    def shares(labels):
        return np.array([labels.count(c) for c in ("person", "dog", "car", "sky", "cup")]) / len(labels)

    assert shares(unbalanced)[0] > 0.5  # the per-image ranking alone: mostly the person
    # Balanced: every category gets its share; the person (boosted score) is still the most common.
    assert shares(balanced).min() > 0.1 and shares(balanced).argmax() == 0 and shares(balanced)[0] < 0.4
    entropy = [-(p[p > 0] * np.log(p[p > 0])).sum() for p in (shares(unbalanced), shares(balanced))]
    assert entropy[1] > entropy[0] + 0.3


def test_balancer_weights_and_counts():
    balancer = RegionBalancer(strength=1.0, area_edges=[0.0, 0.5, 1.0])
    small = _region(_box((10, 10), slice(0, 2), slice(0, 5)), label="cat")  # area 0.1
    assert balancer.weight(small) == 1.0
    balancer.record(small)
    assert balancer.category_counts["cat"] == 1 and balancer.bucket_counts["0.00-0.50"] == 1
    assert balancer.weight(small) == pytest.approx(0.25)
    other = _region(_box((10, 10), slice(0, 2), slice(0, 5)), label="dog")
    assert balancer.weight(other) == pytest.approx(0.5)  # same bucket, new category
    background = _region(~small.mask, label="anything", kind="background")
    balancer.record(background)
    assert balancer.category_counts["background"] == 1
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    plain = RegionBalancer(strength=0.0)
    regions = [small, other, background]
    scores = np.log([r.score for r in regions]) + rng_b.gumbel(size=3)
    assert plain.order(regions, rng_a) == [regions[i] for i in np.argsort(-scores, kind="stable")]
    assert plain.order([], rng_a) == []
    with pytest.raises(ValueError, match="strength"):
        RegionBalancer(strength=-1)
