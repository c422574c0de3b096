"""Quality scoring: no-reference measures used to filter generated edits.

Example::

    scorer = create_quality_scorer("brisque")
    keep = scorer.score(image) <= 60  # BR-Gen's filter; scorer.higher_is_better is False
"""

from . import brisque_scorer as _brisque_scorer  # noqa: F401  (registers "brisque")
from . import sharpness as _sharpness  # noqa: F401  (registers "sharpness")
from .base import QUALITY_SCORERS, QualityScorer, create_quality_scorer, list_quality_scorers
from .brisque_scorer import BrisqueScorer, brisque_features
from .sharpness import LaplacianSharpness

__all__ = [
    "QUALITY_SCORERS",
    "BrisqueScorer",
    "LaplacianSharpness",
    "QualityScorer",
    "brisque_features",
    "create_quality_scorer",
    "list_quality_scorers",
]
