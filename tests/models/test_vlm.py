"""Vision-language models: answer parsing on realistic (and malformed) model outputs, every
registered VLM family run for real on a tiny random checkpoint of its architecture (built from a
config, saved with save_pretrained, loaded back through from_pretrained), and the prompt writer
that falls back to templates and records what happened."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from models.perception import (
    EDIT_TYPES,
    Region,
    VLMParseError,
    create_vlm,
    list_vlms,
    mark_region,
    write_region_edits,
)
from models.perception import vlm as vlm_module
from models.perception.tiny import TINY_BUILDERS, tiny_checkpoint
from models.perception.vlm_parsing import (
    normalise_name,
    parse_edit_prompt,
    parse_marked,
    parse_object_list,
    parse_phrase,
)
from models.registry import UnknownNameError

SIZE = 96


@pytest.fixture(scope="module")
def image():
    return cv2.resize(skimage.data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _region(kind: str = "thing", label: str = "person") -> Region:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[20:70, 30:60] = True
    if kind == "background":
        mask = ~mask
    return Region(mask=mask, label=label, kind=kind, score=1.0, source="test")


# --- parsing: realistic answers ---------------------------------------------------------------

OBJECT_LISTS = [
    ('["person", "dog", "red car"]', ["person", "dog", "red car"]),
    ('```json\n["person", "surfboard", "waves"]\n```', ["person", "surfboard", "waves"]),
    ("Sure! Here are the objects:\n1. Person\n2. A brown dog (lying down)\n3. Car: parked",
     ["person", "brown dog", "car"]),
    ("- man\n- bicycle\n- street lamp", ["man", "bicycle", "street lamp"]),
    ("person, dog, car and bicycle.", ["person", "dog", "car", "bicycle"]),
    ("Objects: Person; Umbrella; the sky", ["person", "umbrella", "sky"]),
    ('{"objects": [{"name": "man"}, {"name": "kite"}, {"name": "man"}]}', ["man", "kite"]),
    ("['woman', 'horse']", ["woman", "horse"]),
    ("Here are the objects:\n\n* **Person**\n* **Horse**: brown\n* `flag`", ["person", "horse", "flag"]),
    ('["person", "dog", "ca', ["person", "dog"]),  # cut off at the token limit
    ('<|im_start|>assistant\n["giraffe", "tree"]<|im_end|>', ["giraffe", "tree"]),
]


@pytest.mark.parametrize(("answer", "expected"), OBJECT_LISTS)
def test_parse_object_list_realistic(answer, expected):
    assert parse_object_list(answer) == expected


MALFORMED = [
    "",
    "I'm sorry, I can't help with that.",  # a refusal is not the object "sorry"
    "Sorry, I cannot identify objects in this image.",
    "\ufffdsS\ufffd\x1bI\ufffd4\ufffd\ufffd\ufffd$\ufffd",  # what the random tiny model says
    "The image shows a man riding a horse along a beach at sunset.",
    "12, 45, 3.5",
    "[1, 2, 3]",
    "???",
]


@pytest.mark.parametrize("answer", MALFORMED)
def test_parse_object_list_malformed_raises_parse_error(answer):
    with pytest.raises(VLMParseError) as error:
        parse_object_list(answer)
    assert error.value.task == "object list" and error.value.text == answer[:200]


def test_parse_object_list_caps_the_count():
    assert parse_object_list(", ".join(f"thing {c}" for c in "abcdefghij"), max_objects=3) == [
        "thing a", "thing b", "thing c"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"prompt": "make the car bright red"}', "make the car bright red"),
        ('```json\n{"prompt": "a wooden bench under the tree"}\n```', "a wooden bench under the tree"),
        ('Prompt: "Make the car bright red."', "Make the car bright red."),
        ("Sure, here is the editing prompt:\nTurn the dog into a golden retriever",
         "Turn the dog into a golden retriever"),
        ("{'prompt': 'replace the cat with a small dog'}", "replace the cat with a small dog"),
        ("1. Paint the bus in bright yellow", "Paint the bus in bright yellow"),
    ],
)
def test_parse_edit_prompt_realistic(answer, expected):
    assert parse_edit_prompt(answer) == expected


@pytest.mark.parametrize(
    "answer",
    ['{"prompt": "make the car bri', "x9 3 ## 4 4 ,,, ..", "\ufffd\ufffd\x01w", "ok", " ".join(["word"] * 41), "{}"],
)
def test_parse_edit_prompt_malformed(answer):
    with pytest.raises(VLMParseError, match="edit prompt"):
        parse_edit_prompt(answer)


def test_parse_phrase_and_marked_descriptions():
    assert parse_phrase('"the blue sky"') == "the blue sky"
    assert parse_phrase('{"description": "a man in a red jacket"}') == "a man in a red jacket"
    with pytest.raises(VLMParseError):
        parse_phrase("This region shows the sky above the mountains on a very clear summer day today")
    assert parse_marked('"#the starry sky#"', "#") == ("the starry sky", "the starry sky")
    assert parse_marked("Rewritten: $a dog$ on a sandy beach", "$") == ("a dog on a sandy beach", "a dog")
    for answer, marker in (("the starry sky", "#"), ("#the sky", "#"), ("$\ufffd\ufffd$ x", "$")):
        with pytest.raises(VLMParseError):
            parse_marked(answer, marker)


def test_normalise_name():
    assert normalise_name('2. "A red car" (parked)') == "red car"
    assert normalise_name("two dogs") == "dogs"
    assert normalise_name("a very long name with many words") is None
    assert normalise_name("car9") is None


# --- registry ---------------------------------------------------------------------------------


def test_every_vlm_family_has_a_tiny_builder():
    assert {"qwen2.5-vl", "qwen2-vl", "llava", "llama-3.2-vision", "internvl"} <= set(list_vlms())
    assert set(list_vlms()) <= set(TINY_BUILDERS)


def test_unknown_vlm_lists_known_names():
    with pytest.raises(UnknownNameError, match="llava.*qwen2-vl.*qwen2.5-vl"):
        create_vlm("internvl2")


def test_adapter_validates_arguments():
    with pytest.raises(ValueError, match="dtype"):
        create_vlm("qwen2.5-vl", model="x", dtype="int8")
    with pytest.raises(ValueError, match="max_new_tokens"):
        create_vlm("qwen2.5-vl", model="x", max_new_tokens=0)


# --- every family on its tiny checkpoint ------------------------------------------------------

MODEL_CLASSES = {"qwen2.5-vl": "Qwen2_5_VLForConditionalGeneration", "qwen2-vl": "Qwen2VLForConditionalGeneration",
                 "llava": "LlavaForConditionalGeneration", "llama-3.2-vision": "MllamaForConditionalGeneration",
                 "internvl": "InternVLForConditionalGeneration"}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    # The session's base temp dir: the pipeline tests reuse the same tiny checkpoints.
    return tmp_path_factory.getbasetemp() / "tiny-perception"


@pytest.mark.parametrize("family", list_vlms())
def test_every_vlm_runs_on_its_tiny_checkpoint(family, tiny_root, image):
    folder = tiny_checkpoint(family, tiny_root)
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    size = {"max_pixels": 16 * 28 * 28} if family.startswith("qwen") else {}
    vlm = create_vlm(family, model=str(folder), max_new_tokens=12, **size)
    network, processor = vlm.load()
    assert type(network).__name__ == MODEL_CLASSES[family]
    assert vlm.load()[0] is network  # loaded once per process
    assert not network.training and next(network.parameters()).dtype.is_floating_point

    answer = vlm.ask(image, "List the objects.")
    assert isinstance(answer, str) and len(answer) > 0  # random weights: byte soup, but an answer
    assert vlm.ask(image, "List the objects.") == answer  # greedy decoding is deterministic

    region = _region("thing")
    calls = [
        lambda: vlm.list_objects(image),
        lambda: vlm.describe(image, region),
        lambda: vlm.describe(image, _region("background", "background")),
        lambda: vlm.perturb_description(image, _region("stuff", "sky"), "the blue sky"),
        *[lambda t=t: vlm.edit_prompt(image, region, t) for t in EDIT_TYPES],
    ]
    for call in calls:
        try:
            result = call()
        except VLMParseError:
            continue  # the expected outcome for random weights: a recorded parse failure
        assert isinstance(result, (str, list)) and result


def test_vlm_refuses_a_checkpoint_of_another_family(tiny_root):
    folder = tiny_checkpoint("qwen2.5-vl", tiny_root)
    with pytest.raises(ValueError, match="qwen2_5_vl.*qwen2-vl"):
        create_vlm("qwen2-vl", model=str(folder)).load()


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(OSError):
        create_vlm("qwen2.5-vl", model=str(tmp_path / "nowhere")).load()


# --- the adapter's questions, with scripted answers -------------------------------------------


class ScriptedVLM(vlm_module.Qwen2_5_VL):
    """The real adapter with ``ask`` replaced by canned answers (what a real Qwen2.5-VL says)."""

    def __init__(self, answers: dict[str, str]):
        super().__init__(model="unused")
        self.answers = answers
        self.questions: list[str] = []

    def ask(self, image, question, seed=0, max_new_tokens=None):
        self.questions.append(question)
        for key, answer in self.answers.items():
            if key in question:
                return answer
        return "\ufffd\ufffd"


GOOD = {
    "List the distinct objects": 'Sure:\n```json\n["man", "horse", "sky"]\n```',
    "Describe what is inside": "the pale blue sky",
    "Describe the whole image": "$an astronaut$ standing in front of a flag",
    "Rewrite only the words between the # signs": '"#the starry night sky#"',
    "Rewrite only the words outside the $ signs": "$an astronaut$ standing on the moon",
    "changes one attribute": '{"prompt": "make the suit bright orange"}',
    "will be removed": '{"prompt": "an empty white wall behind"}',
    "has been removed": '{"prompt": "a tall potted plant"}',
}


def test_adapter_questions_follow_the_seeds(image):
    vlm = ScriptedVLM(GOOD)
    assert vlm.list_objects(image) == ["man", "horse", "sky"]
    assert "humans" in vlm_module.LIST_OBJECTS_PROMPT.lower() or "person" in vlm.questions[0]
    assert "larger" in vlm.questions[0] or "large" in vlm.questions[0]
    assert vlm.describe(image, _region("stuff", "sky")) == "the pale blue sky"
    assert vlm.describe(image, _region("background", "background")) == "$an astronaut$ standing in front of a flag"
    assert vlm.perturb_description(image, _region("stuff", "sky"), "the pale blue sky") == "the starry night sky"
    assert "#the pale blue sky#" in vlm.questions[-1]
    assert vlm.perturb_description(image, _region("background", "background"),
                                   "$an astronaut$ in front of a flag") == "an astronaut standing on the moon"
    assert vlm.edit_prompt(image, _region(), "attribute", description="the astronaut") == "make the suit bright orange"
    assert "the astronaut" in vlm.questions[-1]
    assert vlm.edit_prompt(image, _region(), "removal") == "an empty white wall behind"
    assert vlm.edit_prompt(image, _region(), "addition") == "a tall potted plant"
    assert vlm.edit_prompt(image, _region("background", "background"), "removal") == "an empty white wall behind"
    assert "red boxes mark the main subjects" in vlm.questions[-1]
    with pytest.raises(ValueError, match="edit type"):
        vlm.edit_prompt(image, _region(), "recolour")
    with pytest.raises(ValueError, match="stuff and background"):
        vlm.perturb_description(image, _region(), "a man")


def test_mark_region_draws_a_red_box_around_the_region(image):
    region = _region()
    marked = mark_region(image, region)
    assert marked.shape == image.shape and marked.dtype == np.uint8
    changed = np.any(marked != image, axis=-1)
    ys, xs = np.nonzero(changed)
    assert ys.min() >= 18 and ys.max() <= 71 and xs.min() >= 28 and xs.max() <= 61
    assert (marked[changed] == [255, 0, 0]).all()
    assert not changed[40, 45]  # the inside is left alone
    background = mark_region(image, _region("background", "background"))
    assert np.array_equal(np.any(background != image, axis=-1), changed)  # boxes around its subject


# --- prompt writing with fallbacks -----------------------------------------------------------


def test_write_region_edits_records_the_prompt_source(image):
    rng = np.random.default_rng(0)
    good, bad = ScriptedVLM(GOOD), ScriptedVLM({})
    turns = write_region_edits(image, _region(), "attribute", rng, vlm=good, vlm_name="qwen")
    assert [(t.edit_type, t.prompt, t.prompt_source) for t in turns] == [
        ("attribute", "make the suit bright orange", "vlm:qwen")]
    turns = write_region_edits(image, _region(), "addition", rng, vlm=good, vlm_name="qwen")
    assert [(t.edit_type, t.prompt) for t in turns] == [
        ("removal", "an empty white wall behind"), ("addition", "a tall potted plant")]
    turns = write_region_edits(image, _region(), "addition", rng, vlm=bad, vlm_name="qwen")
    assert [t.prompt_source for t in turns] == ["vlm:qwen:parse_failed->template"] * 2
    assert "person" in turns[0].prompt and "person" in turns[1].prompt  # the templates filled in
    turns = write_region_edits(image, _region(), "removal", rng)
    assert turns[0].prompt_source == "template" and turns[0].description == "" and not turns[0].perturbed
    with pytest.raises(ValueError, match="name"):
        write_region_edits(image, _region(), "removal", rng, vlm=good)


def test_brgen_perturbation_of_stuff_and_background(image):
    sky = _region("stuff", "sky")
    rng = np.random.default_rng(1)
    turns = [write_region_edits(image, sky, "attribute", rng)[0] for _ in range(400)]
    rate = np.mean([t.perturbed for t in turns])
    assert rate == pytest.approx(0.5, abs=0.08)  # BR-Gen: p = 0.5
    assert {t.prompt for t in turns if not t.perturbed} == {"the sky"}
    assert all(t.prompt != "the sky" and "sky" in t.prompt for t in turns if t.perturbed)
    assert all(t.prompt == t.description and t.prompt_source == "template" for t in turns)

    always = dict(perturbation_p=1.0, vlm=ScriptedVLM(GOOD), vlm_name="q")
    (turn,) = write_region_edits(image, sky, "attribute", rng, **always)
    assert (turn.prompt, turn.perturbed, turn.prompt_source) == ("the starry night sky", True, "vlm:q")
    (turn,) = write_region_edits(image, _region("background", "background"), "attribute", rng, **always)
    assert turn.prompt == "an astronaut standing on the moon" and "$" not in turn.prompt
    (turn,) = write_region_edits(image, sky, "attribute", rng, perturbation_p=1.0, vlm=ScriptedVLM({}), vlm_name="q")
    assert turn.perturbed and turn.prompt_source == "vlm:q:parse_failed->template" and "sky" in turn.prompt

    # Things never go through the perturbation; p = None gives the DiffSeg30k prompts to stuff too.
    (turn,) = write_region_edits(image, _region(), "attribute", rng, perturbation_p=1.0)
    assert not turn.perturbed and turn.description == ""
    (turn,) = write_region_edits(image, sky, "attribute", rng, perturbation_p=None)
    assert not turn.perturbed and "the sky" in turn.prompt and turn.prompt != "the sky"
    with pytest.raises(ValueError, match="perturbation_p"):
        write_region_edits(image, sky, "attribute", rng, perturbation_p=1.5)


# --- the OpenSDI writers added later: their adapters with their models' typical answers --------

TYPICAL = {
    # Llama 3.2 Vision Instruct answers in markdown lists and wraps JSON in prose.
    "llama-3.2-vision": {
        "List the distinct objects": "Here are the objects in the image:\n\n* **Person**\n* **Horse**\n* Flag",
        "changes one attribute": 'Here is a prompt:\n\n```json\n{"prompt": "make the suit metallic silver"}\n```',
    },
    # InternVL tends to answer tersely, in plain JSON.
    "internvl": {
        "List the distinct objects": '["astronaut", "american flag", "helmet"]',
        "changes one attribute": '{"prompt": "turn the suit bright orange"}',
    },
}
EXPECTED = {
    "llama-3.2-vision": (["person", "horse", "flag"], "make the suit metallic silver"),
    "internvl": (["astronaut", "american flag", "helmet"], "turn the suit bright orange"),
}


@pytest.mark.parametrize("family", sorted(TYPICAL))
def test_new_writers_parse_their_typical_and_malformed_answers(family, image, monkeypatch):
    vlm = create_vlm(family, model="unused")
    answers = dict(TYPICAL[family])
    monkeypatch.setattr(vlm, "ask", lambda img, question, seed=0, max_new_tokens=None: next(
        (a for k, a in answers.items() if k in question), "\ufffd\ufffd"))
    objects, prompt = EXPECTED[family]
    assert vlm.list_objects(image) == objects
    assert vlm.edit_prompt(image, _region(), "attribute") == prompt
    answers.update({key: "I'm sorry, I can't help with that." for key in answers})
    with pytest.raises(VLMParseError):
        vlm.list_objects(image)
    with pytest.raises(VLMParseError):
        vlm.edit_prompt(image, _region(), "removal")
