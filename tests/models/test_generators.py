"""The generator contract, run for real: the OpenCV inpainters, and the diffusers adapter on a
tiny randomly initialised SD inpainting pipeline saved with save_pretrained and loaded back
through from_pretrained (the code path a real checkpoint takes); label maps, provenance and
several candidate seeds per edit. Every other registry entry is exercised on its own tiny model
in test_generator_zoo.py."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from models.generators import (
    ClipCandidateScorer,
    EditSession,
    EditSpec,
    apply_edits,
    candidate_seeds,
    build_tiny_sd_inpaint,
    create_generator,
    list_generators,
)
from models.registry import UnknownNameError

SIZE = 64


@pytest.fixture(scope="module")
def tiny_sd_folder(tmp_path_factory):
    return build_tiny_sd_inpaint(tmp_path_factory.mktemp("tiny") / "tiny-sd-inpaint", seed=0)


@pytest.fixture(scope="module")
def image():
    return cv2.resize(skimage.data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def box(y0, y1, x0, x1):
    mask = np.zeros((SIZE, SIZE), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def build(name, folder):
    kwargs = {"model": str(folder), "steps": 2} if name in ("tiny-sd", "sd-inpaint") else {}
    return create_generator(name, **kwargs)


@pytest.mark.parametrize("name", ["telea", "navier_stokes", "tiny-sd", "sd-inpaint"])
def test_every_generator_repaints_only_the_mask(name, tiny_sd_folder, image):
    generator = build(name, tiny_sd_folder)
    mask = box(16, 48, 20, 44)
    out = generator.inpaint(image, mask, "a red balloon", seed=3)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).any(axis=-1).mean() > 0.3


def test_tiny_sd_is_saved_as_safetensors_and_loads_like_a_checkpoint(tiny_sd_folder, image):
    assert (tiny_sd_folder / "model_index.json").is_file()
    assert list(tiny_sd_folder.glob("unet/*.safetensors")) and list(tiny_sd_folder.glob("vae/*.safetensors"))
    assert not list(tiny_sd_folder.rglob("*.bin"))
    generator = create_generator("sd-inpaint", model=str(tiny_sd_folder), steps=2)
    mask = box(8, 40, 8, 40)
    first = generator.inpaint(image, mask, "a cat", seed=1)
    # Random weights give texture, not a flat fill: the region really carries model output.
    assert first[mask].std() > 1.0
    assert np.array_equal(first, generator.inpaint(image, mask, "a cat", seed=1))
    assert not np.array_equal(first, generator.inpaint(image, mask, "a cat", seed=2))


def test_tiny_sd_build_is_deterministic(tmp_path):
    from safetensors.numpy import load_file

    a = build_tiny_sd_inpaint(tmp_path / "a", seed=0)
    b = build_tiny_sd_inpaint(tmp_path / "b", seed=0)
    wa = load_file(next(a.glob("unet/*.safetensors")))
    wb = load_file(next(b.glob("unet/*.safetensors")))
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_tiny_sd_missing_folder_without_build_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        create_generator("tiny-sd", model=str(tmp_path / "absent"), build_if_missing=False)


def test_later_turn_wins_the_label_of_overlapping_pixels(image):
    generators = {"telea": create_generator("telea"), "navier_stokes": create_generator("navier_stokes")}
    label_index = {"telea": 1, "navier_stokes": 2}
    first, second = box(8, 40, 8, 40), box(24, 56, 24, 56)
    edits = [EditSpec("telea", first, "remove it", "removal", 0, "r1"),
             EditSpec("navier_stokes", second, "change it", "attribute", 1, "r2")]
    edited, label_map, provenance = apply_edits(image, edits, generators, label_index)
    union = first | second
    assert np.array_equal(edited[~union], image[~union])
    assert (label_map[~union] == 0).all()
    assert (label_map[second] == 2).all()
    assert (label_map[first & ~second] == 1).all()
    assert [p["turn"] for p in provenance] == [1, 2]
    assert [p["generator"] for p in provenance] == ["telea", "navier_stokes"]
    assert provenance[0]["mask_area_ratio"] == pytest.approx(first.mean())


def test_unknown_generator_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="telea"):
        create_generator("nope")


def test_bad_inputs_are_named(image):
    generator = create_generator("telea")
    with pytest.raises(ValueError, match="mask"):
        generator.inpaint(image, np.ones((SIZE, SIZE + 1), bool), "", 0)
    with pytest.raises(ValueError, match="empty"):
        generator.inpaint(image, np.zeros((SIZE, SIZE), bool), "", 0)
    with pytest.raises(ValueError, match="uint8"):
        generator.inpaint(image.astype(np.float32), box(0, 8, 0, 8), "", 0)


def test_the_base_generators_are_registered():
    assert {"telea", "navier_stokes", "tiny-sd", "sd-inpaint"} <= set(list_generators())


# --------------------------------------------------------------------------- several seeds per edit
def test_candidate_seeds_start_with_the_edit_seed():
    assert candidate_seeds(7, 1) == [7]
    seeds = candidate_seeds(7, 4)
    assert seeds[0] == 7 and len(set(seeds)) == 4 and seeds == candidate_seeds(7, 4)
    with pytest.raises(ValueError, match="candidates"):
        candidate_seeds(7, 0)


def test_the_best_scoring_candidate_is_kept_and_every_seed_is_recorded(tiny_sd_folder, image):
    generator = create_generator("tiny-sd", model=str(tiny_sd_folder), steps=2)
    mask = box(16, 48, 16, 48)
    brightness = lambda out, m, prompt: float(out[m].mean())  # noqa: E731  (a stand-in for CLIP)
    edits = [EditSpec("tiny-sd", mask, "a lamp", "addition", seed=5, region_id="r")]
    edited, label_map, provenance = apply_edits(image, edits, {"tiny-sd": generator}, {"tiny-sd": 1},
                                                candidates=3, score_candidate=brightness)
    record = provenance[0]
    assert record["candidate_seeds"] == candidate_seeds(5, 3) and len(record["candidate_scores"]) == 3
    best = int(np.argmax(record["candidate_scores"]))
    assert record["seed"] == record["candidate_seeds"][best]
    assert brightness(edited, mask, "") == pytest.approx(max(record["candidate_scores"]))
    assert np.array_equal(edited[~mask], image[~mask]) and (label_map == mask.astype(np.uint8)).all()


def test_deterministic_generators_run_once_whatever_the_candidate_count(image):
    calls = []
    score = lambda out, m, prompt: calls.append(1) or 0.0  # noqa: E731
    edits = [EditSpec("telea", box(8, 24, 8, 24), "", "removal", seed=1)]
    _, _, provenance = apply_edits(image, edits, {"telea": create_generator("telea")}, {"telea": 1},
                                   candidates=4, score_candidate=score)
    assert provenance[0]["candidate_seeds"] == [1] and not calls


def test_candidates_need_a_scorer(image):
    edits = [EditSpec("telea", box(8, 24, 8, 24), "", "removal", seed=1)]
    with pytest.raises(ValueError, match="score_candidate"):
        apply_edits(image, edits, {"telea": create_generator("telea")}, {"telea": 1}, candidates=2)


def test_an_edit_session_is_apply_edits_in_steps(image):
    generators = {"telea": create_generator("telea"), "navier_stokes": create_generator("navier_stokes")}
    labels = {"telea": 1, "navier_stokes": 1}  # a variant may share its parent's label
    edits = [EditSpec("telea", box(8, 40, 8, 40), "", "removal", 0, "a"),
             EditSpec("navier_stokes", box(24, 56, 24, 56), "", "removal", 1, "b")]
    session = EditSession(image, generators, labels)
    for edit in edits:
        session.apply(edit)
    stepwise = session.finish()
    at_once = apply_edits(image, edits, generators, labels)
    assert np.array_equal(stepwise[0], at_once[0]) and np.array_equal(stepwise[1], at_once[1])
    assert set(np.unique(stepwise[1])) == {0, 1} and [p["turn"] for p in stepwise[2]] == [1, 2]
    with pytest.raises(ValueError, match="at least one"):
        EditSession(image, generators, labels).finish()


def test_the_clip_candidate_scorer_looks_at_the_edited_region(image):
    seen = []

    class Recorder:
        def score(self, view, prompt):
            seen.append(view.shape)
            return 1.0

    mask = box(20, 30, 20, 30)
    assert ClipCandidateScorer(Recorder(), region="bbox")(image, mask, "a cat") == 1.0
    assert ClipCandidateScorer(Recorder(), region="image")(image, mask, "a cat") == 1.0
    assert ClipCandidateScorer(Recorder())(image, mask, "  ") == 0.0  # prompt-free edits: no score
    assert seen[0][:2] == (32, 32) and seen[1] == image.shape
    with pytest.raises(ValueError, match="region"):
        ClipCandidateScorer(Recorder(), region="crop")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_pixels_differ_is_any_over_channels(channels):
    from models.generators.base import pixels_differ

    rng = np.random.default_rng(channels)
    a = rng.integers(0, 4, (37, 23, channels), dtype=np.uint8)
    b = a.copy()
    b[rng.random(a.shape) < 0.1] += 1  # single channels change, sometimes several
    assert np.array_equal(pixels_differ(a, b), np.any(a != b, axis=-1))
    assert not pixels_differ(a, a).any() and pixels_differ(a, a).shape == a.shape[:2]
