"""Grounded segmentation: the vocabulary (thing / stuff / people), prompt chunking, and the
``grounded_sam`` perceiver run for real on tiny random GroundingDINO and SAM checkpoints built
from configs, saved with save_pretrained and loaded back through from_pretrained. Random weights
give arbitrary boxes and masks: the tests check shapes, types, kinds and the derived background,
not what was found."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from models.perception import (
    REGION_KINDS,
    GroundingDinoDetector,
    SamSegmenter,
    create_perceiver,
    list_perceivers,
)
from models.perception.grounded import phrase_chunks
from models.perception.tiny import build_offline_bert_tokenizer, tiny_checkpoint
from models.perception.vocabulary import (
    COCO_STUFF_NAMES,
    COCO_THING_NAMES,
    is_human,
    merge_names,
    name_kind,
    resolve_vocabulary,
)

HEIGHT, WIDTH = 72, 96  # not square, so that a swapped axis shows


@pytest.fixture(scope="module")
def image():
    return cv2.resize(skimage.data.astronaut(), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "tiny-perception"


@pytest.fixture(scope="module")
def grounding_models(tiny_root):
    return str(tiny_checkpoint("grounding-dino", tiny_root)), str(tiny_checkpoint("sam", tiny_root))


# --- vocabulary -------------------------------------------------------------------------------


def test_coco_vocabulary_kinds():
    assert len(COCO_THING_NAMES) == 80 and len(set(COCO_STUFF_NAMES)) == len(COCO_STUFF_NAMES) > 80
    assert all(name_kind(n) == "thing" for n in COCO_THING_NAMES)  # "dining table", "traffic light" too
    assert all(name_kind(n) == "stuff" for n in COCO_STUFF_NAMES)
    assert name_kind("clear blue sky") == "stuff" and name_kind("Brick-Wall") == "stuff"
    assert name_kind("red car") == "thing" and name_kind("golden retriever") == "thing"
    assert is_human("tennis player") and is_human("two children") and not is_human("dog")


def test_resolve_and_merge_vocabularies():
    assert resolve_vocabulary("coco") == COCO_THING_NAMES + COCO_STUFF_NAMES
    assert resolve_vocabulary("none") == ()
    assert resolve_vocabulary(["Sky", "sky ", "red  car"]) == ("sky", "red car")
    assert merge_names(["man", "sky"], ("sky", "grass")) == ("man", "sky", "grass")
    with pytest.raises(ValueError, match="unknown vocabulary"):
        resolve_vocabulary("lvis")
    with pytest.raises(ValueError, match="non-empty"):
        merge_names(["dog", ""])


def test_phrase_chunks_fit_the_text_length():
    names = ["a", "b", "c", "d"]
    # [CLS] + [SEP] take two of max_tokens.
    assert phrase_chunks(names, [3, 3, 3, 3], max_tokens=7) == [[0], [1], [2], [3]]
    assert phrase_chunks(names, [3, 3, 3, 3], max_tokens=8) == [[0, 1], [2, 3]]
    assert phrase_chunks(names, [1, 1, 1, 1], max_tokens=256) == [[0, 1, 2, 3]]
    with pytest.raises(ValueError, match="takes 9 tokens"):
        phrase_chunks(["long"], [9], max_tokens=10)


def test_offline_bert_tokenizer_matches_grounding_dino_special_ids():
    tokenizer = build_offline_bert_tokenizer()
    ids = tokenizer("person. teddy bear.")["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and ids.count(1012) == 2  # [CLS], [SEP], "." as in BERT
    names = resolve_vocabulary("coco")
    counts = [len(tokenizer(f"{n}.", add_special_tokens=False)["input_ids"]) for n in names]
    assert len(phrase_chunks(names, counts, 256)) == 2  # the COCO vocabulary needs two prompts


# --- the models -------------------------------------------------------------------------------


def test_detector_boxes_on_tiny_grounding_dino(grounding_models, image):
    detector = GroundingDinoDetector(model=grounding_models[0], box_threshold=0.0, max_boxes_per_name=2)
    network, processor = detector.load()
    assert type(network).__name__ == "GroundingDinoForObjectDetection" and detector.load()[0] is network
    names = list(resolve_vocabulary("coco"))
    detections = detector.detect(image, names)
    assert detections and all(d.name in names for d in detections)
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    for d in detections:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
    per_name = {n: sum(d.name == n for d in detections) for n in {d.name for d in detections}}
    assert max(per_name.values()) <= 2
    second_prompt = set(names[117:])  # grounded through the second of the two prompts
    assert {d.name for d in detections} & second_prompt
    assert GroundingDinoDetector(model=grounding_models[0], box_threshold=1.0).detect(image, ["person"]) == []
    with pytest.raises(ValueError, match="at least one"):
        detector.detect(image, [])


def test_segmenter_masks_on_tiny_sam(grounding_models, image):
    segmenter = SamSegmenter(model=grounding_models[1], boxes_per_batch=2)
    network, _ = segmenter.load()
    assert type(network).__name__ == "SamModel"
    boxes = [(5, 5, 40, 60), (30, 10, 90, 70), (0, 0, 96, 72)]
    results = segmenter.segment(image, boxes)  # two batches of boxes, one image encoding
    assert len(results) == 3
    for mask, score in results:
        assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == np.bool_ and isinstance(score, float)
    assert segmenter.segment(image, []) == []
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        segmenter.segment(image, [(1, 2, 3)])


def test_checkpoint_of_the_wrong_model_is_refused(grounding_models, image):
    with pytest.raises(ValueError, match="'sam' checkpoint, expected 'grounding-dino'"):
        GroundingDinoDetector(model=grounding_models[1]).detect(image, ["person"])


# --- every registered perceiver ---------------------------------------------------------------


def _perceiver_inputs(name, grounding_models, image):
    if name == "grounded_sam":
        kwargs = {"detector": {"model": grounding_models[0], "box_threshold": 0.0},
                  "segmenter": {"model": grounding_models[1]}, "vocabulary": ["grass", "tree", "horse"]}
        return create_perceiver(name, **kwargs), {"object_names": ["astronaut", "flag"]}
    if name == "florence2_sam":
        root = tiny_checkpoint("florence2", Path(grounding_models[1]).parent)
        kwargs = {"grounder": {"model": str(root), "max_new_tokens": 16, "num_beams": 1},
                  "segmenter": {"model": grounding_models[1]}}
        return create_perceiver(name, **kwargs), {"object_names": ["astronaut", "flag"]}
    if name == "annotations":
        mask = np.zeros(image.shape[:2], dtype=bool)
        mask[10:50, 20:60] = True
        return create_perceiver(name), {"annotations": [{"category": "person", "isthing": True, "mask": mask}]}
    return create_perceiver(name), {}


@pytest.mark.parametrize("name", list_perceivers())
def test_every_perceiver_proposes_full_size_regions(name, grounding_models, image):
    perceiver, extra = _perceiver_inputs(name, grounding_models, image)
    regions = perceiver.propose(image, **extra)
    assert regions or name == "florence2_sam"  # a random Florence-2 ends its answer at once: no box (test_florence_sam)
    for region in regions:
        assert region.mask.shape == image.shape[:2] and region.mask.dtype == np.bool_ and region.mask.any()
        assert region.kind in REGION_KINDS and region.source == name and region.label
    scores = [r.score for r in regions]
    assert scores == sorted(scores, reverse=True)
    things = [r.mask for r in regions if r.kind == "thing"]
    backgrounds = [r for r in regions if r.kind == "background"]
    if things and backgrounds:
        assert len(backgrounds) == 1
        np.testing.assert_array_equal(backgrounds[0].mask, ~np.logical_or.reduce(things))


def test_grounded_sam_kinds_follow_the_names(grounding_models, image):
    perceiver = create_perceiver(
        "grounded_sam", detector={"model": grounding_models[0], "box_threshold": 0.0, "max_boxes_per_name": 1},
        segmenter={"model": grounding_models[1]}, vocabulary="none",
    )
    regions = perceiver.propose(image, object_names=["man", "clear sky", "horse", "grass"])
    kinds = {r.label: r.kind for r in regions if r.kind != "background"}
    assert kinds and set(kinds) <= {"man", "clear sky", "horse", "grass"}
    assert all(kind == ("stuff" if label in {"clear sky", "grass"} else "thing") for label, kind in kinds.items())
    assert perceiver.accepts_object_names
    with pytest.raises(ValueError, match="no category names"):
        perceiver.propose(image)
    with pytest.raises(ValueError, match="person_boost"):
        create_perceiver("grounded_sam", person_boost=0)
