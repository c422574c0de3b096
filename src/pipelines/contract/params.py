"""One pydantic model per parameter section: the types and bounds of every value a node reads.

``typed_problems(params, sections)`` validates the sections a run reads and returns one line per
problem, every problem at once, each naming the parameter, the bad value and what is allowed, as
``pipelines.config_checks.ConfigError`` lists them before any node runs (the
``before_pipeline_run`` hook). Registry names, ratio sums and cross-field rules stay in
``pipelines.config_checks``, which calls this for the types.

Sections keep keys this module does not name (``extra="allow"``): a model names what a node
converts with ``int()`` / ``float()`` / ``bool()``, so a wrong type fails here, not in a node.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt, ValidationError

Ratio = float  # checked in [0, 1] by pipelines.config_checks (with its own wording)


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")


class SampleSource(_Section):
    names: list[str] | None = None


class CocoSource(_Section):
    annotations: str | None = None
    images: str | None = None
    captions: str | None = None
    max_images: PositiveInt | None = None


class FolderSource(_Section):
    root: str | None = None
    max_images: PositiveInt | None = None


class UrlSource(_Section):
    table: str | None = None
    url_column: str | None = None
    sha256_column: str | None = None
    caption_column: str | None = None
    id_column: str | None = None
    max_images: PositiveInt | None = None
    concurrency: PositiveInt | None = None
    retries: NonNegativeInt | None = None
    backoff_s: NonNegativeFloat | None = None
    timeout_s: float | None = Field(default=None, gt=0)


class PublishedImport(_Section):
    image_size: PositiveInt | None = None
    max_items: PositiveInt | None = None


class AiBases(_Section):
    ratio: Ratio | None = None
    prompt: str | None = None
    batch_size: PositiveInt | None = None


class IngestParams(_Section):
    source: str | None = None
    image_size: int | None = None
    seed: int | None = None
    min_side: NonNegativeInt | None = None
    crops_per_photo: int | None = None
    sample: SampleSource | None = None
    coco: CocoSource | None = None
    folder: FolderSource | None = None
    urls: UrlSource | None = None
    published: PublishedImport | None = None
    ai_bases: AiBases | None = None


class PerceiveParams(_Section):
    seed: int | None = None
    variants_per_base: PositiveInt | None = None
    iou_threshold: Ratio | None = None
    min_area_ratio: Ratio | None = None
    max_area_ratio: Ratio | None = None
    edit_type_weights: dict[str, NonNegativeFloat] | None = None
    object_names_from_vlm: bool | None = None
    perceiver_kwargs: dict[str, dict[str, Any]] | None = None
    vlms: list[dict[str, Any]] | None = None


class FullSynthesis(_Section):
    ratio: Ratio | None = None
    prompt: str | None = None


class InpaintParams(_Section):
    seed: int | None = None
    distinct_generators_per_sample: bool | None = None
    candidates_per_edit: int | None = None
    clip_region: Literal["bbox", "image"] | None = None
    chunk_size: PositiveInt | None = None
    max_pipelines_on_device: PositiveInt | None = None
    max_pipelines_loaded: PositiveInt | None = None
    full_synthesis: FullSynthesis | None = None


class FilterParams(_Section):
    checks: list[dict[str, Any]] | None = None
    score_imported: bool | None = None


class StatsParams(_Section):
    samples: Literal["kept", "all"] | None = None
    top_categories: PositiveInt | None = None


class EvaluateParams(_Section):
    split: str | None = None
    batch_size: PositiveInt | None = None
    chunk_size: PositiveInt | None = None
    num_threads: PositiveInt | None = None
    boundary_tolerance_px: NonNegativeFloat | None = None
    n_overlays: NonNegativeInt | None = None
    groups_include_authentic: bool | None = None
    label_parent: dict[str, str] | None = None


SECTIONS: dict[str, type[BaseModel]] = {
    "ingest": IngestParams, "perceive": PerceiveParams, "inpaint": InpaintParams, "filter": FilterParams,
    "stats": StatsParams, "evaluate": EvaluateParams,
}

_ALLOWED = {
    "int_parsing": "must be an integer", "int_type": "must be an integer", "int_from_float": "must be an integer",
    "float_parsing": "must be a number", "float_type": "must be a number", "bool_parsing": "must be true or false",
    "bool_type": "must be true or false", "greater_than": "must be > {gt}", "greater_than_equal": "must be >= {ge}",
    "list_type": "must be a list", "dict_type": "must be a mapping", "string_type": "must be a string",
    "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
    "literal_error": "must be one of {expected}",
}


def _describe(section: str, error: dict[str, Any]) -> str:
    where = ".".join([section, *(str(part) for part in error["loc"])])
    template = _ALLOWED.get(error["type"])
    allowed = template.format(**(error.get("ctx") or {})) if template else error["msg"]
    return f"{where}: {error['input']!r} {allowed}"


def typed_problems(params: dict[str, Any], sections: Iterable[str] | None = None) -> list[str]:
    """One line per value of the wanted ``sections`` (all when None) whose type or bound is wrong."""
    wanted = set(sections) if sections is not None else set(SECTIONS)
    problems: list[str] = []
    for name, model in SECTIONS.items():
        value = params.get(name)
        if name not in wanted or value is None:
            continue
        try:
            model.model_validate(value)
        except ValidationError as error:
            problems += [_describe(name, e) for e in error.errors(include_url=False)]
    return problems


def parse_section(name: str, value: dict[str, Any]) -> BaseModel:
    """The typed model of section ``name`` (raises pydantic.ValidationError on a bad value)."""
    return SECTIONS[name].model_validate(value)
