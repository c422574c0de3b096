"""CLIP text-image agreement (CLIPScore), one of BR-Gen's outlier filters.

BR-Gen drops forgeries whose picture no longer matches the text it was made from. The score here
is ``100 * max(cos(image embedding, text embedding), 0)`` (the CLIPScore of Hessel et al. 2021
without their 2.5 rescaling, as torchmetrics reports it), averaged over the sample's prompts.

The model is any transformers CLIP checkpoint: a hub id already in the local cache or a local
folder holding the model and its processor (``save_pretrained`` output). With ``HF_HUB_OFFLINE=1``
nothing is downloaded; a missing checkpoint fails with the hub's own message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import QUALITY_SCORERS, QualityScorer, check_image


class ClipScore(QualityScorer):
    """CLIPScore of an image against its prompt(s); higher = the image shows the text better.

    Args:
        model: hub id or local folder of a CLIP model with its processor (tokenizer + image
            processor), e.g. ``openai/clip-vit-large-patch14``.
        device: torch device string.
        dtype: ``float32`` (default, CPU) or ``float16`` / ``bfloat16`` on GPU.
    """

    name = "clip"
    higher_is_better = True
    valid_range = (0.0, 100.0)
    min_side = 8
    needs = ("prompt",)

    def __init__(self, model: str, device: str = "cpu", dtype: str = "float32"):
        import torch
        from transformers import AutoProcessor, CLIPModel

        if not model:
            raise ValueError("the clip scorer needs `model`: a CLIP hub id in the local cache or a local folder")
        self._torch = torch
        self.device = torch.device(device)
        self.model_id = str(model)
        self._model = CLIPModel.from_pretrained(self.model_id, dtype=getattr(torch, dtype)).to(self.device).eval()
        self._processor = AutoProcessor.from_pretrained(self.model_id)

    def score(self, image: np.ndarray, prompt: str | Sequence[str] | None = None, **_: object) -> float:
        """Mean CLIPScore of ``image`` ((H, W, 3) uint8 RGB) against ``prompt`` (one text or several).

        Raises:
            ValueError: bad image, or no non-empty prompt.
        """
        check_image(image, self.min_side)
        texts = [prompt] if isinstance(prompt, str) else list(prompt or [])
        texts = [t for t in texts if isinstance(t, str) and t.strip()]
        if not texts:
            raise ValueError("CLIP score needs a non-empty prompt")
        inputs = self._processor(text=texts, images=[image], return_tensors="pt", padding=True, truncation=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with self._torch.no_grad():
            out = self._model(**inputs)
        image_embeds = self._torch.nn.functional.normalize(out.image_embeds.float(), dim=-1)
        text_embeds = self._torch.nn.functional.normalize(out.text_embeds.float(), dim=-1)
        cosine = (text_embeds @ image_embeds.T).squeeze(-1)
        return float((100.0 * cosine.clamp(min=0)).mean())


@QUALITY_SCORERS.register("clip", description="CLIPScore (100 x cosine) of the image against its edit prompts; transformers CLIP")
def build_clip(model: str, device: str = "cpu", dtype: str = "float32") -> ClipScore:
    return ClipScore(model=model, device=device, dtype=dtype)
