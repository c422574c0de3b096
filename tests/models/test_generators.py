"""Every registered generator, run for real: the OpenCV inpainters, and the diffusers adapter on
a tiny randomly initialised SD inpainting pipeline saved with save_pretrained and loaded back
through from_pretrained (the code path a real checkpoint takes)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from models.generators import (
    EditSpec,
    apply_edits,
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


@pytest.mark.parametrize("name", list_generators())
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
