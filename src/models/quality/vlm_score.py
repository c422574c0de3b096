"""DiffSeg30k's VLM quality score: a vision-language model rates each edited image 0-5.

DiffSeg30k (appendix B) asks Qwen2.5-VL, with two chain-of-thought demonstrations, whether there
are unnatural things in the image and drops results scored below 3 (about half of them). The
prompt and the demonstrations' answers are reproduced here word for word; the demonstrations'
images are not public, so they are given as text turns.

The model is pluggable: any callable ``(image (H, W, 3) uint8, prompt str) -> answer str``, a
``"package.module:function"`` path to a factory that returns such a callable, or a hub id /
local folder loaded by the perception VLM adapter named by ``vlm`` (default ``qwen2.5-vl``, as in
DiffSeg30k; ``vlm_kwargs`` go to it: dtype, max_new_tokens, ...). Answers are parsed by
``parse_quality_answer``; an answer that cannot be parsed raises ``ValueError`` (the filter
records it as unscorable, with the raw answer), never crashes the run.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .base import QUALITY_SCORERS, QualityScorer, check_image

DIFFSEG30K_QUALITY_PROMPT = (
    "Are there unnatural things in this image and rate it accordingly from 0 (very unnatural) to 5 "
    "(natural and high quality). Please respond with: \"X(score), the reason is that [brief explanation "
    "in one sentence].\""
)
# The two demonstrations of DiffSeg30k's Figure 7 (their images are not published).
DIFFSEG30K_DEMONSTRATIONS = (
    "4, the reason is that the man's pose is slightly unnatural but overall scene appears reasonable and natural.",
    "1, the reason is that the red-haired woman's face completely mismatches the context and appears as an "
    "incomplete fragment, making the image very unnatural.",
)

_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_NUMBER = r"(\d+(?:\.\d+)?|zero|one|two|three|four|five)"
# "4, the reason ...", "4(score), ...", "(4) ...", "Score: 4/5 ...", "**3** - ..."
_LEADING = re.compile(
    rf"^(?:(?:the\s+)?(?:score|rating|quality)\s*(?:is|of)?\s*[:=]?\s*)?\(?\s*{_NUMBER}\s*\)?\s*(?:\(\s*score\s*\))?"
    rf"\s*(?:/\s*5|out of 5)?\s*(?:[,.:;)\-]|$|\s+the\s+reason)",
    re.IGNORECASE,
)
# Anywhere: "... I would rate it 3 out of 5", "score: 2", "2(score)"
_ANYWHERE = re.compile(
    rf"(?:(?:score|rate|rating)\s*(?:it|is|of|:|=)?\s*(?:a\s+)?\(?{_NUMBER}\)?\b)|(?:\b{_NUMBER}\s*(?:\(\s*score\s*\)|/\s*5\b|out of 5))",
    re.IGNORECASE,
)
_REASON = re.compile(r"the\s+reason\s+is\s+(?:that\b\s*)?(.*)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class QualityAnswer:
    """A parsed VLM answer: ``score`` in [0, 5] (None when unparseable), the reason, and ``error``
    (None when parsed) describing why parsing failed."""

    score: float | None
    reason: str
    error: str | None
    raw: str


def _number(token: str) -> float:
    token = token.lower()
    return float(_WORDS[token]) if token in _WORDS else float(token)


def parse_quality_answer(text: object) -> QualityAnswer:
    """Parse an answer in DiffSeg30k's format ``"X(score), the reason is that ..."``.

    Tolerates markdown emphasis, quotes, an ``Assistant:`` / ``Score:`` prefix, ``X(score)``,
    ``X/5``, ``X out of 5``, number words and a score stated later in the sentence. Never raises:
    a missing score, a score outside 0-5 or a non-string gives ``score=None`` and an ``error``.
    """
    if not isinstance(text, str):
        return QualityAnswer(None, "", f"answer is {type(text).__name__}, not text", repr(text))
    raw = text
    cleaned = re.sub(r"[*_`\"“”]", "", text).strip()
    cleaned = re.sub(r"^(?:assistant|answer)\s*:\s*", "", cleaned, flags=re.IGNORECASE).strip()
    if not cleaned:
        return QualityAnswer(None, "", "empty answer", raw)
    leading = _LEADING.match(cleaned)
    match = leading or _ANYWHERE.search(cleaned)
    reason_match = _REASON.search(cleaned)
    reason = reason_match.group(1).strip() if reason_match else ""
    if match is None:
        return QualityAnswer(None, reason, "no 0-5 score found", raw)
    token = next(g for g in match.groups() if g is not None)
    score = _number(token)
    if not 0 <= score <= 5:
        return QualityAnswer(None, reason, f"score {token} is outside 0-5", raw)
    if not reason:
        reason = cleaned[match.end():].strip(" ,.;:-") if leading else cleaned
    return QualityAnswer(score, reason, None, raw)


def with_demonstrations(prompt: str) -> str:
    """The question with DiffSeg30k's two demonstration answers as text (their images are not public)."""
    examples = "\n".join(f"- {answer}" for answer in DIFFSEG30K_DEMONSTRATIONS)
    return f"{prompt}\nExamples of answers for other images:\n{examples}"


