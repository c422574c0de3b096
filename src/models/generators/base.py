"""The generator contract: one ``inpaint`` call repaints one masked region of one image.

Every inpainter (OpenCV, diffusers, ...) subclasses ``InpaintGenerator`` and implements only
``_inpaint``; the public ``inpaint`` validates inputs and pastes the original back outside the
hard mask, so that the label map can say exactly which pixels an edit touched.
``apply_edits`` chains several such calls into a multi-turn edit (DiffSeg30k's turns 1..3) and
builds the per-pixel label map and the provenance records; with ``candidates > 1`` each turn is
run with several seeds and a scorer (OpenSDI: CLIP text-image score) keeps the best one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..images import check_rgb_image
from ..registry import Registry

# One registry for the family; each generator module registers its entries on import.
GENERATORS = Registry("generator")


class GeneratorNotSupportedError(RuntimeError):
    """A registered generator that cannot run with this installation; the message says why and
    what would be needed (the registry lists such entries so that the gap is visible)."""


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
    ``inpaint`` then restores every pixel outside ``mask`` from the input. A subclass that can
    run several seeds in one batch (a diffusers pipeline) overrides ``_inpaint_batch`` instead.

    ``uses_seed`` is False for deterministic inpainters (OpenCV, LaMa): several candidate seeds
    would all give the same picture. ``call_details`` holds one dict per output of the last call
    with anything provenance should keep beyond the inputs (e.g. the donor image of a splice).
    """

    name: str = "generator"
    uses_seed: bool = True

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
        return self.inpaint_candidates(image, mask, prompt, [seed])[0]

    def inpaint_candidates(
        self, image: np.ndarray, mask: np.ndarray, prompt: str, seeds: Sequence[int]
    ) -> list[np.ndarray]:
        """Repaint ``mask`` once per seed (one batch where the generator allows it).

        Returns one (H, W, 3) uint8 array per seed, in seed order, each bit-identical to ``image``
        outside ``mask``. Raises as ``inpaint`` does, and ValueError for an empty ``seeds``.
        """
        _check_image(image)
        _check_mask(mask, image.shape)
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ValueError("inpaint_candidates needs at least one seed")
        self.call_details = [{} for _ in seeds]
        results = self._inpaint_batch(image, mask, prompt, seeds)
        if not isinstance(results, list) or len(results) != len(seeds):
            raise RuntimeError(f"generator {self.name!r} returned {type(results).__name__} for {len(seeds)} seeds")
        out = []
        for result in results:
            if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.shape != image.shape:
                got = (result.shape, result.dtype) if isinstance(result, np.ndarray) else type(result).__name__
                raise RuntimeError(f"generator {self.name!r} returned {got}, expected {image.shape} uint8")
            # Labels must describe what really changed, so nothing outside the hard mask may move.
            out.append(np.where(mask[..., None], result, image))
        return out

    def _inpaint(self, image: np.ndarray, mask: np.ndarray, prompt: str, seed: int) -> np.ndarray:
        raise NotImplementedError

    def _inpaint_batch(self, image: np.ndarray, mask: np.ndarray, prompt: str, seeds: list[int]) -> list[np.ndarray]:
        results = []
        for index, seed in enumerate(seeds):
            self._slot = index
            results.append(self._inpaint(image, mask, prompt, seed))
        return results

    def record(self, index: int | None = None, **details: Any) -> None:
        """Keep ``details`` for provenance, for output ``index`` of the current call (default:
        the output ``_inpaint`` is producing)."""
        self.call_details[getattr(self, "_slot", 0) if index is None else index].update(details)

    def describe(self) -> dict[str, Any]:
        """What provenance records about this generator: at least ``registry`` (the registry
        entry) and ``model`` (checkpoint id / path; "" for model-free inpainters)."""
        return {"registry": self.name, "model": ""}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def pixels_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) bool: True where any channel of the (H, W, C) arrays differs. Same result as
    ``np.any(a != b, axis=-1)``, about 10x faster (numpy's reduction over a short last axis is slow,
    and this runs twice per edit)."""
    unequal = a != b
    out = unequal[..., 0].copy()
    for channel in range(1, unequal.shape[-1]):
        out |= unequal[..., channel]
    return out


def candidate_seeds(seed: int, count: int) -> list[int]:
    """``count`` seeds for one edit: ``seed`` itself first (so one candidate = the plain edit),
    then seeds drawn from a generator seeded with ``seed``. Raises ValueError if count < 1."""
    if int(count) < 1:
        raise ValueError(f"candidates must be >= 1, got {count}")
    extra = np.random.default_rng(int(seed)).integers(0, 2**31 - 1, size=int(count) - 1)
    return [int(seed), *(int(s) for s in extra)]


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


CandidateScorer = Callable[[np.ndarray, np.ndarray, str], float]


def _check_edit(edit: EditSpec, generators: Mapping[str, InpaintGenerator], label_index: Mapping[str, int]) -> None:
    if edit.generator not in generators:
        raise ValueError(f"no generator instance for {edit.generator!r}; have {sorted(generators)}")
    if edit.generator not in label_index:
        raise ValueError(f"no label for generator {edit.generator!r}; have {sorted(label_index)}")
    label = label_index[edit.generator]
    if not 1 <= int(label) <= 255:
        raise ValueError(f"label of {edit.generator!r} must be in 1..255 (0 = untouched), got {label}")


class EditSession:
    """One image being edited turn by turn; ``apply_edits`` in resumable form.

    A caller that wants to run many images' turns grouped by generator (load each model once
    per batch of samples, not once per sample) keeps one session per image and calls ``apply``
    in whatever order it likes, as long as each image's turns come in order; ``finish`` then
    checks that nothing outside the masks moved and returns what ``apply_edits`` returns.

    Args: see ``apply_edits``.
    """

    def __init__(self, base_image: np.ndarray, generators: Mapping[str, InpaintGenerator],
                 label_index: Mapping[str, int], candidates: int = 1, score_candidate: CandidateScorer | None = None):
        _check_image(base_image, "base_image")
        if int(candidates) < 1:
            raise ValueError(f"candidates must be >= 1, got {candidates}")
        if int(candidates) > 1 and score_candidate is None:
            raise ValueError("candidates > 1 needs score_candidate to choose among them (e.g. a CLIP score)")
        self.base_image = base_image
        self.image = base_image
        self.generators = generators
        self.label_index = label_index
        self.candidates = int(candidates)
        self.score_candidate = score_candidate
        self.label_map = np.zeros(base_image.shape[:2], dtype=np.uint8)
        self.union = np.zeros(base_image.shape[:2], dtype=bool)
        self.provenance: list[dict] = []

    def apply(self, edit: EditSpec) -> dict:
        """Run the next turn; returns its provenance record (see ``apply_edits``)."""
        _check_edit(edit, self.generators, self.label_index)
        label = int(self.label_index[edit.generator])
        generator = self.generators[edit.generator]
        count = self.candidates if generator.uses_seed else 1
        seeds = candidate_seeds(edit.seed, count)
        outputs = generator.inpaint_candidates(self.image, edit.mask, edit.prompt, seeds)
        details = list(getattr(generator, "call_details", None) or [{} for _ in seeds])
        scores: list[float] = []
        best = 0
        if count > 1:
            scores = [float(self.score_candidate(out, edit.mask, edit.prompt)) for out in outputs]
            best = int(np.argmax(scores))  # first maximum: ties keep the earlier seed
        edited = outputs[best]
        changed = pixels_differ(edited, self.image)
        mask_pixels = int(edit.mask.sum())
        described = generator.describe()
        record = {
            "turn": len(self.provenance) + 1,
            "generator": edit.generator,
            "label": label,
            "registry": str(described.get("registry", "")),
            "model": str(described.get("model", "")),
            "prompt": edit.prompt,
            "edit_type": edit.edit_type,
            "seed": seeds[best],
            "region_id": edit.region_id,
            "mask_area_ratio": mask_pixels / edit.mask.size,
            "changed_pixel_ratio": int(changed[edit.mask].sum()) / mask_pixels,
            "candidate_seeds": seeds,
            "candidate_scores": scores,
            "details": dict(details[best]) if best < len(details) else {},
        }
        self.provenance.append(record)
        self.label_map[edit.mask] = label
        self.union |= edit.mask
        self.image = edited
        return record

    def finish(self) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """``(edited_image, label_map, provenance)``; raises RuntimeError if a pixel outside the
        union of the masks differs from the base image, ValueError if no turn was applied."""
        if not self.provenance:
            raise ValueError("apply_edits needs at least one EditSpec")
        leaked = pixels_differ(self.image, self.base_image) & ~self.union
        if leaked.any():
            raise RuntimeError(
                f"{int(leaked.sum())} pixels outside the edit masks differ from the base image; "
                "the label map would not describe the edit"
            )
        return self.image, self.label_map, self.provenance


def apply_edits(
    base_image: np.ndarray,
    edits: list[EditSpec],
    generators: Mapping[str, InpaintGenerator],
    label_index: Mapping[str, int],
    candidates: int = 1,
    score_candidate: CandidateScorer | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Apply ``edits`` in order, each turn inpainting the previous turn's output.

    Args:
        base_image: (H, W, 3) uint8 RGB, the unedited image.
        edits: turns 1, 2, ... in order; each mask is (H, W) bool.
        generators: generator name -> generator instance.
        label_index: generator name -> class label in 1..255 (0 is reserved for untouched). Two
            names may share a label (a LoRA variant carries its parent's class).
        candidates: seeds tried per turn (OpenSDI: several seeds, CLIP keeps the best); the
            first is the turn's own seed (``candidate_seeds``). Generators with ``uses_seed``
            False are run once.
        score_candidate: ``(edited_image, mask, prompt) -> score``, higher is better; required
            when ``candidates > 1``. Ties keep the earlier seed.

    Returns:
        ``(edited_image, label_map, provenance)``: edited_image (H, W, 3) uint8; label_map (H, W)
        uint8 with 0 = untouched and, per turn t, ``label_map[mask_t] = label_index[generator_t]``
        (a pixel edited twice carries the later turn's label); provenance, one dict per turn with
        keys turn (1-based), generator, label, registry, model, prompt, edit_type, seed (the
        chosen one), region_id, mask_area_ratio (mask pixels / image pixels),
        changed_pixel_ratio (fraction of mask pixels whose RGB value actually changed in that
        turn), candidate_seeds and candidate_scores (lists, one entry per seed tried; scores
        empty when one seed was run) and details (the generator's per-call details, a dict).

    Raises:
        ValueError: no edits, a generator missing from ``generators`` or ``label_index``, a
            label outside 1..255, candidates > 1 without ``score_candidate``, or an invalid
            image / mask (see ``InpaintGenerator.inpaint``).
        RuntimeError: a pixel outside the union of the masks differs from ``base_image``.
    """
    session = EditSession(base_image, generators, label_index, candidates, score_candidate)
    if not edits:
        raise ValueError("apply_edits needs at least one EditSpec")
    for edit in edits:  # every turn is checked before any model runs
        _check_edit(edit, generators, label_index)
    for edit in edits:
        session.apply(edit)
    return session.finish()
