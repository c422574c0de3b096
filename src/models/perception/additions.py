"""OpenSDI's "add an object" edit: one turn, a new object painted into a mask placed on a grounded place.

OpenSDI section 3 ("User diversity"): the VLMs write edits "such as adding or removing objects,
altering backgrounds, or changing key image elements"; "Manipulation Scope": Florence-2 and SAM
turn the instruction into a mask. For an addition the paper names no rule for the mask of an
object that is not there yet, so this module states one:

1. The VLM drawn for the image proposes the object, a relation and a place
   (``VisionLanguageModel.propose_addition``: "a red bicycle" / "next to" / "the wooden bench").
2. The place phrase is grounded by the perceiver (``GroundedSamPerceiver.ground_phrase``:
   Florence-2's first box for the phrase, refined by SAM).
3. ``addition_mask`` sizes and places an ellipse for the new object on that place mask.

Fallbacks, each recorded in ``AddEdit.placement`` and ``EditTurn.prompt_source`` (never silent):

- the VLM answer is unreadable (or no VLM): the object comes from the template list, the place is
  the region the sample had drawn (``prompt_source`` ``...:parse_failed->template``);
- the place phrase is not found (no box, or an empty mask), or the perceiver cannot ground text
  (``superpixel``, ``annotations``): the place is the region the sample had drawn.

With the drawn region as place the relation follows its kind: "on" a stuff region (grass, a
table, a road), "in" the background, "next to" a thing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .edits import EditTurn
from .prompts import _REPLACEMENT_OBJECTS, _definite, _pick
from .region import Region
from .vlm import VisionLanguageModel
from .vlm_parsing import ADD_RELATIONS, AddProposal, VLMParseError, normalise_name

logger = logging.getLogger(__name__)

# the relation used when the place is the sample's drawn region, by that region's kind
FALLBACK_RELATION = {"stuff": "on", "background": "in", "thing": "next to"}


@dataclass(frozen=True)
class AddSizing:
    """How large and what shape the new object's mask is (``addition_mask``).

    Attributes:
        size_range: object area / place area, drawn uniformly, for "on" and "in" (an object is
            smaller than the surface or area it sits on / in).
        beside_size_range: the same for "next to" (an object of about its neighbour's size).
        aspect_range: ellipse height / width, drawn log-uniformly.
        min_area_ratio, max_area_ratio: bounds of the object area as a share of the image.
    """

    size_range: tuple[float, float] = (0.1, 0.3)
    beside_size_range: tuple[float, float] = (0.5, 1.0)
    aspect_range: tuple[float, float] = (0.5, 2.0)
    min_area_ratio: float = 0.01
    max_area_ratio: float = 0.25

    def __post_init__(self) -> None:
        for key in ("size_range", "beside_size_range", "aspect_range"):
            lo, hi = (float(v) for v in getattr(self, key))
            if not 0 < lo <= hi:
                raise ValueError(f"add sizing {key} must be [low, high] with 0 < low <= high, got {[lo, hi]}")
        if not 0 <= self.min_area_ratio <= self.max_area_ratio <= 1 or self.max_area_ratio <= 0:
            raise ValueError(f"add sizing needs 0 <= min_area_ratio <= max_area_ratio <= 1 and max_area_ratio > 0, got "
                             f"{self.min_area_ratio}, {self.max_area_ratio}")


def _inside(centre: float, half: float, lo: float, hi: float) -> float:
    """``centre`` moved so that [centre - half, centre + half] lies in [lo, hi] where it fits."""
    if 2 * half >= hi - lo:
        return (lo + hi) / 2
    return float(np.clip(centre, lo + half, hi - half))


def addition_mask(place: np.ndarray, relation: str, rng: np.random.Generator,
                  sizing: AddSizing = AddSizing()) -> np.ndarray:
    """The mask of a new object placed ``relation`` ("on" / "in" / "next to") the ``place`` mask.

    Size: area = s x place area, s ~ U(``size_range``) ("next to": ``beside_size_range``), clipped
    to [``min_area_ratio``, ``max_area_ratio``] of the image. Shape: an axis-aligned filled ellipse
    of height / width r ~ log-U(``aspect_range``), shrunk to fit the image. Position, from an anchor
    pixel drawn uniformly from the place mask:

    - "in": centred on the anchor, then moved inside the place's bounding box where it fits;
    - "on": its bottom on the anchor (standing on the place), horizontally inside the place's box;
    - "next to": beside the place's box (left or right, drawn; the side with more room when the
      drawn one is too narrow), bottom-aligned with the box.

    Finally the ellipse is moved inside the image; a rasterised mask under ``min_area_ratio`` is
    grown by 1-pixel dilations until it reaches it. Every draw is made in the same order whatever
    the relation, so one rng gives one mask.

    Args:
        place: (H, W) bool, not empty.
        relation: one of ``ADD_RELATIONS``.

    Returns:
        (H, W) bool, at least one pixel.

    Raises:
        ValueError: empty or non-2-D place, unknown relation.
    """
    place = np.asarray(place, dtype=bool)
    if place.ndim != 2 or not place.any():
        raise ValueError(f"the place must be a non-empty (H, W) mask, got shape {place.shape}, "
                         f"{int(place.sum())} pixels")
    if relation not in ADD_RELATIONS:
        raise ValueError(f"relation must be one of {ADD_RELATIONS}, got {relation!r}")
    height, width = place.shape
    ys, xs = np.nonzero(place)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    lo, hi = sizing.beside_size_range if relation == "next to" else sizing.size_range
    share, log_aspect = rng.uniform(lo, hi), rng.uniform(*np.log(sizing.aspect_range))
    anchor, left = int(rng.integers(len(ys))), bool(rng.random() < 0.5)
    image_area = height * width
    area = float(np.clip(share * place.sum(), sizing.min_area_ratio * image_area, sizing.max_area_ratio * image_area))
    aspect = math.exp(log_aspect)
    w = math.sqrt(4 * area / (math.pi * aspect))
    h = aspect * w
    shrink = min(1.0, width / w, height / h)
    w, h = w * shrink, h * shrink
    ax, ay = xs[anchor] + 0.5, ys[anchor] + 0.5
    if relation == "in":
        cx, cy = _inside(ax, w / 2, x0, x1), _inside(ay, h / 2, y0, y1)
    elif relation == "on":
        cx, cy = _inside(ax, w / 2, x0, x1), ay - h / 2
    else:
        room = {True: x0, False: width - x1}  # beside the place's box: room on its left / right
        if room[left] < w and room[not left] > room[left]:
            left = not left
        cx, cy = (x0 - w / 2) if left else (x1 + w / 2), y1 - h / 2
    cx, cy = _inside(cx, w / 2, 0, width), _inside(cy, h / 2, 0, height)
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (int(round(cx * 16)), int(round(cy * 16))), (max(1, int(round(w * 8))), max(1, int(round(h * 8)))),
                0, 0, 360, 1, thickness=-1, lineType=cv2.LINE_8, shift=4)
    if not mask.any():
        mask[int(np.clip(cy, 0, height - 1)), int(np.clip(cx, 0, width - 1))] = 1
    # rasterising loses a few pixels of a small ellipse: grow it back to the minimum area
    while mask.sum() < sizing.min_area_ratio * image_area and not mask.all():
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    return mask.astype(bool)


@dataclass(frozen=True)
class AddEdit:
    """One planned addition: the new object's ``region`` (kind "thing", label = the object's
    name), its single ``turn`` (edit_type "add", the prompt naming the object, the instruction as
    ``description``) and ``placement``: how its place was found ("grounded:<place>",
    "place_not_found:<place>->drawn_region", "no_grounder:<place>->drawn_region" or
    "template->drawn_region")."""

    region: Region
    turn: EditTurn
    placement: str


def _fallback_proposal(region: Region, rng: np.random.Generator) -> AddProposal:
    obj = _pick(rng, _REPLACEMENT_OBJECTS)
    return AddProposal(object=obj, name=normalise_name(obj) or obj, relation=FALLBACK_RELATION[region.kind],
                       place=_definite(region.label))


def write_add_edit(
    image: np.ndarray,
    drawn: Region,
    rng: np.random.Generator,
    *,
    vlm: VisionLanguageModel | None = None,
    vlm_name: str = "",
    ground: Callable[[np.ndarray, str], np.ndarray | None] | None = None,
    sizing: AddSizing = AddSizing(),
    seed: int = 0,
    source: str = "",
) -> AddEdit:
    """OpenSDI's addition for one sample (see the module doc for the steps and fallbacks).

    Args:
        image: (H, W, 3) uint8 RGB.
        drawn: the region the sample had drawn: the place whenever the VLM's place is not used.
        rng: draws the fallback object (always, so a VLM does not change later draws) and the mask.
        vlm, vlm_name: the VLM that proposes the addition (None: templates).
        ground: phrase -> (H, W) bool place mask or None when not found (e.g.
            ``GroundedSamPerceiver.ground_phrase``); None when the perceiver cannot ground text.
        sizing: ``addition_mask``'s rule.
        seed: passed to the VLM (it matters only when it samples).
        source: the new region's ``source`` (the perceiver's name).

    Errors other than unreadable answers (a missing checkpoint, out of memory) propagate.
    """
    fallback = _fallback_proposal(drawn, rng)
    proposal, prompt_source = fallback, "template"
    if vlm is not None:
        try:
            proposal, prompt_source = vlm.propose_addition(image, seed=seed), f"vlm:{vlm_name}"
        except VLMParseError as error:
            logger.info("vlm:%s: %s; adding %r to the drawn region %r", vlm_name, error, fallback.object, drawn.label)
            prompt_source = f"vlm:{vlm_name}:parse_failed->template"
    place = None
    if proposal is fallback:
        placement = "template->drawn_region"
    elif ground is None:
        placement = f"no_grounder:{proposal.place}->drawn_region"
    else:
        place = ground(image, proposal.place)
        found = place is not None and place.any()
        placement = f"grounded:{proposal.place}" if found else f"place_not_found:{proposal.place}->drawn_region"
    if place is None or not place.any():
        if proposal is not fallback:
            logger.info("add %r: %s; using the drawn region %r", proposal.object, placement, drawn.label)
            proposal = AddProposal(proposal.object, proposal.name, FALLBACK_RELATION[drawn.kind], _definite(drawn.label))
        place = drawn.mask
    mask = addition_mask(place, proposal.relation, rng, sizing)
    region = Region(mask=mask, label=proposal.name, kind="thing", score=float(mask.mean()),
                    source=source or drawn.source)
    turn = EditTurn("add", proposal.prompt, prompt_source, description=proposal.instruction)
    return AddEdit(region, turn, placement)


def ground_with(perceiver: object) -> Callable[[np.ndarray, str], np.ndarray | None] | None:
    """The perceiver's phrase grounding (``ground_phrase``), or None when it has none."""
    return getattr(perceiver, "ground_phrase", None)

