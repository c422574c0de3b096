"""The metrics summary one evaluation writes (``metrics_binary.json`` / ``metrics_semantic.json``).

``MetricsSummary`` is what evaluate builds and what the report and the comparison page read
(through ``MetricsSummary.from_json`` or the plain dict, which has the same keys in the same
order). NaN becomes None in JSON (``json_clean``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class MetricsSummary:
    """One checkpoint evaluated on one split.

    ``pixel`` / ``pixel_per_image`` / ``image`` / ``confusion_matrix``: the in-domain result
    (``models.metrics.DetectionMetrics.summary``; pixel entries None for image-level models);
    ``protocols``: protocol name -> its result (``in_domain`` first); ``conventions``: how each
    number is computed, in words; ``timing_s``: seconds per protocol.
    """

    task: str
    model: str | None
    pixel_level: bool
    split: str
    class_names: list[str]
    held_out_generators: list[str] | None
    conventions: dict[str, Any]
    n_images: int
    n_edited: int
    n_authentic: int
    pixel: dict[str, Any] | None
    pixel_per_image: dict[str, Any] | None
    image: dict[str, Any]
    confusion_matrix: Any
    protocols: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    generator_labels: dict[str, int] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    timing_s: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (field order; NaN -> None, numpy scalars -> Python)."""
        return json_clean({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricsSummary:
        """Inverse of ``to_json`` (unknown keys are refused, so a renamed field fails loudly)."""
        return cls(**data)


def json_clean(obj: Any) -> Any:
    """Nested dicts / lists with numpy scalars, arrays and NaN -> plain JSON values (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return None if np.isnan(value) else value
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return json_clean(obj.tolist())
    return obj
