"""One pydantic model per parameter section: every key a node reads, its type, bound and default.

A model is THE place a parameter's default lives: conf/base/parameters_<section>.yml shows the
values (documented there), a key left out of the YAML gets the model's default, and a node never
carries a second one. Nodes convert their ``params:<section>`` dict once, on entry, with
``params_of(Model, value)`` and read attributes. Node signatures keep ``dict[str, Any]``: a model
hint would make Kedro build the model itself when the context loads, before
``pipelines.config_checks`` can list every problem, and a union hint is logged as unsupported.

``typed_problems(params, sections)`` validates the sections a run reads and returns one line per
problem, every problem at once, each naming the parameter, the bad value and what is allowed, as
``pipelines.config_checks.ConfigError`` lists them before any node runs (the
``before_pipeline_run`` hook). Registry names, ratio sums and cross-field rules stay in
``pipelines.config_checks``, which calls this for the types.

Sections forbid keys they do not name (``extra="forbid"``): a misspelt key is a problem listing
the allowed keys. Open mappings (per-model kwargs, protocol names, generator entries) stay dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

Ratio = float  # checked in [0, 1] by pipelines.config_checks (with its own wording)
Generators = list[dict[str, Any] | str]  # entries, see pipelines.contract.labels
Model = TypeVar("Model", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    url_column: str = "url"
    sha256_column: str | None = None
    caption_column: str | None = None
    id_column: str | None = None
    max_images: PositiveInt | None = None
    concurrency: PositiveInt = 8
    retries: NonNegativeInt = 3
    backoff_s: NonNegativeFloat = 1.0
    timeout_s: float = Field(default=30.0, gt=0)
    deadline_s: float = Field(default=120.0, gt=0)
    allow_private: bool = False


class PublishedImport(_Section):
    generators: Generators | None = None
    label_space: list[str] | str | None = None
    image_size: PositiveInt | None = None
    max_items: PositiveInt | None = None


class ImdlSource(_Section):
    root: str | None = None
    json_: str | list[str] | dict[str, str] | None = Field(default=None, alias="json")
    generator: str | None = None


class BrgenSource(_Section):
    root: str | None = None


class OpensdidSource(_Section):
    files: list[Any] | str | None = None
    generator: str | None = None


class Diffseg30kSource(_Section):
    root: str | None = None
    files: list[Any] | str | None = None
    class_names: list[str] | str | None = None


class AiBases(_Section):
    ratio: Ratio = 0.0
    generators: Generators | None = None
    prompt: str = "a photo"
    batch_size: PositiveInt = 4


class IngestParams(_Section):
    source: str | list[str] = "sample"  # a list: several photo sources in turn (BR-Gen: coco + folder)
    image_size: int | None = None
    seed: int = 0
    min_side: NonNegativeInt = 0
    crops_per_photo: int = 1  # the seeds' single centre crop; conf/base asks for 4
    sample: SampleSource = SampleSource()
    coco: CocoSource = CocoSource()
    folder: FolderSource = FolderSource()
    urls: UrlSource = UrlSource()
    published: PublishedImport = PublishedImport()
    imdl: ImdlSource = ImdlSource()
    brgen: BrgenSource = BrgenSource()
    opensdid: OpensdidSource = OpensdidSource()
    diffseg30k: Diffseg30kSource = Diffseg30kSource()
    ai_bases: AiBases = AiBases()
    # DiffSeg30k sec. 4: further real photos of the same source, never perceived nor edited: pool
    # name -> how many. They follow the edited bases in the source's order (the bases are the first
    # `max_images` photos), so no photo is both; base_id <photo>=<pool>, kind real-only
    # (pipelines.contract.ids.real_only_id). The split decides where each pool goes (split.pools).
    real_pools: dict[str, PositiveInt] = {}


class _Resumable(_Section):
    """Resumption (pipelines.io.resume): a work store folder; null = off."""
    work_dir: str | None = None
    work_storage_options: dict[str, Any] | None = None


class _Sharded(_Resumable):
    # {index, count}: this run does one shard (checked by pipelines.io.shards.parse_shard)
    shard: dict[str, Any] | None = None


class Balance(_Section):
    strength: NonNegativeFloat = 1.0
    area_edges: list[float] = [0.0, 0.05, 0.1, 0.2, 0.4, 1.0]


class Perturbation(_Section):
    p: Ratio | None = 0.5
    kinds: list[str] = ["stuff", "background"]


class AddSizingParams(_Section):
    """OpenSDI's one-turn "add" edit: the new object's ellipse (models.perception.additions.AddSizing;
    its minimum area is perceive.min_area_ratio)."""
    size_range: list[PositiveFloat] = [0.1, 0.3]         # object / place area, "on" and "in"
    beside_size_range: list[PositiveFloat] = [0.5, 1.0]  # object / place area, "next to"
    aspect_range: list[PositiveFloat] = [0.5, 2.0]       # ellipse height / width
    max_area_ratio: Ratio = 0.25                         # object / image area at most


class PerceiveParams(_Resumable):
    seed: int = 0
    perceiver: str = "auto"
    fallback_perceiver: str = "superpixel"
    perceiver_kwargs: dict[str, dict[str, Any]] = {}
    variants_per_base: PositiveInt = 2
    iou_threshold: Ratio = 0.7
    turn_count_weights: list[float] = [1, 4, 5]
    min_area_ratio: Ratio = 0.01
    max_area_ratio: Ratio = 0.6
    edit_type_weights: dict[str, NonNegativeFloat] = {"attribute": 1, "addition": 1, "removal": 1}
    add: AddSizingParams = AddSizingParams()
    balance: Balance = Balance()
    perturbation: Perturbation = Perturbation()
    vlms: list[dict[str, Any]] = []
    object_names_from_vlm: bool = False
    # region kinds a sample may edit (thing / stuff / background); None = every kind proposed.
    # DiffSeg30k edits the objects a VLM lists, not BR-Gen's inverse-of-things background;
    # BR-Gen forges stuff and background only.
    region_kinds: list[Literal["thing", "stuff", "background"]] | None = None
    # per-kind area caps over max_area_ratio (BR-Gen's background masks cover up to the whole image)
    max_area_ratio_by_kind: dict[str, Ratio] = {}
    # variant v of a base edits a region of kind kind_per_variant[v % len] (BR-Gen Fig. 3: each
    # real image has a stuff mask and a background mask); null = any allowed kind
    kind_per_variant: list[Literal["thing", "stuff", "background"]] | None = None


class FullSynthesis(_Section):
    ratio: Ratio = 0.0
    prompt: str = "a photo"


class Regenerate(_Section):
    """BR-Gen's loop: an edit failing a quality check is redone with a new seed, at most
    ``max_attempts`` tries in all (1 = no regeneration). ``checks``: entries as ``filter.checks``."""
    max_attempts: PositiveInt = 1
    checks: list[dict[str, Any]] = []


class ClassicIntervals(_Section):
    """OpenSDI section 3: copy-paste and splicing "applied at random intervals". Over the edits in
    sample-id order, after every k diffusion edits one classic edit; k ~ U{gap[0] .. gap[1]}."""
    generators: list[str] = ["copy_move", "splicing"]   # registry keys of the classic entries
    gap: list[NonNegativeInt] = [1, 9]


class InpaintParams(_Sharded):
    seed: int = 0
    generators: Generators | None = None
    distinct_generators_per_sample: bool = True
    candidates_per_edit: int = 1
    clip_model: str | None = None
    clip_region: Literal["bbox", "image"] = "bbox"
    clip_device: str = "cpu"
    clip_dtype: str = "float32"
    chunk_size: PositiveInt = 64
    max_pipelines_on_device: PositiveInt | None = None
    max_pipelines_loaded: PositiveInt | None = None
    full_synthesis: FullSynthesis = FullSynthesis()
    # DiffSeg30k Table 4: entries never drawn for a sample's turns (e.g. the SDXL LoRA variant) ...
    study_only: list[str] = []
    # ... used only to re-edit: {variant: parent} adds, for every sample a parent edited, a twin
    # sample <sample_id>+<variant> whose parent turns are redone by the variant (same seeds).
    reedit: dict[str, str] = {}
    # DiffSeg30k sec. 3.1: turn k's prompt is rewritten by the VLM that wrote it (perceive's
    # prompt_source vlm:<name>), looking at the image as edited by turns < k. Entries as
    # perceive.vlms; empty = every prompt stays as perceive wrote it (from the base image).
    prompt_vlms: list[dict[str, Any]] = []
    # BR-Gen: every perceived region inpainted by EVERY inpainting entry (one sample per model,
    # ids <sample>-<generator>), instead of one random generator per turn.
    every_generator: bool = False
    regenerate: Regenerate = Regenerate()
    # null: every entry drawn per turn by its `weight`; else the classic entries at random intervals
    classic_intervals: ClassicIntervals | None = None


class FilterParams(_Sharded):
    checks: list[dict[str, Any]] = []
    score_imported: bool = False
    # BR-Gen: samples wanted per generator after filtering (the report's shortfall); null = off
    target_per_generator: NonNegativeInt | None = None


class StatsParams(_Section):
    samples: Literal["kept", "all"] = "kept"
    top_categories: PositiveInt = 20
    figure_folder: str = "statistics"


class SplitProtocol(_Section):
    """One entry of ``split.protocols`` (see pipelines.split.nodes for each kind's keys). ``names``
    / ``ratios`` None: the section's for random / published, (train, test) 8:2 for the others."""
    kind: Literal["random", "leave_out", "train_on_one", "published", "transfer"] = "random"
    names: list[str] | None = None
    ratios: list[float] | None = None
    pairs: list[list[str]] | None = None  # leave_out: one protocol per pair, named <key>-<a>+<b>
    held_out: list[str] | None = None     # leave_out without pairs
    train_on: str | list[str] = "each"    # train_on_one: each generator of the label space, or these
    # train_on_one, OpenSDI Table 2: at most counts.train edited items of the trained class(es) in
    # train and counts.test per class in test, each times `scale`; as many authentic items as
    # edited ones in each split (real : fake balanced). None = every eligible item.
    counts: dict[Literal["train", "test"], NonNegativeInt] | None = None
    scale: PositiveFloat = 1.0
    # transfer (BR-Gen Table 4): edited samples of type `source` in the train split, of `target`
    # in the others; the type is the generator family (`families`: generator -> family) or the
    # region kind; authentic images in every split as usual
    by: Literal["generator_family", "region_kind"] | None = None
    source: str | None = None
    target: str | None = None
    families: dict[str, str] | None = None


class RealPool(_Section):
    """One entry of ``split.pools``: where the real-only photos of ingest pool <name> go."""
    split: str | None = None              # None: the protocol's first (training) split
    n: NonNegativeInt | None = None       # at most this many (seeded draw); None = the whole pool
    protocols: list[str] | None = None    # configured protocol keys that get the pool; None = every one


class SplitParams(_Section):
    seed: int = 0
    names: list[str] = ["train", "val"]
    ratios: list[float] = [0.8, 0.2]
    add_authentic: bool = True
    n_authentic_train: NonNegativeInt | None = None
    generators: Generators | None = None
    use: str = "random"
    # an entry set to null is left out (a recipe env drops a protocol conf/base defines)
    protocols: dict[str, SplitProtocol | None] = {"random": SplitProtocol()}
    pools: dict[str, RealPool] = {}  # ingest.real_pools -> the protocols and split they join


class TrainDataset(_Section):
    protocol: str | None = None
    split: str = "train"
    val_split: str = "val"


def _trainer_fields() -> set[str]:
    from models.detectors.training import TrainConfig

    return {f.name for f in fields(TrainConfig)} - {"task"}


class TrainParams(_Section):
    seed: int = 0
    generators: Generators | None = None
    model: str = "deeplabv3plus"
    task: str | list[str] = "both"  # binary | semantic | both, or a list (pipelines.train.nodes.selected_tasks)
    model_kwargs: dict[str, Any] = {}
    models: dict[str, dict[str, Any] | None] = {}
    dataset: TrainDataset = TrainDataset()
    exclude_generators: list[str] | str | None = None
    num_threads: PositiveInt | None = None
    # every models.detectors.training.TrainConfig field but task; its defaults live there
    trainer: dict[str, Any] = {}
    # further detectors of the same run (DiffSeg30k Tables 2, 5-7): name -> keys of this section
    # (model, task, dataset, trainer, ...) merged over it (pipelines.train.nodes.train_variants)
    variants: dict[str, dict[str, Any]] = {}

    @field_validator("trainer")
    @classmethod
    def _known_trainer_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - _trainer_fields())
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_trainer_fields()))}")
        return value


