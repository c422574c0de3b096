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


class Florence2Grounder:
    """Boxes for phrases from a Florence-2 checkpoint (phrase grounding).

    Args:
        model: hub id or local folder of a transformers Florence-2 port.
        device, dtype: where and how the network runs ("float32" on CPU).
        num_beams: beam search width of the generation (3 in Florence-2's examples).
        max_new_tokens: generation limit per phrase (each box takes 4 location tokens).
        max_boxes_per_name: boxes kept per phrase, in the order generated, >= 1.

    Raises:
        ValueError: unknown dtype, num_beams / max_new_tokens / max_boxes_per_name < 1.
    """

    model_class = "Florence2ForConditionalGeneration"
    model_type = "florence2"

    def __init__(self, model: str = "florence-community/Florence-2-large", device: str = "cpu",
                 dtype: str = "float32", num_beams: int = 3, max_new_tokens: int = 256, max_boxes_per_name: int = 1):
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
        with torch.inference_mode():
            output = network.generate(**inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                      do_sample=False)
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
