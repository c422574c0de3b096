"""Vision-language models through transformers: object lists, region descriptions, edit prompts.

DiffSeg30k asks Qwen2.5-VL for the objects in an image (steered towards humans and larger
objects) and, per chosen mask, for a context-aware edit prompt of one of three edit types.
BR-Gen asks it to describe a region and to rewrite the description ("probabilistic semantic
perturbation"). OpenSDI draws its edit instructions from several VLMs (Qwen2-VL, LLaVA, ...)
to imitate many users. ``VisionLanguageModel`` does all of these for one checkpoint; ``VLMS``
holds one entry per model family (qwen2.5-vl, qwen2-vl, llava, llama-3.2-vision, internvl), each loading its checkpoint with
its own transformers class and refusing a checkpoint of another family.

The region in question is shown to the model as a red box drawn on the image (BR-Gen feeds
"annotated images with bounding boxes"). Every answer goes through ``vlm_parsing``; a malformed
answer raises ``VLMParseError``, which the perceive stage records before falling back to
templates.

transformers and torch are imported when a model is first loaded, not on import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..cache import drop_family, process_cache
from ..registry import Registry
from .base import check_image
from .prompts import EDIT_TYPES
from .region import Region
from .vlm_parsing import (
    AddProposal,
    parse_add_proposal,
    parse_edit_prompt,
    parse_marked,
    parse_object_list,
    parse_phrase,
)

VLMS = Registry("vision-language model")
_DTYPES = ("float32", "float16", "bfloat16")

# Seed prompts ---------------------------------------------------------------------------------
# DiffSeg30k, stage 1: the VLM lists the objects; it is told to prefer humans and larger objects
# because it naturally under-selects both.
LIST_OBJECTS_PROMPT = (
    "List the distinct objects in this image that could be edited. Always include every person "
    "you see, and prefer large, clearly visible objects over small or distant ones; skip tiny or "
    "heavily occluded things. Use short lowercase names (one to three words), most important "
    "first, at most {max_objects} names. Answer only with a JSON list, for example "
    '["person", "dog", "red car"].'
)
DESCRIBE_REGION_PROMPT = (
    "Describe what is inside the red box in a short noun phrase of at most six words, for "
    'example "the blue sky" or "a man in a red jacket". Answer only with the phrase.'
)
# BR-Gen: for a background region the description covers the whole image with the subject
# marked by $ signs, so that the perturbation can rewrite everything except the subject.
DESCRIBE_BACKGROUND_PROMPT = (
    "The red boxes mark the main subjects of this image. Describe the whole image in one short "
    "sentence and put the main subjects between $ signs, for example "
    '"$a man in a red jacket$ standing on a snowy mountain". Answer only with the sentence.'
)
# DiffSeg30k, stage 2: one context-aware prompt per mask and edit type. An addition is painted
# after the region's content was removed, in the same place. A background region is shown by
# boxes around what it excludes (its subjects).
EDIT_REGION_INTROS: dict[str, str] = {
    "thing": "The red box marks {description} in this image.",
    "stuff": "The red box marks {description} in this image.",
    "background": (
        "The red boxes mark the main subjects of this image; the region to edit is everything "
        "around them, {description}."
    ),
}
EDIT_PROMPTS: dict[str, str] = {
    "attribute": (
        "Write a short, context-aware image editing prompt that changes one attribute of this "
        "region (colour, material, texture, pattern, style or weather) while keeping it the same "
        "kind of thing and the scene natural."
    ),
    "removal": (
        "This content will be removed. Write a short prompt describing what should fill its place "
        "so that the scene looks natural without it (what lies behind it)."
    ),
    "addition": (
        "Its content has been removed. Choose one different object that would fit naturally in "
        "this place and scene, and write a short prompt for painting it there."
    ),
    # OpenSDI's one-turn addition (the red box marks where the new object goes)
    "add": (
        "A new object will be painted here. Write a short prompt naming that object so that it "
        "fits naturally in this place and scene."
    ),
}
# OpenSDI section 3 ("adding ... objects"): the VLM proposes a new object and the place it goes;
# the place phrase is then grounded (Florence-2 + SAM) and the object's mask sized inside / on it.
ADD_OBJECT_PROMPT = (
    "Imagine a user who wants to add one new object to this photo. Choose an object that is not "
    "in the photo but would fit naturally, and a visible place for it. Answer only with JSON: "
    '{"object": "a red bicycle", "relation": "next to", "place": "the wooden bench"}, where '
    'relation is "on", "in" or "next to" and place names something visible in the photo.'
)
ANSWER_WITH_PROMPT_JSON = 'Answer only with JSON: {"prompt": "..."}'

# BR-Gen's probabilistic semantic perturbation: stuff is rewritten inside #...#, background
# outside $...$, keeping the new content plausible for the region.
PERTURB_STUFF_PROMPT = (
    'This description is about the area in the red box: "#{description}#". Rewrite only the '
    "words between the # signs so that they describe a different but plausible appearance of "
    'the same kind of area, for example "#the blue sky#" -> "#the starry sky#". Answer only '
    "with the rewritten description, keeping the # signs."
)
PERTURB_BACKGROUND_PROMPT = (
    'This is a description of the image: "{description}". Rewrite only the words outside the $ '
    "signs so that the subject stays the same but its surroundings change plausibly, for example "
    '"$a dog$ on green grass" -> "$a dog$ on a sandy beach". Answer only with the rewritten '
    "description, keeping the $ signs."
)

# One (model, processor) per checkpoint per process: a 7B VLM takes tens of seconds to load and
# ~16 GB to hold, and every adapter instance naming it must share the same weights (kept in the
# process's model cache, under this family).
_FAMILY = "vlm-weights"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true"}


def _resolved(model: str) -> str:
    path = Path(model)
    return str(path.resolve()) if path.is_dir() else model


def clear_vlm_cache() -> None:
    """Forget every loaded VLM (frees their memory once no adapter holds them)."""
    drop_family(_FAMILY)


def mark_region(image: np.ndarray, region: Region) -> np.ndarray:
    """A copy of ``image`` with the region shown as red box(es) (BR-Gen's annotated image).

    Thing and stuff regions get one box around the whole mask; a background region gets one box
    per connected piece of what it excludes (the things, its subjects), pieces under 0.5% of the
    image ignored.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    check_image(image)
    if region.mask.shape != image.shape[:2]:
        raise ValueError(f"region mask shape {region.mask.shape} does not match image size {image.shape[:2]}")
    marked = np.ascontiguousarray(image.copy())
    height, width = region.mask.shape
    thickness = max(2, round(0.006 * max(height, width)))
    target = ~region.mask if region.kind == "background" else region.mask
    n, _, stats, _ = cv2.connectedComponentsWithStats(target.astype(np.uint8), connectivity=8)
    boxes = []
    if region.kind == "background":
        for x, y, w, h, area in stats[1:]:
            if area >= 0.005 * height * width:
                boxes.append((x, y, x + w - 1, y + h - 1))
    elif n > 1:
        ys, xs = np.nonzero(target)
        boxes.append((xs.min(), ys.min(), xs.max(), ys.max()))
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(marked, (int(x0), int(y0)), (int(x1), int(y1)), (255, 0, 0), thickness)
    return marked


class VisionLanguageModel:
    """One instruction-tuned image-text-to-text checkpoint, asked the seeds' questions.

    Args:
        model: hub id (read from the local cache when ``HF_HUB_OFFLINE`` is set) or local folder
            holding the weights and the processor (with its chat template).
        device: torch device string ("cpu", "cuda", "cuda:1").
        dtype: "float32" (the CPU default), "bfloat16" or "float16".
        trust_remote_code: passed to ``from_pretrained``; off unless a checkpoint needs it.
        max_new_tokens: generation limit per answer.
        do_sample: sample (seeded per call) instead of greedy decoding.
        temperature, top_p: sampling settings, used only with ``do_sample``.
        max_objects: most object names asked for and kept by ``list_objects``.
        attn_implementation: e.g. "sdpa" or "flash_attention_2"; None = transformers' default.
        processor_kwargs: extra keyword arguments for ``AutoProcessor.from_pretrained``.

    Raises:
        ValueError: unknown dtype, max_new_tokens < 1, max_objects < 1.
    """

    family = "image-text-to-text"
    model_class = "AutoModelForImageTextToText"
    model_types: tuple[str, ...] = ()  # config.model_type values this family accepts; () = any

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        dtype: str = "float32",
        trust_remote_code: bool = False,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 0.9,
        max_objects: int = 8,
        attn_implementation: str | None = None,
        processor_kwargs: dict[str, Any] | None = None,
    ):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if int(max_objects) < 1:
            raise ValueError(f"max_objects must be >= 1, got {max_objects}")
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.trust_remote_code = bool(trust_remote_code)
        self.max_new_tokens = int(max_new_tokens)
        self.do_sample = bool(do_sample)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.max_objects = int(max_objects)
        self.attn_implementation = attn_implementation
        self.processor_kwargs = dict(processor_kwargs or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, device={self.device!r}, dtype={self.dtype!r})"

    # Loading --------------------------------------------------------------------------------
    def load(self) -> tuple[Any, Any]:
        """Return the cached ``(model, processor)``, loading them on first use.

        Raises:
            OSError: the checkpoint is not found (offline: not in the local cache).
            ValueError: the checkpoint is of another family than this adapter, or its processor
                has no chat template.
        """
        key = (
            _FAMILY, self.model_class, _resolved(self.model), self.device, self.dtype, self.trust_remote_code,
            self.attn_implementation, tuple(sorted((k, repr(v)) for k, v in self.processor_kwargs.items())),
        )
        return process_cache().get(key, self._load_weights)

    def _load_weights(self) -> tuple[Any, Any]:
        """(model, processor) from ``from_pretrained``; see ``load``."""
        import torch
        import transformers

        common = {"local_files_only": _offline(), "trust_remote_code": self.trust_remote_code}
        model_cls = getattr(transformers, self.model_class)
        config = transformers.AutoConfig.from_pretrained(self.model, **common)
        if self.model_types and config.model_type not in self.model_types:
            raise ValueError(
                f"{self.model} is a {config.model_type!r} checkpoint; the {self.family!r} adapter "
                f"loads {list(self.model_types)}"
            )
        extra = {"attn_implementation": self.attn_implementation} if self.attn_implementation else {}
        network = model_cls.from_pretrained(self.model, dtype=getattr(torch, self.dtype), **common, **extra)
        network = network.to(self.device).eval()
        processor = transformers.AutoProcessor.from_pretrained(self.model, **common, **self.processor_kwargs)
        if not getattr(processor, "chat_template", None):
            raise ValueError(
                f"the processor of {self.model} has no chat template; use an instruction-tuned checkpoint"
            )
        return network, processor

    # Asking ---------------------------------------------------------------------------------
    def ask(self, image: np.ndarray, question: str, seed: int = 0, max_new_tokens: int | None = None) -> str:
        """The model's raw answer to ``question`` about ``image`` ((H, W, 3) uint8 RGB).

        One user turn holding the image and the question, rendered with the checkpoint's own
        chat template; the answer is decoded without special tokens. ``seed`` matters only with
        ``do_sample`` (the global torch RNG is left untouched).
        """
        import torch
        from PIL import Image

        check_image(image)
        network, processor = self.load()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = processor(text=[text], images=[Image.fromarray(image)], return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(getattr(torch, self.dtype))
        generation = {"max_new_tokens": int(max_new_tokens or self.max_new_tokens), "do_sample": self.do_sample}
        if self.do_sample:
            generation.update(temperature=self.temperature, top_p=self.top_p)
        devices = [torch.device(self.device)] if torch.device(self.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(int(seed))
            output = network.generate(**inputs, **generation)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return processor.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()

    def list_objects(self, image: np.ndarray, seed: int = 0) -> list[str]:
        """Names of the objects in ``image``, most important first (humans and larger objects
        preferred), at most ``max_objects``.

        Raises:
            VLMParseError: the answer holds no usable name.
        """
        answer = self.ask(image, LIST_OBJECTS_PROMPT.format(max_objects=self.max_objects), seed=seed)
        return parse_object_list(answer, self.max_objects)

    def describe(self, image: np.ndarray, region: Region, seed: int = 0) -> str:
        """A short description of ``region``: a noun phrase for thing and stuff regions; for a
        background region a sentence about the whole image with its subject kept between $ signs
        (``"$a dog$ lying on green grass"``), for ``perturb_description``.

        Raises:
            VLMParseError: the answer is not a short phrase (or lacks the $ subject).
        """
        marked = mark_region(image, region)
        if region.kind == "background":
            description, subject = parse_marked(self.ask(marked, DESCRIBE_BACKGROUND_PROMPT, seed=seed), "$")
            return description.replace(subject, f"${subject}$", 1)
        return parse_phrase(self.ask(marked, DESCRIBE_REGION_PROMPT, seed=seed))

    def edit_prompt(
        self, image: np.ndarray, region: Region, edit_type: str, description: str | None = None, seed: int = 0
    ) -> str:
        """A context-aware edit prompt of ``edit_type`` for ``region``.

        ``description`` names the region in the question (default: its label).

        Raises:
            ValueError: unknown edit type.
            VLMParseError: the answer holds no usable prompt.
        """
        if edit_type not in EDIT_TYPES:
            raise ValueError(f"unknown edit type {edit_type!r}; known: {list(EDIT_TYPES)}")
        intro = EDIT_REGION_INTROS[region.kind].format(description=(description or region.label).replace("$", ""))
        question = f"{intro} {EDIT_PROMPTS[edit_type]} {ANSWER_WITH_PROMPT_JSON}"
        return parse_edit_prompt(self.ask(mark_region(image, region), question, seed=seed))

    def propose_addition(self, image: np.ndarray, seed: int = 0) -> AddProposal:
        """OpenSDI's "add an object": a new object for ``image`` and where it goes (a relation,
        "on" / "in" / "next to", to a place phrase to ground).

        Raises:
            VLMParseError: the answer holds no readable object and place (``parse_add_proposal``).
        """
        return parse_add_proposal(self.ask(image, ADD_OBJECT_PROMPT, seed=seed))

    def perturb_description(self, image: np.ndarray, region: Region, description: str, seed: int = 0) -> str:
        """BR-Gen's semantic perturbation by the VLM: ``description`` of a stuff region rewritten
        inside #...#, of a background region outside $...$ (the subject kept).

        Returns:
            The new description without the marker signs.

        Raises:
            ValueError: ``region`` is a thing.
            VLMParseError: the answer lacks the marked part.
        """
        marked = mark_region(image, region)
        if region.kind == "stuff":
            answer = self.ask(marked, PERTURB_STUFF_PROMPT.format(description=description.replace("#", "")), seed=seed)
            return parse_marked(answer, "#")[0]
        if region.kind == "background":
            if description.count("$") < 2:
                description = f"${description}$"
            answer = self.ask(marked, PERTURB_BACKGROUND_PROMPT.format(description=description), seed=seed)
            return parse_marked(answer, "$")[0]
        raise ValueError(f"semantic perturbation applies to stuff and background regions, got {region.kind!r}")


_QWEN_MIN_PIXELS = 56 * 56  # the Qwen2-VL / Qwen2.5-VL processors' own defaults
_QWEN_MAX_PIXELS = 28 * 28 * 1280


class Qwen2_5_VL(VisionLanguageModel):
    """Qwen2.5-VL (the VLM of DiffSeg30k and BR-Gen).

    ``min_pixels`` / ``max_pixels`` bound the image area the processor feeds the vision tower
    (Qwen's own knobs; each 28 x 28 pixel patch becomes one visual token); the default
    ``max_pixels`` (1024 tokens, about 900 x 900 px) keeps a 1024 px image close to full size.
    """

    family = "qwen2.5-vl"
    model_class = "Qwen2_5_VLForConditionalGeneration"
    model_types = ("qwen2_5_vl",)

    def __init__(self, model: str = "Qwen/Qwen2.5-VL-7B-Instruct", min_pixels: int | None = None,
                 max_pixels: int | None = 1024 * 28 * 28, **kwargs: Any):
        processor_kwargs = dict(kwargs.pop("processor_kwargs", None) or {})
        if min_pixels is not None or max_pixels is not None:
            # transformers 5.x names Qwen's min/max pixels shortest_edge/longest_edge.
            processor_kwargs["size"] = {
                "shortest_edge": int(min_pixels if min_pixels is not None else _QWEN_MIN_PIXELS),
                "longest_edge": int(max_pixels if max_pixels is not None else _QWEN_MAX_PIXELS),
            }
        super().__init__(model, processor_kwargs=processor_kwargs, **kwargs)


class Qwen2_VL(Qwen2_5_VL):
    """Qwen2-VL (one of OpenSDI's instruction writers); same processor knobs as Qwen2.5-VL."""

    family = "qwen2-vl"
    model_class = "Qwen2VLForConditionalGeneration"
    model_types = ("qwen2_vl",)

    def __init__(self, model: str = "Qwen/Qwen2-VL-7B-Instruct", **kwargs: Any):
        super().__init__(model, **kwargs)


class Llava(VisionLanguageModel):
    """LLaVA 1.5 in its transformers port (one of OpenSDI's instruction writers): a CLIP vision
    tower and a Llama language model; the image is resized and centre-cropped by its processor."""

    family = "llava"
    model_class = "LlavaForConditionalGeneration"
    model_types = ("llava",)

    def __init__(self, model: str = "llava-hf/llava-1.5-7b-hf", **kwargs: Any):
        super().__init__(model, **kwargs)


class LlamaVision(VisionLanguageModel):
    """Llama 3.2 Vision Instruct (Mllama in transformers; one of OpenSDI's instruction writers): a
    tiled ViT whose features reach the Llama text model through cross-attention layers. The
    processor splits the image into up to 4 tiles of 560 px. Gated checkpoint: accept Meta's
    licence on the hub and have it in the local cache."""

    family = "llama-3.2-vision"
    model_class = "MllamaForConditionalGeneration"
    model_types = ("mllama",)

    def __init__(self, model: str = "meta-llama/Llama-3.2-11B-Vision-Instruct", **kwargs: Any):
        super().__init__(model, **kwargs)


class InternVL(VisionLanguageModel):
    """InternVL in its transformers port (one of OpenSDI's instruction writers). OpenSDI used
    InternVL2, whose checkpoints need ``trust_remote_code``; the port loads the "-hf" checkpoints
    of InternVL2.5 / InternVL3 (same InternViT + pixel-shuffle + LLM design), hence the default."""

    family = "internvl"
    model_class = "InternVLForConditionalGeneration"
    model_types = ("internvl",)

    def __init__(self, model: str = "OpenGVLab/InternVL3-8B-hf", **kwargs: Any):
        super().__init__(model, **kwargs)


@VLMS.register("qwen2.5-vl", description="Qwen2.5-VL (DiffSeg30k, BR-Gen)", default_model="Qwen/Qwen2.5-VL-7B-Instruct")
def build_qwen2_5_vl(**kwargs: Any) -> Qwen2_5_VL:
    return Qwen2_5_VL(**kwargs)


@VLMS.register("qwen2-vl", description="Qwen2-VL (OpenSDI)", default_model="Qwen/Qwen2-VL-7B-Instruct")
def build_qwen2_vl(**kwargs: Any) -> Qwen2_VL:
    return Qwen2_VL(**kwargs)


@VLMS.register("llava", description="LLaVA 1.5, transformers port (OpenSDI)", default_model="llava-hf/llava-1.5-7b-hf")
def build_llava(**kwargs: Any) -> Llava:
    return Llava(**kwargs)


@VLMS.register("llama-3.2-vision", description="Llama 3.2 Vision Instruct, Mllama (OpenSDI)",
               default_model="meta-llama/Llama-3.2-11B-Vision-Instruct")
def build_llama_vision(**kwargs: Any) -> LlamaVision:
    return LlamaVision(**kwargs)


@VLMS.register("internvl", description="InternVL2.5 / 3, transformers port (OpenSDI used InternVL2)",
               default_model="OpenGVLab/InternVL3-8B-hf")
def build_internvl(**kwargs: Any) -> InternVL:
    return InternVL(**kwargs)


def create_vlm(name: str, **kwargs: Any) -> VisionLanguageModel:
    """Build the VLM adapter registered as ``name`` (nothing is loaded until first use).

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
    """
    return VLMS.create(name, **kwargs)


def list_vlms() -> list[str]:
    """Sorted names of the registered VLM families."""
    return VLMS.names()