class Breakdowns(_Section):
    by: list[str] = ["generator", "turns", "area_bucket", "region_kind"]
    membership: Literal["last", "any", "all"] = "last"
    area_buckets: list[float] = [0.2, 0.4, 0.6, 0.8, 1.0]
    # generator groups' authentic images: every one of the split (all) or the split's authentic
    # images dealt out evenly to the groups (partition: OpenSDI Table 2, each test generator has its own reals)
    authentic: Literal["all", "partition"] = "all"
    mean: bool = False  # add <by>_mean for the generator breakdowns: the papers' AVG column (OpenSDI Tables 3-4)


class CrossGenerator(_Section):
    held_out: list[str] | str | None = None
    membership: Literal["last", "any", "all"] = "last"


class LoraAsParent(_Section):
    membership: Literal["last", "any", "all"] = "last"
    # DiffSeg30k Table 4 (inpaint.reedit twins): the variants' items are scored apart, beside the
    # items their parent edited, and every other protocol leaves them out
    study_apart: bool = False


class BrgenTables(_Section):
    """BR-Gen Tables 2-4 and 7 (``brgen`` protocol): generator -> family ("gan" / "diffusion"),
    the R@50 area edges, and the cross-type transfers: protocol name -> {by, source, target}
    (the checkpoint trained on that split protocol is scored on ``target``)."""
    families: dict[str, str] = {}
    area_edges: list[float] = [0.2, 0.4, 0.6, 0.8, 1.0]
    cumulative_area: bool = True
    cross_type: dict[str, dict[str, str]] = {}


