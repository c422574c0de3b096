"""Florence-2 + SAM: OpenSDI's perception (section 3): Florence-2 grounds a phrase to boxes, SAM
refines each box to a mask.

OpenSDI turns every edit instruction's object phrase into a mask this way ("SAM and Florence-2").
``Florence2Grounder`` asks Florence-2 its ``<CAPTION_TO_PHRASE_GROUNDING>`` task once per phrase
and reads the boxes with the checkpoint's own post-processor (location tokens <loc_0..999>
dequantised to pixels); ``Florence2SamPerceiver`` is the ``grounded_sam`` perceiver with this
grounder in place of GroundingDINO, so regions, kinds, the background region and the scores are
built the same way.

Florence-2 outputs no confidence: every box scores 1.0, so a region's score is its area ratio
(x ``person_boost`` for people). Phrase grounding costs one generation per phrase, so the default
vocabulary is empty: the perceiver grounds the names it is given (a VLM's list or an
instruction's object), as OpenSDI does; a fixed vocabulary can be added.

Checkpoints (transformers ports): ``florence-community/Florence-2-large`` (or -base), and SAM as
in ``grounded``. torch and transformers are imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import PERCEIVERS, check_image
from .grounded import _DTYPES, Detection, GroundedSamPerceiver, _load

PHRASE_GROUNDING_TASK = "<CAPTION_TO_PHRASE_GROUNDING>"


LOCATION_BINS = 1000  # Florence-2 quantises a coordinate into <loc_0> ... <loc_999>


class PhraseBoxGrammar:
    """A logits processor that keeps Florence-2's phrase-grounding answer in its own format: after
    the decoder's start token (and an optional ``<s>``), 1 to ``max_phrase_tokens`` text tokens (no
    special, task or location token, no "<"), then exactly one box of four location tokens with x0 < x1 and y0 < y1
    at least ``min_bins`` apart, then ``</s>``. Within that, every token is the model's own
    choice (its highest score, or beam search over its scores); nothing is written for it.

    Real checkpoints answer in this format by themselves (and may answer with no box when the
    phrase is absent); the grammar is what lets a randomly initialised tiny Florence-2, which ends
    its answer at once, still produce the boxes the rest of the path (SAM, regions) needs.

    Args:
        tokenizer: the checkpoint's tokenizer (its ``<loc_k>`` tokens and specials are looked up).
        vocab_size: rows of the model's output layer (>= the tokenizer's size).
        min_bins: least x1 - x0 and y1 - y0 in location bins (1000 / image side keeps a box
            at least one pixel wide, as ``boxes_from_answer`` requires).
        max_phrase_tokens: most text tokens before the box, >= 1.
    """

    def __init__(self, tokenizer, vocab_size: int, min_bins: int = 1, max_phrase_tokens: int = 8):
        import torch

        if int(max_phrase_tokens) < 1 or not 1 <= int(min_bins) < LOCATION_BINS:
            raise ValueError(f"need max_phrase_tokens >= 1 and 1 <= min_bins < {LOCATION_BINS}, got "
                             f"{max_phrase_tokens}, {min_bins}")
        self.loc_ids = torch.tensor(tokenizer.convert_tokens_to_ids([f"<loc_{k}>" for k in range(LOCATION_BINS)]))
        if (self.loc_ids == tokenizer.unk_token_id).any():
            raise ValueError("the tokenizer has no <loc_0> ... <loc_999> tokens: not a Florence-2 tokenizer")
        self.bin_of = {int(token): k for k, token in enumerate(self.loc_ids)}
        self.bos, self.eos = int(tokenizer.bos_token_id), int(tokenizer.eos_token_id)
        self.text = torch.zeros(vocab_size, dtype=torch.bool)
        special = set(tokenizer.all_special_ids) | {int(i) for i in tokenizer.added_tokens_decoder}
        tokens = tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(tokenizer)))))
        for token_id, token in enumerate(tokens):
            if token_id not in special and token is not None and "<" not in token:
                self.text[token_id] = True
        self.min_bins, self.max_phrase_tokens = int(min_bins), int(max_phrase_tokens)

    def allowed(self, answer: list[int]) -> "torch.Tensor":
        """The tokens allowed after ``answer`` (the answer's tokens so far, without ``<s>``): a bool
        mask over the vocabulary."""
        import torch

        bins = [self.bin_of[t] for t in answer if t in self.bin_of]
        n_text = len(answer) - len(bins)
        allowed = torch.zeros_like(self.text)
        if len(bins) == 4:
            allowed[self.eos] = True
        elif bins or n_text >= self.max_phrase_tokens:
            # x0, y0 leave room for the far side; x1 > x0, y1 > y0 by min_bins
            low = bins[len(bins) - 2] + self.min_bins if len(bins) >= 2 else 0
            high = LOCATION_BINS if len(bins) >= 2 else LOCATION_BINS - self.min_bins
            allowed[self.loc_ids[low:high]] = True
        else:
            allowed |= self.text
            if n_text >= 1:
                allowed[self.loc_ids[: LOCATION_BINS - self.min_bins]] = True
        return allowed

    def __call__(self, input_ids, scores):
        for row in range(input_ids.shape[0]):
            # after the decoder's start token; an <s> (forced by real checkpoints' generation config) is skipped
            answer = [t for t in input_ids[row, 1:].tolist() if t != self.bos]
            allowed = self.allowed(answer)
            if not answer:
                allowed[self.bos] = True
            scores[row, ~allowed[: scores.shape[1]].to(scores.device)] = float("-inf")
        return scores


class Florence2Grounder:
    """Boxes for phrases from a Florence-2 checkpoint (phrase grounding).

    Args:
        model: hub id or local folder of a transformers Florence-2 port.
        device, dtype: where and how the network runs ("float32" on CPU).
        num_beams: beam search width of the generation (3 in Florence-2's examples).
        max_new_tokens: generation limit per phrase (each box takes 4 location tokens).
        max_boxes_per_name: boxes kept per phrase, in the order generated, >= 1.
        box_grammar: decode within ``PhraseBoxGrammar`` (a phrase, then exactly one box). Off for
            real checkpoints (they answer in the format and may rightly find no box); the tiny
            recipe layers turn it on so a random tiny Florence-2 yields boxes for SAM.

    Raises:
        ValueError: unknown dtype, num_beams / max_new_tokens / max_boxes_per_name < 1.
    """

    model_class = "Florence2ForConditionalGeneration"
    model_type = "florence2"

    def __init__(self, model: str = "florence-community/Florence-2-large", device: str = "cpu",
                 dtype: str = "float32", num_beams: int = 3, max_new_tokens: int = 256, max_boxes_per_name: int = 1,
                 box_grammar: bool = False):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        for key, value in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens),
                           ("max_boxes_per_name", max_boxes_per_name)):
            if int(value) < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.num_beams = int(num_beams)
        self.max_new_tokens = int(max_new_tokens)
        self.max_boxes_per_name = int(max_boxes_per_name)
        self.box_grammar = bool(box_grammar)
        self._grammars: dict[int, PhraseBoxGrammar] = {}

    def load(self) -> tuple[Any, Any]:
        """The cached ``(model, processor)``; raises OSError when the checkpoint is not found and
        ValueError when it is not a Florence-2 checkpoint."""
        return _load(self.model_class, self.model, self.device, self.dtype, self.model_type)

    def ground(self, image: np.ndarray, phrase: str) -> str:
        """Florence-2's raw answer (special tokens kept: the boxes are location tokens)."""
        import torch
        from PIL import Image

        network, processor = self.load()
        inputs = processor(text=PHRASE_GROUNDING_TASK + phrase, images=Image.fromarray(image),
                           return_tensors="pt").to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(getattr(torch, self.dtype))
        extra = {}
        if self.box_grammar:
            from transformers import LogitsProcessorList

            min_bins = -(-LOCATION_BINS // max(1, min(image.shape[:2])))  # ceil: >= 1 px per box side
            if min_bins not in self._grammars:  # built once per box size (it scans the vocabulary)
                self._grammars[min_bins] = PhraseBoxGrammar(
                    processor.tokenizer, network.config.text_config.vocab_size, min_bins=min_bins,
                    max_phrase_tokens=max(1, self.max_new_tokens - 6))  # <s>, 4 locations and </s> fit too
            extra["logits_processor"] = LogitsProcessorList([self._grammars[min_bins]])
        with torch.inference_mode():
            output = network.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                      do_sample=False, **extra)
        return processor.batch_decode(output, skip_special_tokens=False)[0]

    def boxes_from_answer(self, answer: str, name: str, height: int, width: int) -> list[Detection]:
        """The boxes of one grounding answer, read by the checkpoint's post-processor, clipped to
        the image; boxes thinner than one pixel are dropped; at most ``max_boxes_per_name``."""
        _, processor = self.load()
        parsed = processor.post_process_generation(answer, task=PHRASE_GROUNDING_TASK, image_size=(width, height))
        found = []
        for box in parsed[PHRASE_GROUNDING_TASK]["bboxes"]:
            x0, x1 = (float(np.clip(v, 0, width)) for v in (box[0], box[2]))
            y0, y1 = (float(np.clip(v, 0, height)) for v in (box[1], box[3]))
            if x1 - x0 >= 1 and y1 - y0 >= 1:
                found.append(Detection(name, (x0, y0, x1, y1), 1.0))
        return found[: self.max_boxes_per_name]

    def detect(self, image: np.ndarray, names: Sequence[str]) -> list[Detection]:
        """Boxes for ``names`` in ``image`` ((H, W, 3) uint8 RGB), one grounding call per name,
        in the order of ``names`` (Florence-2 gives no score to sort by).

        Raises:
            ValueError: ``names`` is empty.
        """
        check_image(image)
        names = list(names)
        if not names:
            raise ValueError("detect needs at least one phrase")
        height, width = image.shape[:2]
        return [d for name in names for d in self.boxes_from_answer(self.ground(image, name), name, height, width)]


class Florence2SamPerceiver(GroundedSamPerceiver):
    """Regions from phrases: Florence-2 boxes, SAM masks (OpenSDI). See ``GroundedSamPerceiver``
    for how masks become regions.

    Args:
        grounder: keyword arguments of ``Florence2Grounder``.
        segmenter: keyword arguments of ``SamSegmenter``.
        vocabulary: names grounded after the given ones; default "none" (see the module doc).
        person_boost: > 0.
    """

    name = "florence2_sam"
    accepts_object_names = True

    def __init__(self, grounder: dict[str, Any] | None = None, segmenter: dict[str, Any] | None = None,
                 vocabulary: str | Sequence[str] = "none", person_boost: float = 2.0):
        super().__init__(segmenter=segmenter, vocabulary=vocabulary, person_boost=person_boost)
        self.detector = Florence2Grounder(**(grounder or {}))


@PERCEIVERS.register("florence2_sam", description="Florence-2 phrase grounding + SAM masks (OpenSDI; transformers)")
def build_florence2_sam_perceiver(**kwargs: Any) -> Florence2SamPerceiver:
    return Florence2SamPerceiver(**kwargs)
