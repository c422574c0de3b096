"""OpenSDI's one-turn "add an object" edit (models.perception.additions).

The VLM's proposal (object, relation, place) is read from realistic and malformed answers; the
new object's mask follows the stated sizing rule on a place mask; the whole edit runs on the
tiny VLM checkpoints (random answers: the recorded template fallback) and on a tiny Florence-2
+ SAM (the place grounded by Florence-2's boxes, refined by SAM)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from models.perception import (
    AddSizing,
    Region,
    VLMParseError,
    addition_mask,
    create_perceiver,
    create_vlm,
    ground_with,
    parse_add_proposal,
    plan_edit_types,
    write_add_edit,
)
from models.perception.tiny import tiny_checkpoint

H, W = 64, 96
OPENSDI_VLMS = ["llama-3.2-vision", "llava", "internvl", "qwen2-vl"]


@pytest.fixture(scope="module")
def image():
    return cv2.resize(skimage.data.astronaut(), (W, H), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "tiny-perception"  # shared with tests/models/test_vlm.py


def _region(kind="stuff", label="grass", box=(40, 64, 0, 96)) -> Region:
    mask = np.zeros((H, W), bool)
    mask[box[0]:box[1], box[2]:box[3]] = True
    return Region(mask=mask, label=label, kind=kind, score=0.5, source="test")


# --- reading the VLM's proposal ---------------------------------------------------------------

REALISTIC = [
    # Qwen2-VL / InternVL: the JSON asked for
    ('{"object": "a red bicycle", "relation": "next to", "place": "the wooden bench"}',
     ("a red bicycle", "red bicycle", "next to", "the wooden bench")),
    # Llama 3.2 Vision: prose around a fenced JSON, relation folded into the place
    ('Here is a suggestion:\n\n```json\n{"object": "a small brown dog", "place": "on top of the sofa"}\n```',
     ("a small brown dog", "small brown dog", "on", "the sofa")),
    # LLaVA 1.5 often answers with a sentence
    ("Add a vase of flowers on the table.", ("a vase of flowers", "vase of flowers", "on", "the table")),
    ("Answer: place a kite in the sky", ("a kite", "kite", "in", "the sky")),
    ('{"object": "hot air balloon", "relation": "above", "place": "the mountains"}',
     ("hot air balloon", "hot air balloon", "on", "the mountains")),
    ('{"item": "a seagull", "position": "beside", "location": "the lighthouse"}',
     ("a seagull", "seagull", "next to", "the lighthouse")),
    ('{"object": "a lamp", "relation": "somewhere", "place": "the desk"}', ("a lamp", "lamp", "in", "the desk")),
]


@pytest.mark.parametrize("answer, expected", REALISTIC)
def test_realistic_addition_answers_are_read(answer, expected):
    proposal = parse_add_proposal(answer)
    assert (proposal.object, proposal.name, proposal.relation, proposal.place) == expected
    assert proposal.instruction == f"add {expected[0]} {expected[2]} {expected[3]}"
    assert proposal.prompt == f"{expected[0]} {expected[2]} {expected[3]}"  # the inpaint prompt names the object


@pytest.mark.parametrize("answer, reason", [
    ("\u00bf\ufffd@@", "undecodable"),
    ("I'm sorry, I can't help with that.", "declined"),
    ('{"object": "a red bicy', "truncated JSON"),
    ('{"object": "a cat"}', "no place"),
    ('{"place": "the table"}', "no object"),
    ("There is a man in a space suit.", "no 'add"),
    ('{"object": "a very large and extremely ornate antique wooden chair", "place": "the floor"}', "words"),
    ('{"object": "3 2 1", "place": "the floor"}', "letters"),
])
def test_malformed_addition_answers_raise_a_parse_error(answer, reason):
    with pytest.raises(VLMParseError, match=reason):
        parse_add_proposal(answer)


# --- the sizing rule --------------------------------------------------------------------------


def _box(mask):
    ys, xs = np.nonzero(mask)
    return xs.min(), xs.max() + 1, ys.min(), ys.max() + 1


@pytest.mark.parametrize("relation", ["in", "on", "next to"])
def test_the_object_mask_follows_the_sizing_rule(relation):
    place = np.zeros((H, W), bool)
    place[30:60, 40:56] = True  # 480 px: room for a neighbour on either side
    sizing = AddSizing(min_area_ratio=0.01, max_area_ratio=0.25)
    px0, px1, py0, py1 = _box(place)
    for seed in range(20):
        mask = addition_mask(place, relation, np.random.default_rng(seed), sizing)
        assert mask.shape == (H, W) and mask.dtype == bool
        np.testing.assert_array_equal(mask, addition_mask(place, relation, np.random.default_rng(seed), sizing))
        lo, hi = (0.5, 1.0) if relation == "next to" else (0.1, 0.3)
        area = mask.sum()
        n = place.sum()
        assert max(lo * n, 0.01 * H * W) * 0.8 <= area <= min(hi * n, 0.25 * H * W) * 1.2, (seed, area)
        x0, x1, y0, y1 = _box(mask)
        assert 0.5 * 0.8 <= (y1 - y0) / (x1 - x0) <= 2.0 * 1.25  # ellipse aspect within the range
        filled = area / ((x1 - x0) * (y1 - y0))
        assert 0.65 <= filled <= 0.9  # an ellipse fills pi/4 of its box
        if relation == "in":
            assert place[mask].mean() > 0.9  # inside the place (rasterised: a pixel column may overhang)
        elif relation == "on":
            assert px0 - 1 <= x0 and x1 <= px1 + 1  # over the place, not overhanging it (1 px rounding)
            assert place[y1 - 1, (x0 + x1) // 2]  # its bottom rests on the place
        else:
            assert x1 <= px0 + 2 or x0 >= px1 - 2  # beside the place's box
            assert abs(y1 - py1) <= 2  # bottom-aligned with it
    masks = {addition_mask(place, relation, np.random.default_rng(s), sizing).tobytes() for s in range(5)}
    assert len(masks) == 5  # the draws vary size, shape and position


def test_sizing_clips_to_the_image_share_and_refuses_bad_input():
    sky = np.zeros((H, W), bool)
    sky[:40] = True  # 62 % of the image
    sizing = AddSizing(size_range=(0.9, 1.0), max_area_ratio=0.1)
    for seed in range(5):
        assert addition_mask(sky, "in", np.random.default_rng(seed), sizing).sum() <= 0.1 * H * W * 1.15
    tiny = np.zeros((H, W), bool)
    tiny[10, 10] = True  # one pixel: the object still gets the minimum area
    assert addition_mask(tiny, "in", np.random.default_rng(0), AddSizing(min_area_ratio=0.02)).sum() >= 0.02 * H * W * 0.8
    with pytest.raises(ValueError, match="non-empty"):
        addition_mask(np.zeros((H, W), bool), "in", np.random.default_rng(0))
    with pytest.raises(ValueError, match="relation"):
        addition_mask(sky, "under", np.random.default_rng(0))
    with pytest.raises(ValueError, match="size_range"):
        AddSizing(size_range=(0.5, 0.1))


def test_add_takes_one_turn_and_weights_without_it_draw_as_before():
    assert plan_edit_types(np.random.default_rng(0), 3, 3, {"add": 1}) == ["add"] * 3
    old = {"attribute": 2, "removal": 1}
    draws = [plan_edit_types(np.random.default_rng(s), 1, 1, old) for s in range(50)]
    again = [plan_edit_types(np.random.default_rng(s), 1, 1, {**old, "add": 0}) for s in range(50)]
    assert draws == again


# --- the whole edit: VLM -> grounding -> mask -> turn ------------------------------------------


class Scripted:
    """A VLM adapter's real ``propose_addition`` over a canned ``ask`` (what a real model answers)."""

    def __init__(self, family, answer):
        self.vlm = create_vlm(family, model="unused")
        self.vlm.ask = lambda image, question, seed=0, max_new_tokens=None: answer