class EvaluateProtocols(_Section):
    breakdowns: Breakdowns = Breakdowns()
    brgen: BrgenTables = BrgenTables()
    # perturbation name -> levels (models.perturbations), applied in the order written; ``resize_to``
    # (DiffSeg30k Table 3) feeds the image at an absolute side S x S, the prediction resized back
    robustness: dict[str, list[float]] = {"jpeg": [60, 80], "resize": [0.5, 2.0], "blur": [1.0, 2.0]}
    cross_generator: CrossGenerator = CrossGenerator()
    lora_as_parent: LoraAsParent = LoraAsParent()
    # classes whose local edits are also scored under each robustness condition (OpenSDI Fig. 5: sd1.5, sd3)
    robustness_by_generator: list[str] = []


class EvaluateReport(_Section):
    title: str = "EditLens evaluation report"


class PaperCell(_Section):
    """One cell of a paper table: ``ours`` a ``/``-separated path into metrics.json (or null with
    ``na`` saying why), ``paper`` the published number (null: the paper prints none)."""
    ours: str | None = None
    paper: float | None = None
    na: str | None = None


class PaperRow(_Section):
    label: str
    cells: list[PaperCell]


class PaperTable(_Section):
    """A seed paper's table in its layout (pipelines.evaluate.paper_tables)."""
    id: str
    title: str
    source: str = ""
    scale: PositiveFloat = 1.0     # ours x scale, e.g. 100 where the paper prints percentages
    digits: NonNegativeInt = 3
    columns: list[str]
    rows: list[PaperRow]
    notes: list[str] = []