def _resolve_model(model: Callable | str, device: str, vlm: str, vlm_kwargs: dict | None) -> Callable[[np.ndarray, str], str]:
    if callable(model):
        return model
    if not isinstance(model, str) or not model:
        raise ValueError("the vlm scorer needs `model`: a callable, 'package.module:factory', or a hub id / folder")
    if ":" in model and not model.startswith(("/", ".")):
        module, _, attr = model.partition(":")
        return getattr(importlib.import_module(module), attr)()
    # A checkpoint: the perception VLM adapters (models.perception.vlm) load it, with their offline
    # rules, family check and per-process cache, so the perceive stage and this filter share one copy.
    from ..perception.vlm import create_vlm

    adapter = create_vlm(vlm, model=model, device=device, **(vlm_kwargs or {}))
    return lambda image, prompt: adapter.ask(image, with_demonstrations(prompt))


class VlmQualityScore(QualityScorer):
    """DiffSeg30k's 0-5 naturalness rating by a VLM; higher = better (DiffSeg30k drops < 3).

    Args:
        model: callable ``(image, prompt) -> answer``, ``"package.module:factory"``, or a hub id /
            local folder for the perception VLM adapter ``vlm`` (``models.perception.vlm``).
        prompt: the question; default DiffSeg30k's.
        device, vlm, vlm_kwargs: for a checkpoint: the device, the adapter's registry name and
            its other arguments.

    ``last_answer`` keeps the most recent parsed answer (score, reason, raw text).
    """

    name = "vlm"
    higher_is_better = True
    valid_range = (0.0, 5.0)
    min_side = 8

    def __init__(self, model: Callable | str, prompt: str = DIFFSEG30K_QUALITY_PROMPT, device: str = "cpu",
                 vlm: str = "qwen2.5-vl", vlm_kwargs: dict | None = None):
        self._model = _resolve_model(model, device, vlm, vlm_kwargs)
        self.prompt = prompt
        self.last_answer: QualityAnswer | None = None

    def score(self, image: np.ndarray, **_: object) -> float:
        """The VLM's 0-5 rating of ``image`` ((H, W, 3) uint8 RGB).

        Raises:
            ValueError: bad image, or an answer without a 0-5 score (message quotes the answer).
        """
        check_image(image, self.min_side)
        answer = parse_quality_answer(self._model(image, self.prompt))
        self.last_answer = answer
        if answer.score is None:
            raise ValueError(f"VLM answer not parseable ({answer.error}): {answer.raw[:200]!r}")
        return answer.score


@QUALITY_SCORERS.register("vlm", description="DiffSeg30k's 0-5 VLM naturalness rating (callable, factory path or hub id)")
def build_vlm(model: Callable | str, prompt: str = DIFFSEG30K_QUALITY_PROMPT, device: str = "cpu",
              vlm: str = "qwen2.5-vl", vlm_kwargs: dict | None = None) -> VlmQualityScore:
    return VlmQualityScore(model=model, prompt=prompt, device=device, vlm=vlm, vlm_kwargs=vlm_kwargs)