def test_a_readable_proposal_is_grounded_and_recorded(image):
    drawn = _region()
    bench = np.zeros((H, W), bool)
    bench[20:40, 10:50] = True
    asked = []

    def ground(img, phrase):
        asked.append(phrase)
        return bench if phrase == "the wooden bench" else None

    answer = '{"object": "a red bicycle", "relation": "next to", "place": "the wooden bench"}'
    edit = write_add_edit(image, drawn, np.random.default_rng(0), vlm=Scripted("llava", answer).vlm, vlm_name="llava",
                          ground=ground, source="florence2_sam")
    assert asked == ["the wooden bench"]
    assert edit.placement == "grounded:the wooden bench"
    turn, region = edit.turn, edit.region
    assert (turn.edit_type, turn.prompt, turn.prompt_source) == ("add", "a red bicycle next to the wooden bench", "vlm:llava")
    assert turn.description == "add a red bicycle next to the wooden bench"
    assert (region.label, region.kind, region.source) == ("red bicycle", "thing", "florence2_sam")
    x0, x1, _, y1 = _box(region.mask)
    assert (x1 <= 12 or x0 >= 48) and abs(y1 - 40) <= 2  # beside the bench, not on the drawn grass

    # the place is not found: the drawn region, recorded, with the relation its kind gives
    edit = write_add_edit(image, drawn, np.random.default_rng(0), vlm=Scripted("internvl", answer.replace(
        "wooden bench", "garden gnome")).vlm, vlm_name="internvl", ground=ground)
    assert edit.placement == "place_not_found:the garden gnome->drawn_region"
    assert edit.turn.prompt == "a red bicycle on the grass" and edit.turn.prompt_source == "vlm:internvl"
    assert drawn.mask[edit.region.mask].mean() > 0.5
    # a perceiver that cannot ground text (superpixel)
    edit = write_add_edit(image, drawn, np.random.default_rng(0), vlm=Scripted("qwen2-vl", answer).vlm,
                          vlm_name="qwen2-vl", ground=ground_with(create_perceiver("superpixel")))
    assert edit.placement == "no_grounder:the wooden bench->drawn_region"