class EvaluateParams(_Section):
    split: str = "val"
    generators: Generators | None = None  # the label space: protocols group samples by class label
    batch_size: PositiveInt = 8
    chunk_size: PositiveInt = 32
    num_threads: PositiveInt | None = None
    boundary_tolerance_px: NonNegativeInt | NonNegativeFloat = 2  # an int stays an int in metrics.json
    image_threshold: Ratio = 0.5
    pixel_threshold: Ratio = 0.5
    n_overlays: NonNegativeInt = 6
    # side the detector sees every evaluation image at (resized, predictions resized back to the
    # label map); None = as stored. DiffSeg30k: 512, the training resolution (sec. 4.1).
    input_size: PositiveInt | None = None
    run: list[str] | str | None = "all"  # see pipelines.evaluate.protocols.selected_protocols
    groups_include_authentic: bool = True
    label_parent: dict[str, str] = {}
    protocols: EvaluateProtocols = EvaluateProtocols()
    report: EvaluateReport = EvaluateReport()
    paper_tables: list[PaperTable] = []  # a recipe's tables beside the paper's numbers
    # how each train.variants detector is evaluated: keys of this section merged over it, after
    # run: [in_domain] and n_overlays: 0 (pipelines.evaluate.nodes.evaluate_variants)
    variants: dict[str, dict[str, Any]] = {}


