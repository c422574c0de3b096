"""The generator contract: one ``inpaint`` call repaints one masked region of one image.

Every inpainter (OpenCV, diffusers, ...) subclasses ``InpaintGenerator`` and implements only
``_inpaint``; the public ``inpaint`` validates inputs and pastes the original back outside the
hard mask, so that the label map can say exactly which pixels an edit touched.
``apply_edits`` chains several such calls into a multi-turn edit (DiffSeg30k's turns 1..3) and
builds the per-pixel label map and the provenance records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..images import check_rgb_image
from ..registry import Registry

# One registry for the family; each generator module registers its entries on import.
GENERATORS = Registry("generator")


def _check_image(image: Any, what: str = "image") -> None:
    check_rgb_image(image, what)


def _check_mask(mask: Any, image_shape: tuple[int, ...]) -> None:
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"mask must be a numpy array, got {type(mask).__name__}")
    if mask.dtype != np.bool_:
        # A 0/255 or 0/1 mask would silently mean different things; make the caller decide.
        raise ValueError(f"mask must be a bool array (True = repaint), got dtype {mask.dtype}")
    if mask.shape != tuple(image_shape[:2]):
        raise ValueError(
            f"mask shape {mask.shape} does not match image size {tuple(image_shape[:2])} (H, W)"
        )
    if not mask.any():
        raise ValueError("mask is empty: it selects no pixel to repaint")


class InpaintGenerator:
    """Base class of all inpainters.

    Subclasses set ``name`` and implement ``_inpaint(image, mask, prompt, seed)``, which may
    change any pixel (a 9-channel diffusion UNet re-encodes the whole image through its VAE);
    ``inpaint`` then restores every pixel outside ``mask`` from the input.
    """

    name: str = "generator"

    def inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        """Repaint ``mask`` of ``image``.

        Args:
            image: (H, W, 3) uint8 RGB.
            mask: (H, W) bool, True = region to repaint; must select at least one pixel.
            prompt: text prompt (ignored by prompt-free inpainters).
            seed: random seed; the same seed on the same inputs gives the same output.

        Returns:
            (H, W, 3) uint8 RGB, bit-identical to ``image`` wherever ``mask`` is False.

        Raises:
            TypeError: ``image`` or ``mask`` is not a numpy array, or ``prompt`` is not a str.
            ValueError: wrong dtype or shape, mask size differs from the image, empty mask.
            RuntimeError: the subclass returned an array of the wrong shape or dtype.
        """
        _check_image(image)
        _check_mask(mask, image.shape)
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        seed = int(seed)
        result = self._inpaint(image, mask, prompt, seed)
        if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.shape != image.shape:
            got = (result.shape, result.dtype) if isinstance(result, np.ndarray) else type(result).__name__
            raise RuntimeError(f"generator {self.name!r} returned {got}, expected {image.shape} uint8")
        # Labels must describe what really changed, so nothing outside the hard mask may move.
        return np.where(mask[..., None], result, image)

    def _inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@dataclass
class EditSpec:
    """One turn of a multi-turn edit.

    ``generator`` is the name under which the generator appears in the configured generator
    list (a key of ``apply_edits``'s ``generators`` and ``label_index``); ``mask`` is (H, W) bool.
    """

    generator: str
    mask: np.ndarray = field(repr=False)
    prompt: str
    edit_type: str
    seed: int
    region_id: str = ""


def apply_edits(
    base_image: np.ndarray,
    edits: list[EditSpec],
    generators: Mapping[str, InpaintGenerator],
    label_index: Mapping[str, int],
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Apply ``edits`` in order, each turn inpainting the previous turn's output.

    Args:
        base_image: (H, W, 3) uint8 RGB, the unedited image.
        edits: turns 1, 2, ... in order; each mask is (H, W) bool.
        generators: generator name -> generator instance.
        label_index: generator name -> class label in 1..255 (0 is reserved for untouched).

    Returns:
        ``(edited_image, label_map, provenance)``: edited_image (H, W, 3) uint8; label_map (H, W)
        uint8 with 0 = untouched and, per turn t, ``label_map[mask_t] = label_index[generator_t]``
        (a pixel edited twice carries the later turn's label); provenance, one dict per turn with
        keys turn (1-based), generator, label, prompt, edit_type, seed, region_id,
        mask_area_ratio (mask pixels / image pixels) and changed_pixel_ratio (fraction of mask
        pixels whose RGB value actually changed in that turn).

    Raises:
        ValueError: no edits, a generator missing from ``generators`` or ``label_index``, a
            label outside 1..255, or an invalid image / mask (see ``InpaintGenerator.inpaint``).
        RuntimeError: a pixel outside the union of the masks differs from ``base_image``.
    """
    _check_image(base_image, "base_image")
    if not edits:
        raise ValueError("apply_edits needs at least one EditSpec")
    for edit in edits:
        if edit.generator not in generators:
            raise ValueError(f"no generator instance for {edit.generator!r}; have {sorted(generators)}")
        if edit.generator not in label_index:
            raise ValueError(f"no label for generator {edit.generator!r}; have {sorted(label_index)}")
        label = label_index[edit.generator]
        if not 1 <= int(label) <= 255:
            raise ValueError(f"label of {edit.generator!r} must be in 1..255 (0 = untouched), got {label}")

    image = base_image
    label_map = np.zeros(base_image.shape[:2], dtype=np.uint8)
    union = np.zeros(base_image.shape[:2], dtype=bool)
    provenance: list[dict] = []
    for turn, edit in enumerate(edits, start=1):
        label = int(label_index[edit.generator])
        edited = generators[edit.generator].inpaint(image, edit.mask, edit.prompt, edit.seed)
        changed = np.any(edited != image, axis=-1)
        mask_pixels = int(edit.mask.sum())
        provenance.append(
            {
                "turn": turn,
                "generator": edit.generator,
                "label": label,
                "prompt": edit.prompt,
                "edit_type": edit.edit_type,
                "seed": int(edit.seed),
                "region_id": edit.region_id,
                "mask_area_ratio": mask_pixels / edit.mask.size,
                "changed_pixel_ratio": int(changed[edit.mask].sum()) / mask_pixels,
            }
        )
        label_map[edit.mask] = label
        union |= edit.mask
        image = edited

    leaked = np.any(image != base_image, axis=-1) & ~union
    if leaked.any():
        raise RuntimeError(
            f"{int(leaked.sum())} pixels outside the edit masks differ from the base image; "
            "the label map would not describe the edit"
        )
    return image, label_map, provenance
