"""Grounded segmentation: GroundingDINO boxes for category names, SAM masks inside the boxes.

DiffSeg30k grounds the object names its VLM lists with Grounded-SAM; BR-Gen grounds COCO's thing
and stuff categories with GroundingDINO and segments them with SAM2, keeping the most confident
box per category, and derives the "background" region as the inverse of the thing masks. The
``grounded_sam`` perceiver does both: it grounds a fixed vocabulary (default COCO things + stuff)
plus, when given, the names a VLM listed for this image.

Checkpoints load through transformers (``GroundingDinoForObjectDetection`` + its processor,
``SamModel`` + ``SamProcessor``) from a hub id in the local cache or a local folder, once per
process. torch and transformers are imported on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import drop_family, process_cache
from .base import PERCEIVERS, Perceiver, check_image, sort_by_score
from .region import Region
from .vocabulary import is_human, merge_names, name_kind, resolve_vocabulary

logger = logging.getLogger(__name__)

_DTYPES = ("float32", "float16", "bfloat16")
# One (model, processor) per checkpoint, device and dtype per process, in the process's model cache.
_FAMILY = "grounding-weights"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true"}


def _load(model_class: str, model: str, device: str, dtype: str, model_type: str) -> tuple[Any, Any]:
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    path = Path(model)
    key = (_FAMILY, model_class, str(path.resolve()) if path.is_dir() else model, device, dtype)

    def build() -> tuple[Any, Any]:
        import torch
        import transformers

        config = transformers.AutoConfig.from_pretrained(model, local_files_only=_offline())
        if config.model_type != model_type:
            raise ValueError(f"{model} is a {config.model_type!r} checkpoint, expected {model_type!r}")
        network = getattr(transformers, model_class).from_pretrained(
            model, dtype=getattr(torch, dtype), local_files_only=_offline()
        )
        processor = transformers.AutoProcessor.from_pretrained(model, local_files_only=_offline())
        return network.to(device).eval(), processor

    return process_cache().get(key, build)


def clear_grounding_cache() -> None:
    """Forget every loaded detector and segmenter."""
    drop_family(_FAMILY)


@dataclass(frozen=True)
class Detection:
    """One grounded box: ``box`` = (x0, y0, x1, y1) in pixels of the input image, ``score`` in
    [0, 1] (the best token probability of ``name`` for that box)."""

    name: str
    box: tuple[float, float, float, float]
    score: float


def phrase_chunks(names: Sequence[str], token_counts: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Split names (by index) into consecutive groups whose prompt ("a. b. c.") fits in
    ``max_tokens`` text tokens including [CLS] and [SEP]; ``token_counts[i]`` counts name i and
    its trailing ".".

    Raises:
        ValueError: one name alone does not fit.
    """
    chunks: list[list[int]] = []
    current: list[int] = []
    used = 2  # [CLS] ... [SEP]
    for i, count in enumerate(token_counts):
        if count + 2 > max_tokens:
            raise ValueError(f"category name {names[i]!r} takes {count} tokens; at most {max_tokens - 2} fit")
        if current and used + count > max_tokens:
            chunks.append(current)
            current, used = [], 2
        current.append(i)
        used += count
    if current:
        chunks.append(current)
    return chunks


