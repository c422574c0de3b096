"""Quality scoring: measures used to filter generated edits.

No-reference scorers take the image only; ``needs`` says what else a scorer takes (``prompt``
for text-image agreement, ``reference`` for similarity to the base image).

Example::

    scorer = create_quality_scorer("brisque")
    keep = scorer.score(image) <= 60  # BR-Gen's filter; scorer.higher_is_better is False
    clip = create_quality_scorer("clip", model="openai/clip-vit-large-patch14")
    clip.score(image, prompt="a starry sky")  # clip.needs == ("prompt",)
"""

from . import brisque_scorer as _brisque_scorer  # noqa: F401  (registers "brisque")
from . import clip_score as _clip_score  # noqa: F401  (registers "clip")
from . import dreamsim_scorer as _dreamsim_scorer  # noqa: F401  (registers "dreamsim")
from . import perceptual as _perceptual  # noqa: F401  (registers "perceptual")
from . import sharpness as _sharpness  # noqa: F401  (registers "sharpness")
from . import vlm_score as _vlm_score  # noqa: F401  (registers "vlm")
from .base import QUALITY_SCORERS, QualityScorer, create_quality_scorer, list_quality_scorers
from .brisque_scorer import BrisqueScorer, brisque_features
from .clip_score import ClipScore
from .dreamsim_scorer import DreamSimDistance
from .perceptual import PerceptualDistance
from .sharpness import LaplacianSharpness
from .vlm_score import DIFFSEG30K_QUALITY_PROMPT, QualityAnswer, VlmQualityScore, parse_quality_answer

__all__ = [
    "DIFFSEG30K_QUALITY_PROMPT",
    "QUALITY_SCORERS",
    "BrisqueScorer",
    "ClipScore",
    "DreamSimDistance",
    "LaplacianSharpness",
    "PerceptualDistance",
    "QualityAnswer",
    "QualityScorer",
    "VlmQualityScore",
    "brisque_features",
    "create_quality_scorer",
    "list_quality_scorers",
    "parse_quality_answer",
]