class ExportParams(_Section):
    formats: list[str] | None = None  # None = every format (pipelines.export.nodes.FORMATS)
    splits: list[str] | None = None
    generators: Generators | None = None


SECTIONS: dict[str, type[BaseModel]] = {
    "ingest": IngestParams, "perceive": PerceiveParams, "inpaint": InpaintParams, "filter": FilterParams,
    "stats": StatsParams, "split": SplitParams, "train": TrainParams, "evaluate": EvaluateParams,
    "export": ExportParams,
}

_ALLOWED = {
    "int_parsing": "must be an integer", "int_type": "must be an integer", "int_from_float": "must be an integer",
    "float_parsing": "must be a number", "float_type": "must be a number", "bool_parsing": "must be true or false",
    "bool_type": "must be true or false", "greater_than": "must be > {gt}", "greater_than_equal": "must be >= {ge}",
    "list_type": "must be a list", "dict_type": "must be a mapping", "string_type": "must be a string",
    "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
    "literal_error": "must be one of {expected}",
}


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (None when it is an open mapping)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next((f for n, f in current.model_fields.items() if part in (n, f.alias)), None)
            if field is None:  # a key of an open mapping (a protocol's name) or a list index
                continue
            current = field.annotation
        models = [a for a in _flat_args(current) if isinstance(a, type) and issubclass(a, BaseModel)]
        current = models[0] if models else None
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _flat_args(annotation: Any) -> list[Any]:
    """``annotation`` and every type nested in it (Optional, list, dict values)."""
    out, todo = [], [annotation]
    while todo:
        item = todo.pop()
        out.append(item)
        todo += list(get_args(item))
    return out


def _describe(section: str, error: dict[str, Any]) -> str:
    where = ".".join([section, *(str(part) for part in error["loc"])])
    if error["type"] == "extra_forbidden":
        owner = _model_at(SECTIONS[section], tuple(error["loc"][:-1])) if section in SECTIONS else None
        keys = sorted(f.alias or n for n, f in owner.model_fields.items()) if owner else []
        return f"{where}: unknown key; allowed: {', '.join(keys)}"
    if error["type"] == "value_error":  # a validator's own sentence
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
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


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in: mappings key by key (recursively), anything else
    replaced; neither argument is modified. A ``*.variants`` entry over its section."""
    out = dict(base)
    for key, value in overrides.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merged(out[key], value) if both else value
    return out


def params_of(model: type[Model], value: Model | dict[str, Any] | None) -> Model:
    """``value`` (a node's ``params:<section>`` dict, None = every default) as ``model``; a model
    instance is returned as is. The run's values were checked before any node ran (the
    ``before_pipeline_run`` hook); a node called directly with a bad value raises ValueError
    naming every bad key as the configuration check does."""
    if isinstance(value, model):
        return value
    try:
        return model.model_validate(value or {})
    except ValidationError as error:
        section = next((name for name, known in SECTIONS.items() if known is model), model.__name__)
        raise ValueError("; ".join(_describe(section, e) for e in error.errors(include_url=False))) from None