@pytest.mark.parametrize("answer", ["\ufffd\ufffd", "I cannot help with that.", '{"object": "a cat"}'])
def test_a_malformed_proposal_falls_back_to_a_template_on_the_drawn_region(image, answer):
    drawn = _region("thing", "person", (10, 50, 30, 60))
    edit = write_add_edit(image, drawn, np.random.default_rng(1), vlm=Scripted("llama-3.2-vision", answer).vlm,
                          vlm_name="llama-3.2-vision", ground=lambda img, phrase: pytest.fail("nothing to ground"))
    assert edit.placement == "template->drawn_region"
    assert edit.turn.prompt_source == "vlm:llama-3.2-vision:parse_failed->template"
    assert edit.turn.edit_type == "add" and edit.turn.prompt.endswith(" next to the person")
    assert edit.turn.description == f"add {edit.turn.prompt}" and edit.region.label in edit.turn.prompt
    # the same rng state gives the same template edit, with or without a (failing) VLM
    plain = write_add_edit(image, drawn, np.random.default_rng(1))
    assert plain.turn.prompt == edit.turn.prompt and plain.turn.prompt_source == "template"
    np.testing.assert_array_equal(plain.region.mask, edit.region.mask)


@pytest.mark.parametrize("family", OPENSDI_VLMS)
def test_each_opensdi_vlm_proposes_on_its_tiny_checkpoint(family, tiny_root, image):
    size = {"max_pixels": 16 * 28 * 28} if family.startswith("qwen") else {}
    vlm = create_vlm(family, model=str(tiny_checkpoint(family, tiny_root)), max_new_tokens=8, **size)
    edit = write_add_edit(image, _region(), np.random.default_rng(0), vlm=vlm, vlm_name=family)
    # random weights: byte soup, read as such and recorded; the edit still has its turn and mask
    assert edit.turn.prompt_source in {f"vlm:{family}", f"vlm:{family}:parse_failed->template"}
    assert edit.turn.edit_type == "add" and edit.region.mask.any()


# What Florence-2 (large) answers to <CAPTION_TO_PHRASE_GROUNDING> for a place phrase.
BENCH_ANSWER = "</s><s>the wooden bench<loc_100><loc_300><loc_500><loc_600></s>"


def test_florence2_sam_grounds_the_place(image, tiny_root, monkeypatch):
    perceiver = create_perceiver("florence2_sam", grounder={"model": str(tiny_checkpoint("florence2", tiny_root)),
                                                            "num_beams": 1, "max_new_tokens": 8},
                                 segmenter={"model": str(tiny_checkpoint("sam", tiny_root))})
    ground = ground_with(perceiver)
    assert ground is not None
    assert ground(image, "the wooden bench") is None  # a random Florence-2 writes no box: nothing found
    monkeypatch.setattr(perceiver.detector, "ground", lambda img, phrase: BENCH_ANSWER)  # the text only
    place = ground(image, "the wooden bench")  # boxes read by the processor, mask by the tiny SAM
    assert place.shape == (H, W) and place.dtype == bool and place.any()
    answer = '{"object": "a cat", "relation": "on", "place": "the wooden bench"}'
    edit = write_add_edit(image, _region(), np.random.default_rng(0), vlm=Scripted("qwen2-vl", answer).vlm,
                          vlm_name="qwen2-vl", ground=ground)
    assert edit.placement == "grounded:the wooden bench" and edit.turn.prompt == "a cat on the wooden bench"
    x0, x1, _, _ = _box(edit.region.mask)
    bx0, bx1, _, _ = _box(place)
    assert bx0 <= x0 and x1 <= bx1  # on the grounded place


def test_the_mask_never_falls_under_the_minimum_area():
    place = np.zeros((H, W), bool)
    place[5:8, 5:9] = True
    sizing = AddSizing(min_area_ratio=0.02)
    for relation in ("in", "on", "next to"):
        for seed in range(30):
            assert addition_mask(place, relation, np.random.default_rng(seed), sizing).sum() >= 0.02 * H * W
