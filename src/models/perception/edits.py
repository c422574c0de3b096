"""The edit turns of one chosen region: edit types, prompts, and who wrote each prompt.

DiffSeg30k: the VLM writes one context-aware prompt per region and edit type; an addition is a
removal followed by an addition in the same place (two turns). BR-Gen: a stuff or background
region is described (by the VLM) and the description is rewritten with probability 0.5
("probabilistic semantic perturbation"); the (possibly rewritten) description is the prompt.
Templates (``prompts``) stand in whenever no VLM is configured or its answer cannot be read;
``prompt_source`` says which happened:

- ``template``: no VLM was used;
- ``vlm:<name>``: every VLM answer behind the prompt was read;
- ``vlm:<name>:parse_failed->template``: a VLM answer could not be read and templates / word
  lists filled in.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .prompts import EDIT_TYPES, definite_description, make_edit_prompt, perturb_description
from .region import Region
from .vlm import VisionLanguageModel
from .vlm_parsing import VLMParseError

logger = logging.getLogger(__name__)

PERTURBABLE_KINDS = ("stuff", "background")


@dataclass(frozen=True)
class EditTurn:
    """One inpainting turn on a region.

    Attributes:
        edit_type: "attribute", "addition" or "removal".
        prompt: the text given to the generator.
        prompt_source: "template", "vlm:<name>" or "vlm:<name>:parse_failed->template".
        description: the region's description the prompt was built from (BR-Gen path; else "").
        perturbed: True when BR-Gen's semantic perturbation rewrote ``description``.
    """

    edit_type: str
    prompt: str
    prompt_source: str
    description: str = ""
    perturbed: bool = False


def write_region_edits(
    image: np.ndarray,
    region: Region,
    edit_type: str,
    rng: np.random.Generator,
    *,
    vlm: VisionLanguageModel | None = None,
    vlm_name: str = "",
    perturbation_p: float | None = 0.5,
    perturb_kinds: Sequence[str] = PERTURBABLE_KINDS,
    seed: int = 0,
) -> list[EditTurn]:
    """The turns for ``region`` under ``edit_type``: two (removal, addition) for an addition,
    one otherwise.

    An attribute change of a region whose kind is in ``perturb_kinds`` follows BR-Gen: the
    region is described (``vlm.describe``, else its label: "the sky", "the background"), with
    probability ``perturbation_p`` the description is rewritten (``vlm.perturb_description``,
    else ``prompts.perturb_description``), and the description is the prompt.
    ``perturbation_p=None`` turns this off (the DiffSeg30k prompts then apply to every kind).
    All other turns get ``vlm.edit_prompt`` or, without a VLM or on a parse failure,
    ``make_edit_prompt``.

    ``rng`` draws the perturbation decision (always, so a VLM does not change it) and the
    template words; ``seed`` goes to the VLM (it matters only when it samples). Errors other
    than unreadable answers (a missing checkpoint, out of memory) propagate.

    Raises:
        ValueError: unknown edit type, or ``perturbation_p`` outside [0, 1].
    """
    if edit_type not in EDIT_TYPES:
        raise ValueError(f"unknown edit type {edit_type!r}; known: {list(EDIT_TYPES)}")
    if perturbation_p is not None and not 0.0 <= float(perturbation_p) <= 1.0:
        raise ValueError(f"perturbation_p must lie in [0, 1] or be None, got {perturbation_p}")
    if vlm is not None and not vlm_name:
        raise ValueError("a VLM needs a name for prompt_source")
    ok, failed = f"vlm:{vlm_name}", f"vlm:{vlm_name}:parse_failed->template"

    def note(error: VLMParseError) -> None:
        logger.info("%s: %s (region %r); using templates", ok, error, region.label)

    if perturbation_p is not None and region.kind in perturb_kinds and edit_type == "attribute":
        parse_failed = False
        description = definite_description(region)
        if vlm is not None:
            try:
                description = vlm.describe(image, region, seed=seed)
            except VLMParseError as error:
                note(error)
                parse_failed = True
        perturbed = bool(rng.random() < float(perturbation_p))
        if perturbed:
            rewritten = None
            if vlm is not None and not parse_failed:
                try:
                    rewritten = vlm.perturb_description(image, region, description, seed=seed)
                except VLMParseError as error:
                    note(error)
                    parse_failed = True
            description = rewritten if rewritten is not None else perturb_description(description, region.kind, rng)
        source = "template" if vlm is None else failed if parse_failed else ok
        text = " ".join(description.replace("$", "").replace("#", "").split())
        return [EditTurn("attribute", text, source, description=text, perturbed=perturbed)]

    turns = []
    for turn_type in ("removal", "addition") if edit_type == "addition" else (edit_type,):
        prompt, source = None, "template"
        if vlm is not None:
            try:
                prompt, source = vlm.edit_prompt(image, region, turn_type, seed=seed), ok
            except VLMParseError as error:
                note(error)
                source = failed
        if prompt is None:
            prompt = make_edit_prompt(region, turn_type, rng)
        turns.append(EditTurn(turn_type, prompt, source))
    return turns