class GroundingDinoDetector:
    """Open-vocabulary boxes from a GroundingDINO checkpoint.

    Every name becomes a phrase of the text prompt ("person. sky. red car."); long vocabularies
    are split into several prompts that fit the model's text length (256 tokens). A box's score
    for a name is the highest sigmoid probability over that name's tokens; each box goes to its
    best name and is kept when that score exceeds ``box_threshold``. Per name the
    ``max_boxes_per_name`` most confident boxes are returned (BR-Gen keeps one).

    Args:
        model: hub id or local folder (e.g. "IDEA-Research/grounding-dino-base").
        device, dtype: where and how the network runs ("float32" on CPU).
        box_threshold: minimum score of a kept box, in [0, 1] (Grounded-SAM uses 0.35 / 0.3).
        max_boxes_per_name: boxes kept per name, >= 1.
    """

    model_class = "GroundingDinoForObjectDetection"
    model_type = "grounding-dino"

    def __init__(self, model: str = "IDEA-Research/grounding-dino-base", device: str = "cpu",
                 dtype: str = "float32", box_threshold: float = 0.35, max_boxes_per_name: int = 1):
        if not 0.0 <= float(box_threshold) <= 1.0:
            raise ValueError(f"box_threshold must lie in [0, 1], got {box_threshold}")
        if int(max_boxes_per_name) < 1:
            raise ValueError(f"max_boxes_per_name must be >= 1, got {max_boxes_per_name}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.box_threshold = float(box_threshold)
        self.max_boxes_per_name = int(max_boxes_per_name)

    def load(self) -> tuple[Any, Any]:
        """The cached ``(model, processor)``; raises OSError when the checkpoint is not found."""
        return _load(self.model_class, self.model, self.device, self.dtype, self.model_type)

    def detect(self, image: np.ndarray, names: Sequence[str]) -> list[Detection]:
        """Boxes for ``names`` in ``image`` ((H, W, 3) uint8 RGB), best score first.

        Boxes are clipped to the image; boxes thinner than one pixel are dropped.

        Raises:
            ValueError: ``names`` is empty or holds a name too long for the text encoder.
        """
        import torch
        from PIL import Image

        check_image(image)
        names = list(names)
        if not names:
            raise ValueError("detect needs at least one category name")
        network, processor = self.load()
        tokenizer = processor.tokenizer
        max_tokens = int(getattr(network.config, "max_text_len", 256))
        counts = [len(tokenizer(f"{n}.", add_special_tokens=False)["input_ids"]) for n in names]
        height, width = image.shape[:2]
        pil = Image.fromarray(image)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32)

        per_name: dict[str, list[Detection]] = {}
        for chunk in phrase_chunks(names, counts, max_tokens):
            chunk_names = [names[i] for i in chunk]
            text = ". ".join(chunk_names) + "."
            spans, start = [], 0
            for name in chunk_names:
                spans.append((start, start + len(name)))
                start += len(name) + 2
            offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
            token_name = np.full(len(offsets), -1)
            for t, (a, b) in enumerate(offsets):
                if b > a:
                    for j, (s, e) in enumerate(spans):
                        if s <= a and b <= e:
                            token_name[t] = j
            inputs = processor(images=pil, text=text, return_tensors="pt").to(self.device)
            if inputs["input_ids"].shape[1] != len(offsets):
                raise RuntimeError("the processor and its tokenizer disagree on the prompt's tokens")
            inputs["pixel_values"] = inputs["pixel_values"].to(getattr(torch, self.dtype))
            with torch.inference_mode():
                outputs = network(**inputs)
            probs = outputs.logits[0, :, : len(offsets)].float().sigmoid().cpu().numpy()  # (queries, tokens)
            per_query = np.full((probs.shape[0], len(chunk_names)), -1.0)
            for j in range(len(chunk_names)):
                tokens = np.flatnonzero(token_name == j)
                if tokens.size:
                    per_query[:, j] = probs[:, tokens].max(axis=1)
            best = per_query.argmax(axis=1)
            score = per_query[np.arange(len(best)), best]
            cxcywh = outputs.pred_boxes[0].float().cpu()
            xyxy = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], dim=1) * scale
            xyxy = xyxy.numpy()
            xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, width)
            xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, height)
            for q in np.flatnonzero(score > self.box_threshold):
                x0, y0, x1, y1 = (float(v) for v in xyxy[q])
                if x1 - x0 < 1 or y1 - y0 < 1:
                    continue
                name = chunk_names[best[q]]
                per_name.setdefault(name, []).append(Detection(name, (x0, y0, x1, y1), float(score[q])))
        kept = [d for found in per_name.values()
                for d in sorted(found, key=lambda d: -d.score)[: self.max_boxes_per_name]]
        return sorted(kept, key=lambda d: -d.score)


