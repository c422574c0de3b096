"""OpenSDI's perception: Florence-2 phrase grounding + SAM masks (``florence2_sam``).

The whole path runs for real on a tiny random Florence-2 and a tiny random SAM, built from
configs, saved and loaded back through from_pretrained. A random Florence-2 ends its answer at
once (no box), so the box -> mask path is also run on the answers a real Florence-2 writes, read
by the tiny checkpoint's own post-processor, with the real tiny SAM."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from models.perception import Florence2Grounder, create_perceiver, list_perceivers
from models.perception.florence_sam import PHRASE_GROUNDING_TASK
from models.perception.tiny import tiny_checkpoint

HEIGHT, WIDTH = 72, 96


@pytest.fixture(scope="module")
def image():
    return cv2.resize(skimage.data.astronaut(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "tiny-perception"
    return str(tiny_checkpoint("florence2", root)), str(tiny_checkpoint("sam", root))


def test_florence2_sam_is_registered_and_validates():
    assert "florence2_sam" in list_perceivers()
    with pytest.raises(ValueError, match="num_beams"):
        Florence2Grounder(model="x", num_beams=0)
    with pytest.raises(ValueError, match="dtype"):
        Florence2Grounder(model="x", dtype="int8")
    with pytest.raises(ValueError, match="florence2_sam has no category names"):
        create_perceiver("florence2_sam").propose(np.zeros((8, 8, 3), np.uint8))


def test_the_whole_path_on_tiny_florence2_and_sam(models, image):
    perceiver = create_perceiver("florence2_sam", grounder={"model": models[0], "max_new_tokens": 16, "num_beams": 1},
                                 segmenter={"model": models[1]})
    network, _ = perceiver.detector.load()
    assert type(network).__name__ == "Florence2ForConditionalGeneration"
    answer = perceiver.detector.ground(image, "an astronaut")
    assert isinstance(answer, str)  # random weights: an answer, usually with no box in it
    regions = perceiver.propose(image, object_names=["astronaut", "flag"])
    for region in regions:
        assert region.mask.shape == image.shape[:2] and region.source == "florence2_sam"
    with pytest.raises(ValueError, match="'sam' checkpoint, expected 'florence2'"):
        Florence2Grounder(model=models[1]).load()


# What Florence-2 (large) answers to <CAPTION_TO_PHRASE_GROUNDING>: the phrase, then 4 location
# tokens per box (bins of 1/1000 of the width / height).
REAL_ANSWERS = {
    "astronaut": "</s><s>astronaut<loc_250><loc_100><loc_750><loc_990></s>",
    "flag": "</s><s>flag<loc_10><loc_20><loc_300><loc_500>flag<loc_600><loc_10><loc_900><loc_400></s>",
}


def test_boxes_from_real_answers(models):
    grounder = Florence2Grounder(model=models[0], max_boxes_per_name=2)
    (astronaut,) = grounder.boxes_from_answer(REAL_ANSWERS["astronaut"], "astronaut", HEIGHT, WIDTH)
    x0, y0, x1, y1 = astronaut.box
    assert abs(x0 - 0.25 * WIDTH) <= 1 and abs(x1 - 0.75 * WIDTH) <= 1
    assert abs(y0 - 0.1 * HEIGHT) <= 1 and abs(y1 - 0.99 * HEIGHT) <= 1 and astronaut.score == 1.0
    assert len(grounder.boxes_from_answer(REAL_ANSWERS["flag"], "flag", HEIGHT, WIDTH)) == 2
    grounder.max_boxes_per_name = 1
    assert len(grounder.boxes_from_answer(REAL_ANSWERS["flag"], "flag", HEIGHT, WIDTH)) == 1
    # Malformed: no box, a cut-off box, a zero-width box.
    for answer in ("</s></s>", "</s><s>astronaut</s>", "</s><s>flag<loc_10><loc_20></s>",
                   "</s><s>pole<loc_500><loc_10><loc_500><loc_900></s>"):
        assert grounder.boxes_from_answer(answer, "x", HEIGHT, WIDTH) == [], answer


def test_real_answers_become_sam_regions(models, image, monkeypatch):
    perceiver = create_perceiver("florence2_sam", grounder={"model": models[0]}, segmenter={"model": models[1]},
                                 vocabulary=["sky"])
    asked = []

    def florence_answers(img, phrase):  # the grounding text only; boxes and masks are computed for real
        asked.append(phrase)
        return REAL_ANSWERS.get(phrase, "</s><s>sky<loc_0><loc_0><loc_999><loc_300></s>")

    monkeypatch.setattr(perceiver.detector, "ground", florence_answers)
    regions = perceiver.propose(image, object_names=["astronaut", "flag"])
    assert asked == ["astronaut", "flag", "sky"]  # given names first, then the vocabulary; one call each
    assert regions  # four boxes, each refined by SAM to a mask
    kinds = {r.label: r.kind for r in regions}
    assert {label for label in kinds if kinds[label] != "background"} <= {"astronaut", "flag", "sky"}
    assert all(kinds[label] == ("stuff" if label == "sky" else "thing") for label in kinds if label != "background")
    for region in regions:
        assert region.mask.shape == image.shape[:2] and region.mask.any() and region.source == "florence2_sam"
    things = [r.mask for r in regions if r.kind == "thing"]
    backgrounds = [r for r in regions if r.kind == "background"]
    if things and backgrounds:
        np.testing.assert_array_equal(backgrounds[0].mask, ~np.logical_or.reduce(things))
    assert [r.score for r in regions] == sorted((r.score for r in regions), reverse=True)
    assert PHRASE_GROUNDING_TASK == "<CAPTION_TO_PHRASE_GROUNDING>"


# --- the phrase-box grammar (tiny recipe layers: a random Florence-2 still writes one box) --------


def test_the_grammar_allows_a_phrase_then_one_ordered_box_then_the_end(models):
    from models.perception.florence_sam import PhraseBoxGrammar

    _, processor = Florence2Grounder(model=models[0]).load()
    tokenizer = processor.tokenizer
    grammar = PhraseBoxGrammar(tokenizer, len(tokenizer), min_bins=16, max_phrase_tokens=3)
    loc = lambda k: tokenizer.convert_tokens_to_ids(f"<loc_{k}>")  # noqa: E731
    word = tokenizer.convert_tokens_to_ids("a")
    allowed = lambda answer: set(np.flatnonzero(grammar.allowed(answer).numpy()))  # noqa: E731
    first = allowed([])
    assert word in first and loc(0) not in first and tokenizer.eos_token_id not in first  # a phrase first
    assert tokenizer.convert_tokens_to_ids("<") not in first and tokenizer.convert_tokens_to_ids("<od>") not in first
    after_word = allowed([word])
    assert {word, loc(0), loc(983)} <= after_word and loc(984) not in after_word  # x0 leaves room for x1
    assert allowed([word] * 3) == {loc(k) for k in range(984)}  # the phrase is at most 3 tokens
    assert allowed([word, loc(500)]) == {loc(k) for k in range(984)}  # y0
    assert allowed([word, loc(500), loc(100)]) == {loc(k) for k in range(516, 1000)}  # x1 >= x0 + 16
    assert allowed([word, loc(500), loc(100), loc(600)]) == {loc(k) for k in range(116, 1000)}  # y1 >= y0 + 16
    assert allowed([word, loc(500), loc(100), loc(600), loc(200)]) == {tokenizer.eos_token_id}
    with pytest.raises(ValueError, match="min_bins"):
        PhraseBoxGrammar(tokenizer, len(tokenizer), min_bins=0)


def test_a_tiny_florence2_under_the_grammar_grounds_every_phrase(models, image):
    plain = Florence2Grounder(model=models[0], num_beams=1, max_new_tokens=12)
    constrained = Florence2Grounder(model=models[0], num_beams=2, max_new_tokens=12, box_grammar=True)
    for phrase in ("an astronaut", "the sky"):
        answer = constrained.ground(image, phrase)
        assert plain.boxes_from_answer(plain.ground(image, phrase), phrase, HEIGHT, WIDTH) == []  # random: no box
        (box,) = constrained.boxes_from_answer(answer, phrase, HEIGHT, WIDTH)  # the model's own box, read as usual
        x0, y0, x1, y1 = box.box
        assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT and x1 - x0 >= 1 and y1 - y0 >= 1
    perceiver = create_perceiver("florence2_sam", grounder={"model": models[0], "num_beams": 1, "max_new_tokens": 8,
                                                            "box_grammar": True},
                                 segmenter={"model": models[1]}, vocabulary=["person", "sky"])
    regions = perceiver.propose(image)
    assert {r.label for r in regions} <= {"person", "sky", "background"} and regions
    assert all(r.mask.shape == image.shape[:2] and r.mask.any() for r in regions)
    place = perceiver.ground_phrase(image, "the bench")  # an "add" place: grounded and refined by SAM
    assert place is not None and place.shape == image.shape[:2] and place.any()