class SamSegmenter:
    """Masks inside boxes from a SAM checkpoint (one mask per box, ``multimask_output=False`` as
    recommended for box prompts). The image is encoded once; boxes go through the mask decoder
    in batches of ``boxes_per_batch``.

    Args:
        model: hub id or local folder (e.g. "facebook/sam-vit-huge").
        device, dtype: where and how the network runs.
        boxes_per_batch: boxes decoded per forward pass, >= 1.
    """

    model_class = "SamModel"
    model_type = "sam"

    def __init__(self, model: str = "facebook/sam-vit-huge", device: str = "cpu", dtype: str = "float32",
                 boxes_per_batch: int = 32):
        if int(boxes_per_batch) < 1:
            raise ValueError(f"boxes_per_batch must be >= 1, got {boxes_per_batch}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.boxes_per_batch = int(boxes_per_batch)

    def load(self) -> tuple[Any, Any]:
        """The cached ``(model, processor)``; raises OSError when the checkpoint is not found."""
        return _load(self.model_class, self.model, self.device, self.dtype, self.model_type)

    def segment(self, image: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[tuple[np.ndarray, float]]:
        """One ``(mask, predicted_iou)`` per box, in order; masks are (H, W) bool at the image's
        size. ``boxes`` are (x0, y0, x1, y1) in pixels.

        Raises:
            ValueError: a box is not four numbers.
        """
        import torch
        from PIL import Image

        check_image(image)
        boxes = [[float(v) for v in box] for box in boxes]
        if any(len(box) != 4 for box in boxes):
            raise ValueError("each box must be (x0, y0, x1, y1)")
        if not boxes:
            return []
        network, processor = self.load()
        pil = Image.fromarray(image)
        results: list[tuple[np.ndarray, float]] = []
        embeddings = None
        for start in range(0, len(boxes), self.boxes_per_batch):
            batch = boxes[start : start + self.boxes_per_batch]
            inputs = processor(images=pil, input_boxes=[batch], return_tensors="pt").to(self.device)
            with torch.inference_mode():
                if embeddings is None:
                    embeddings = network.get_image_embeddings(inputs["pixel_values"].to(getattr(torch, self.dtype)))
                boxes_in = inputs["input_boxes"].to(self._box_dtype(embeddings))
                outputs = network(image_embeddings=embeddings, input_boxes=boxes_in, multimask_output=False)
            masks = self._masks(processor, outputs, inputs)  # (boxes, 1, H, W) bool
            scores = outputs.iou_scores[0, :, 0].float().cpu().numpy()
            for k in range(len(batch)):
                results.append((masks[k, 0].numpy().astype(bool), float(scores[k])))
        return results

    def _box_dtype(self, embeddings: Any) -> Any:
        return embeddings.dtype

    def _masks(self, processor: Any, outputs: Any, inputs: Any) -> Any:
        return processor.post_process_masks(
            outputs.pred_masks.float().cpu(), inputs["original_sizes"].cpu(), inputs["reshaped_input_sizes"].cpu())[0]


class Sam2Segmenter(SamSegmenter):
    """Masks inside boxes from a SAM 2 checkpoint (``Sam2Model``; BR-Gen section 3.2.1 segments
    its GroundingDINO boxes with SAM2). Same contract as ``SamSegmenter``: one mask per box
    (``multimask_output=False``), the image encoded once, boxes in batches.

    Args:
        model: hub id or local folder (e.g. "facebook/sam2.1-hiera-large").
        device, dtype, boxes_per_batch: as ``SamSegmenter``; ``segment`` is SamSegmenter's with
            SAM 2's list of image feature maps and its post-processing (no reshaped input sizes).
    """

    model_class = "Sam2Model"
    model_type = "sam2"

    def __init__(self, model: str = "facebook/sam2.1-hiera-large", device: str = "cpu", dtype: str = "float32",
                 boxes_per_batch: int = 32):
        super().__init__(model, device=device, dtype=dtype, boxes_per_batch=boxes_per_batch)

    def _box_dtype(self, embeddings: Any) -> Any:
        return embeddings[-1].dtype  # a list of feature maps: SAM 2's multi-scale image features

    def _masks(self, processor: Any, outputs: Any, inputs: Any) -> Any:
        return processor.post_process_masks(outputs.pred_masks.float().cpu(), inputs["original_sizes"].cpu())[0]


SEGMENTERS = {"sam": SamSegmenter, "sam2": Sam2Segmenter}


class GroundedSamPerceiver(Perceiver):
    """Regions from grounded category names: GroundingDINO boxes, SAM masks.

    ``propose`` grounds the given ``object_names`` (e.g. a VLM's list for this image) followed by
    the fixed ``vocabulary``. Each mask becomes a "stuff" region when its name's head noun is a
    stuff word (sky, grass, wall ...) and a "thing" region otherwise; as in BR-Gen, one
    "background" region is NOT(union of the thing masks) when there is at least one thing.

    Score = mask area ratio x box score, x ``person_boost`` for names of people: DiffSeg30k
    steers towards humans and larger objects. The background is scored by its area ratio.

    Args:
        detector: keyword arguments of ``GroundingDinoDetector``.
        segmenter: keyword arguments of ``SamSegmenter``, or of ``Sam2Segmenter`` with
            ``architecture: sam2`` (BR-Gen; default ``sam``).
        vocabulary: "coco" (things + stuff, BR-Gen), "coco_things", "coco_stuff", "none", or a
            list of names.
        person_boost: > 0.
    """

    name = "grounded_sam"
    accepts_object_names = True

    def __init__(self, detector: dict[str, Any] | None = None, segmenter: dict[str, Any] | None = None,
                 vocabulary: str | Sequence[str] = "coco", person_boost: float = 2.0):
        person_boost = float(person_boost)
        if not np.isfinite(person_boost) or person_boost <= 0:
            raise ValueError(f"person_boost must be a finite number > 0, got {person_boost}")
        self.detector = GroundingDinoDetector(**(detector or {}))
        segmenter = dict(segmenter or {})
        architecture = segmenter.pop("architecture", "sam")
        if architecture not in SEGMENTERS:
            raise ValueError(f"segmenter architecture must be one of {sorted(SEGMENTERS)}, got {architecture!r}")
        self.segmenter = SEGMENTERS[architecture](**segmenter)
        self.vocabulary = resolve_vocabulary(vocabulary)
        self.person_boost = person_boost

    def propose(self, image: np.ndarray, annotations: list[dict[str, Any]] | None = None,
                object_names: Sequence[str] | None = None) -> list[Region]:
        """Candidate regions of ``image``, highest score first.

        Args:
            image: (H, W, 3) uint8 RGB.
            annotations: ignored (the regions come from the models).
            object_names: names to ground before the vocabulary (a VLM's object list).

        Returns:
            Regions with (H, W) bool masks; empty masks are skipped; empty when nothing is found.

        Raises:
            ValueError: no names at all (empty vocabulary and no ``object_names``).
        """
        check_image(image)
        names = merge_names(object_names or (), self.vocabulary)
        if not names:
            raise ValueError(f"{self.name} has no category names: set a vocabulary or pass object_names")
        detections = self.detector.detect(image, names)
        masks = self.segmenter.segment(image, [d.box for d in detections])
        regions: list[Region] = []
        things = np.zeros(image.shape[:2], dtype=bool)
        for detection, (mask, _) in zip(detections, masks):
            if not mask.any():
                continue
            kind = name_kind(detection.name)
            if kind == "thing":
                things |= mask
            boost = self.person_boost if is_human(detection.name) else 1.0
            regions.append(Region(mask=mask, label=detection.name, kind=kind,
                                  score=float(mask.mean()) * detection.score * boost, source=self.name))
        if things.any() and not things.all():
            background = ~things
            regions.append(Region(mask=background, label="background", kind="background",
                                  score=float(background.mean()), source=self.name))
        logger.debug("grounded_sam: %d names, %d boxes, %d regions", len(names), len(detections), len(regions))
        return sort_by_score(regions)

    def ground_phrase(self, image: np.ndarray, phrase: str) -> np.ndarray | None:
        """The place a phrase names (OpenSDI's additions): the detector's first box for
        ``phrase`` refined by SAM, the box itself when SAM's mask is empty; None when no box.

        Returns:
            (H, W) bool or None.
        """
        check_image(image)
        detections = self.detector.detect(image, [phrase])
        if not detections:
            return None
        box = detections[0].box
        ((mask, _),) = self.segmenter.segment(image, [box])
        if not mask.any():
            mask = np.zeros(image.shape[:2], dtype=bool)
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            mask[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = True
        return mask


@PERCEIVERS.register("grounded_sam", description="GroundingDINO boxes + SAM masks (transformers)")
def build_grounded_sam_perceiver(**kwargs: Any) -> GroundedSamPerceiver:
    return GroundedSamPerceiver(**kwargs)
