"""Ingest: real photos -> square base images (short side resized, centre-cropped) + a manifest;
or, for the ``import`` pipeline, a published dataset -> the same tables and partitions the
generate stages make (base images, edited images, label maps, regions, samples, provenance)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from pipelines.contract.ids import REAL_ONLY_KIND, UniqueIds, real_only_id, safe_id
from pipelines.contract.params import IngestParams, PublishedImport, params_of
from pipelines.contract.rle import decode_rle, encode_rle  # noqa: F401  (decode_rle: re-exported for import users)
from pipelines.contract.schemas import ANNOTATION_COLUMNS, ISSUE_COLUMNS, MANIFEST_COLUMNS, PUBLISHED_SAMPLE_EXTRAS
from pipelines.datasets import decode_image
from pipelines.ingest.published import (
    PUBLISHED_FORMATS,
    PublishedItem,
    iter_brgen,
    iter_diffseg30k,
    iter_imdl,
    iter_opensdid,
)
from pipelines.ingest.sources import (
    RawPhoto,
    SourceError,
    annotation_mask,
    iter_coco_photos,
    iter_folder_photos,
    iter_sample_photos,
    iter_url_photos,
    short_reason,
)

logger = logging.getLogger(__name__)

PHOTO_SOURCES = ("sample", "coco", "folder", "urls")
MAX_GREY_MASK_FRACTION = 0.05  # binary masks with more pixels strictly between black and white are refused
MIN_PHOTO_SIDE = 32  # px: photos with a shorter short side are quarantined whatever ingest.min_side says


def _resize(image: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize to (height, width): area averaging when shrinking, cubic when enlarging."""
    height, width = size
    if nearest:
        interp = cv2.INTER_NEAREST
    elif height * width < image.shape[0] * image.shape[1]:
        interp = cv2.INTER_AREA
    else:
        interp = cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interp)


def crop_boxes(height: int, width: int, crops: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Square crop boxes (top, left, side) in the original photo.

    The first is the seeds' centre crop of the full short side; extra ones (``crops`` > 1) are
    random squares of 55-90% of the short side, so one bundled photo gives several bases.
    """
    short = min(height, width)
    boxes = [((height - short) // 2, (width - short) // 2, short)]
    for _ in range(crops - 1):
        side = int(short * rng.uniform(0.55, 0.9))
        boxes.append((int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)), side))
    return boxes


def square_crop(image: np.ndarray, box: tuple[int, int, int], image_size: int, nearest: bool = False) -> np.ndarray:
    top, left, side = box
    return _resize(image[top:top + side, left:left + side], (image_size, image_size), nearest=nearest)


def _photos(params: IngestParams, issues: list[dict[str, str]]):
    source = params.source
    if isinstance(source, list):  # BR-Gen: COCO + ImageNet / Places photos, one source after the other
        return itertools.chain.from_iterable(_photos(params.model_copy(update={"source": one}), issues) for one in source)
    if source == "sample":
        return iter_sample_photos(params.sample.names)
    if source == "coco":
        cfg = params.coco
        return iter_coco_photos(cfg.annotations, cfg.images, cfg.max_images, cfg.captions, issues)
    if source == "folder":
        return iter_folder_photos(params.folder.root, params.folder.max_images, issues)
    if source == "urls":
        cfg = params.urls.model_dump()
        return iter_url_photos(cfg.pop("table"), issues=issues, **cfg)
    if source in PUBLISHED_FORMATS:
        raise SourceError(f"ingest.source={source!r} is a published dataset with its own edits and labels: run it "
                          "with `kedro run --pipeline published` (or `--pipeline import`), not through ingest")
    raise SourceError(f"ingest.source must be one of sample, coco, folder, urls (photos) or "
                      f"{', '.join(PUBLISHED_FORMATS)} (published datasets); got {source!r}")


def ingest_photos(params: dict[str, Any]) -> tuple[dict[str, Callable[[], np.ndarray]], pd.DataFrame, pd.DataFrame]:
    """Read the configured source and make ``image_size`` square base images.

    Returns (base_images: base_id -> (S,S,3) uint8, base_manifest, base_annotations). The
    annotations' masks are cropped exactly like their image and stored as COCO RLE strings.
    ``sha256`` is over the base image's raw RGB bytes; duplicate pixels are dropped with a warning.
    """
    return ingest_base_images(params)[:3]


def photos_with_pools(params: IngestParams, issues: list[dict[str, str]]) -> Iterator[tuple[RawPhoto, str | None]]:
    """The source's photos, each with its pool: None for the edited bases, then the pool names of
    ``ingest.real_pools`` in order (DiffSeg30k sec. 4: 5k unedited real images for segmentation
    training, 30k real negatives for the image classifiers). The bases are the first
    ``max_images`` photos of the source's order and each pool takes the next ones, so a photo (an
    image id) is in one place only.

    Raises:
        ValueError: pools asked for without a coco / folder source whose ``max_images`` is set.
    """
    pools = params.real_pools
    if not pools:
        yield from ((photo, None) for photo in _photos(params, issues))
        return
    source = params.source
    section = getattr(params, source, None) if isinstance(source, str) and source in ("coco", "folder") else None
    if section is None or section.max_images is None:
        raise ValueError("ingest.real_pools needs ingest.source coco or folder with its max_images set: the edited "
                         f"bases are the first max_images photos, the pools the photos after them (source {source!r})")
    quotas = [(None, section.max_images), *pools.items()]
    widened = params.model_copy(update={source: section.model_copy(update={"max_images": sum(n for _, n in quotas)})})
    photos = _photos(widened, issues)
    for pool, count in quotas:
        for photo in itertools.islice(photos, count):
            yield photo, pool


def ingest_base_images(
    params: dict[str, Any],
) -> tuple[dict[str, Callable[[], np.ndarray]], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``ingest_photos`` plus ``ingest_issues``: one row (source, item, reason) per photo, file or
    URL that was skipped (unreadable, failed download, checksum mismatch, duplicate pixels).
    Photos of an ``ingest.real_pools`` pool become one centre-crop base each, id
    ``real_only_id(photo, pool)``, kind ``real-only``, without annotations or AI companion."""
    params = params_of(IngestParams, params)
    image_size = int(params.image_size)
    if image_size < 32:
        raise ValueError(f"ingest.image_size must be >= 32, got {image_size}")
    # Upscaling a thumbnail to a base image invents its pixels: below MIN_PHOTO_SIDE, never.
    min_side = max(params.min_side, MIN_PHOTO_SIDE)
    rng = np.random.default_rng(params.seed)
    images: dict[str, np.ndarray] = {}
    rows, ann_rows = [], []
    seen: dict[str, str] = {}
    issues: list[dict[str, str]] = []
    for photo, pool in tqdm(photos_with_pools(params, issues), desc="ingest", unit="photo"):
        height, width = photo.image.shape[:2]
        if min(height, width) < min_side:
            reason = (f"image too small: {width}x{height} pixels, the short side must be at least {min_side} px "
                      f"({'ingest.min_side' if min_side > MIN_PHOTO_SIDE else 'the smallest photo worth a crop'})")
            logger.warning("skipping %s: %s", photo.source_path, reason)
            issues.append({"source": photo.source, "item": photo.source_path, "reason": reason})
            continue
        crops = params.crops_per_photo if pool is None else 1
        for crop_index, box in enumerate(crop_boxes(height, width, crops, rng)):
            base = np.ascontiguousarray(square_crop(photo.image, box, image_size))
            digest = hashlib.sha256(base.tobytes()).hexdigest()
            base_id = real_only_id(photo.photo_id, pool) if pool else \
                f"{photo.photo_id}-c{crop_index}" if crops > 1 else photo.photo_id
            if digest in seen:
                logger.warning("skipping %s: same pixels as %s", base_id, seen[digest])
                issues.append({"source": photo.source, "item": photo.source_path, "reason": f"same pixels as {seen[digest]}"})
                continue
            seen[digest] = base_id
            images[base_id] = base
            rows.append(_manifest_row(photo, base_id, REAL_ONLY_KIND if pool else "real", box, image_size, digest))
            if pool is None:
                ann_rows += _annotation_rows(photo, base_id, box, image_size)
    if not images:
        raise SourceError(f"ingest source {params.source!r} produced no images ({len(issues)} item(s) refused: "
                          "see data/08_reporting/quarantine.md)", issues=issues)
    logger.info("ingested %d base images from %d groups", len(images), len({r["group_id"] for r in rows}))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    if params.ai_bases.ratio:  # DiffSeg30k: bases generated from captions (pipelines.ingest.synthesize)
        from pipelines.ingest.synthesize import add_ai_bases

        images, manifest = add_ai_bases(images, manifest, params.ai_bases, params.seed, image_size)
    annotations = pd.DataFrame(ann_rows, columns=ANNOTATION_COLUMNS)
    if issues:
        logger.warning("ingest skipped %d item(s); see ingest_issues", len(issues))
    return _lazy(images), manifest, annotations, pd.DataFrame(issues, columns=ISSUE_COLUMNS)


def _manifest_row(photo: RawPhoto, base_id: str, kind: str, box: tuple[int, int, int], image_size: int,
                  digest: str) -> dict[str, Any]:
    height, width = photo.image.shape[:2]
    return {"base_id": base_id, "group_id": photo.group_id, "source": photo.source, "kind": kind,
            "source_path": photo.source_path, "category": photo.category,
            "caption": photo.captions[0] if photo.captions else "",
            "orig_height": height, "orig_width": width, "height": image_size, "width": image_size,
            "crop": json.dumps(list(box)), "sha256": digest}


def _annotation_rows(photo: RawPhoto, base_id: str, box: tuple[int, int, int], image_size: int) -> list[dict[str, Any]]:
    """The photo's annotations cropped exactly like its base image, as COCO RLE strings."""
    rows = []
    for ann_index, ann in enumerate(photo.annotations):
        mask = square_crop(annotation_mask(ann).astype(np.uint8), box, image_size, nearest=True).astype(bool)
        if mask.any():
            rows.append({"base_id": base_id, "ann_index": ann_index, "category": ann["category"],
                         "supercategory": ann.get("supercategory", ""), "isthing": bool(ann["isthing"]),
                         "area_ratio": float(mask.mean()), "rle": encode_rle(mask)})
    return rows


def quarantine_report(issues: pd.DataFrame) -> str:
    """Markdown page listing every quarantined item of the run (``ingest_issues``): what, why.

    Rows whose reason starts with ``note:`` were kept (converted, clipped, renamed) and are listed
    separately. Written as data/08_reporting/quarantine.md next to the table itself."""
    issues = issues if issues is not None else pd.DataFrame(columns=ISSUE_COLUMNS)
    is_note = issues["reason"].astype(str).str.startswith("note:") if len(issues) else pd.Series([], dtype=bool)
    refused, notes = issues[~is_note], issues[is_note]

    def table(frame: pd.DataFrame) -> list[str]:
        rows = ["| source | item | reason |", "| --- | --- | --- |"]
        for row in frame.itertuples(index=False):
            cells = [str(v).replace("|", "\\|").replace("\n", " ") for v in (row.source, row.item, row.reason)]
            rows.append("| " + " | ".join(cells) + " |")
        return rows

    lines = ["# Quarantine", "",
             f"{len(refused)} item(s) refused and left out of the run; {len(notes)} kept with a note. "
             "Table: `ingest_issues` (data/08_reporting/ingest_issues.parquet).", ""]
    if len(refused):
        lines += ["## Refused", "", *table(refused), ""]
    if len(notes):
        lines += ["## Kept with a note", "", *table(notes), ""]
    if len(refused):
        logger.warning("quarantined %d item(s):\n%s", len(refused),
                       "\n".join(f"  {r.item}: {r.reason}" for r in refused.itertuples(index=False)))
    return "\n".join(lines)


def _lazy(arrays: dict[str, np.ndarray]) -> dict[str, Callable[[], np.ndarray]]:
    return {key: (lambda value=value: value) for key, value in arrays.items()}


# ------------------------------------------------------------------------------------- import
# Published datasets become the same tables and partitions the generate stages write, so filter,
# split, stats, train and evaluate run on them unchanged:
#   authentic images      -> base_images + base_manifest (kind real, published_split)
#   forged images         -> edited_images; their masks -> label_maps (0 untouched, k = the k-th
#                            configured generator; 1 = "edited" when the generator is unknown or
#                            not in the list: label_kind says which)
#   one row per forgery   -> samples (origin = the format, published_split, label_kind, source_path)
#   one row per generator -> provenance and regions (turn order unknown: ordered by label)
# A forgery is linked to its authentic image when the format says which (BR-Gen's Au, EditLens'
# own exports); otherwise it is its own base and split group.
def _normalise_generator(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def _mask_array(payload: bytes, name: str) -> np.ndarray:
    """The stored mask values as (H, W): one channel as stored (palette indices for P images), or
    the mean over RGB (float) when the channels differ, as IMDL-BenCo decodes masks."""
    try:
        with Image.open(io.BytesIO(payload)) as img:
            img.load()
            array = np.asarray(img if img.mode in ("1", "L", "P", "I;16", "I", "RGB", "RGBA") else img.convert("RGB"))
    except Exception as exc:
        raise ValueError(f"mask {name} is not a readable image ({type(exc).__name__}: {exc})") from exc
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.ndim == 3:
        channels = array[..., :3]
        return channels[..., 0] if (channels == channels[..., :1]).all() else channels.astype(np.float64).mean(axis=2)
    return array


def published_label_map(item: PublishedItem, shape: tuple[int, int], label_index: dict[str, int]) -> tuple[np.ndarray, str, list[str]]:
    """(label_map (H,W) uint8, label_kind 'semantic'|'binary', notes) for a forged item.

    Binary masks follow IMDL-BenCo: mean over channels > 127.5 (a 0/1 mask, which that rule would
    read as all zeros, is read as > 0 with a note). ``values`` masks (DiffSeg30k) are inspected:
    {0, 255} or {0, 1} = binary, otherwise class indices named by ``item.classes``.
    Raises ValueError for an unreadable mask, a size mismatch or class values without names.
    """
    notes: list[str] = []

    def label_of(generator: str) -> tuple[int, str]:
        key = _normalise_generator(generator)
        if key and key in label_index:
            return label_index[key], "semantic"
        if key:
            notes.append(f"generator {generator!r} is not in the generator list: labelled 1 (binary)")
        return 1, "binary"

    if item.mask is None:  # a fully generated fake: every pixel is the generator's
        label, kind = label_of(item.generator)
        return np.full(shape, label, dtype=np.uint8), kind, notes
    values = _mask_array(item.mask(), item.source_path)
    if values.shape != tuple(shape):
        raise ValueError(f"mask is {values.shape[1]}x{values.shape[0]} but the image is {shape[1]}x{shape[0]}")
    present = set(np.unique(values).tolist())
    if item.mask_coding == "values" and not present <= {0, 255} and not (present <= {0, 1} and not item.classes):
        classes = item.classes or []
        if max(present) >= len(classes):
            raise ValueError(f"mask values {sorted(present)} need class names; known classes: {classes or 'none'} "
                             "(set ingest.diffseg30k.class_names or ship labels.json)")
        label_map = np.zeros(values.shape, dtype=np.uint8)
        kinds = set()
        for value in sorted(present - {0}):
            label, kind = label_of(classes[value])
            label_map[values == value] = label
            kinds.add(kind)
        return label_map, "binary" if "binary" in kinds else "semantic", notes
    if item.mask_coding == "binary" and not (present <= {0, 255} or present <= {0, 1}):
        # JPEG-saved masks have a little grey at the edges; a mask that is largely grey (or a colour
        # mask read as the mean of its channels) is not a binary mask: refused, not guessed.
        grey = float(((values > 32) & (values < 223)).mean())
        if grey > MAX_GREY_MASK_FRACTION:
            shown = sorted(present)[:8]
            raise ValueError(f"mask has unexpected values: {grey:.0%} of its pixels are neither black nor white "
                             f"(values {shown}{' ...' if len(present) > 8 else ''}); a binary mask is 0/255 or 0/1")
    if present <= {0, 1} and 1 in present and item.mask_coding == "binary":
        notes.append("0/1 mask (IMDL-BenCo's mean > 127.5 rule reads it as all zeros): read as > 0")
        edited = values > 0
    else:
        edited = values > 127.5 if item.mask_coding == "binary" else values > 0
    label, kind = label_of(item.generator)
    return np.where(edited, label, 0).astype(np.uint8), kind, notes


def _reader(source: str, params: IngestParams, issues: list[dict[str, str]]):
    if source == "imdl":
        return iter_imdl(params.imdl.root, params.imdl.json_, params.imdl.generator or "", issues)
    if source == "brgen":
        return iter_brgen(params.brgen.root, issues)
    if source == "opensdid":
        return iter_opensdid(params.opensdid.files, params.opensdid.generator or "", issues)
    if source == "diffseg30k":
        cfg = params.diffseg30k
        return iter_diffseg30k(cfg.root, cfg.files, cfg.class_names, issues)
    raise SourceError(f"ingest.source must be a published format ({', '.join(PUBLISHED_FORMATS)}) for the import "
                      f"pipeline; got {source!r} (photo sources run through `--pipeline ingest`)")


def import_label_space(published: PublishedImport | dict[str, Any]) -> list[str]:
    """The class names imported labels map to, in label order (label k = names[k - 1]).

    ``published.label_space`` when set (``pipelines.contract.labels.parse_label_space``): plain
    class names, no generator registry entry is needed for a dataset that was made elsewhere.
    Else the names of ``published.generators`` (the run's generator list).
    Raises SourceError for an empty or repeated name."""
    from pipelines.contract.labels import generator_names, parse_label_space

    published = params_of(PublishedImport, published)
    try:
        names = parse_label_space(published.label_space)
    except ValueError as error:
        raise SourceError(str(error)) from error
    if names is None:
        return generator_names(published.generators) if published.generators else []
    return names


def _decode_published(item: PublishedItem, source: str, label_index: dict[str, int]) -> tuple[np.ndarray, Any]:
    """(image, (label_map, label_kind, notes) or None) of one item; raises ValueError / DatasetError
    when it cannot be used. An all-zero IMDL mask makes the item authentic, as IMDL-BenCo reads it."""
    image = decode_image(item.image(), "RGB", name=item.source_path)
    if item.kind != "edited":
        return image, None
    labelled = published_label_map(item, image.shape[:2], label_index)
    if not labelled[0].any():
        if source != "imdl":  # IMDL-BenCo reads an all-zero mask as authentic; others say "fake"
            raise ValueError("forged image with an empty mask")
        item.kind, item.mask = "authentic", None
        return image, None
    return image, labelled


def _read_published(source: str, params: IngestParams, label_index: dict[str, int], fit: Callable,
                    issues: list[dict[str, str]]) -> tuple[dict, list[dict], list[tuple]]:
    """Read and check every item: (bases, manifest rows, edited) where edited holds
    (item, original (H, W), label_kind, {label: area ratio}, edited area ratio); masks are not kept.
    Every id is made valid and unique here, at the door (``UniqueIds``); base keys follow."""
    max_items = params.published.max_items
    ids = UniqueIds(source, issues)
    bases: dict[str, Callable] = {}
    manifest_rows: list[dict[str, Any]] = []
    edited: list[tuple] = []
    seen_pixels: dict[str, str] = {}
    for item in tqdm(_reader(source, params, issues), desc=f"import {source}", unit="image"):
        if max_items and len(bases) + len(edited) >= int(max_items):
            break
        try:
            image, labelled = _decode_published(item, source, label_index)
        except Exception as exc:  # one bad entry is reported, never fatal
            _skip(issues, source, item.source_path, short_reason(exc, item.source_path))
            continue
        if item.kind == "authentic":
            pixels = np.ascontiguousarray(fit(image))
            digest = hashlib.sha256(pixels.tobytes()).hexdigest()
            if digest in seen_pixels:
                _skip(issues, source, item.source_path, f"same pixels as {seen_pixels[digest]}")
                continue
            item.item_id = ids(item.item_id, item.source_path)
            seen_pixels[digest] = item.item_id
            bases[item.item_id] = _image_loader(item, fit)
            manifest_rows.append({
                "base_id": item.item_id, "group_id": item.item_id, "source": source, "kind": "real",
                "source_path": item.source_path, "category": "", "caption": "",
                "orig_height": image.shape[0], "orig_width": image.shape[1], "height": pixels.shape[0],
                "width": pixels.shape[1], "crop": "", "sha256": digest, "published_split": item.split,
            })
            continue
        label_map, label_kind, notes = labelled
        item.item_id = ids(item.item_id, item.source_path)
        issues.extend({"source": source, "item": item.source_path, "reason": f"note: {note}"} for note in notes)
        fitted = fit(label_map, nearest=True)
        areas = {int(v): float((fitted == v).mean()) for v in np.unique(fitted) if v > 0}
        edited.append((item, image.shape[:2], label_kind, areas, float((fitted > 0).mean())))
    for item, *_ in edited:  # a forgery's link to its authentic image, by that image's id; without
        # one (not in the dataset, or refused) the key still groups the forgeries of one real image
        item.base_key = (ids.first(item.base_key) or safe_id(item.base_key)) if item.base_key else ""
    return bases, manifest_rows, edited


def _skip(issues: list[dict[str, str]], source: str, item: str, reason: str) -> None:
    issues.append({"source": source, "item": item, "reason": reason})
    logger.warning("%s: skipping %s: %s", source, item, reason)


def _image_loader(item: PublishedItem, fit: Callable) -> Callable[[], np.ndarray]:
    return lambda: fit(decode_image(item.image(), "RGB", name=item.source_path))


def _published_rows(source: str, item: PublishedItem, areas: dict[int, float], label_kind: str, names: list[str],
                    base_id: str) -> tuple[list[dict], list[dict]]:
    """(provenance rows, region rows) of one forgery: one per label present (turn order unknown:
    ordered by label). Provenance names only generators of the label space."""
    sample_id, provenance, regions = item.item_id, [], []
    labels = sorted(areas)
    generators = [names[v - 1] for v in labels if label_kind == "semantic" and v - 1 < len(names)]
    for turn, label in enumerate(labels, start=1):
        provenance.append({"sample_id": sample_id, "turn": turn, "generator": generators[turn - 1] if generators else "",
                           "label": label, "region_id": f"{sample_id}-t{turn}", "kind": item.region_kind,
                           "edit_type": "", "prompt": "", "seed": -1, "mask_area_ratio": areas[label],
                           "changed_pixel_ratio": float("nan"), "registry": "", "model": "", "details": "",
                           "candidate_seeds": [], "candidate_scores": [], "prompt_source": "published",
                           "prompt_image": ""})  # every PROVENANCE column, typed
        regions.append({"region_id": f"{sample_id}-t{turn}", "sample_id": sample_id, "base_id": base_id, "turn": turn,
                        "edit_group": f"{sample_id}-g{turn}", "label": "", "kind": item.region_kind,
                        "score": float("nan"), "area_ratio": areas[label], "edit_type": "", "prompt": "",
                        "perceiver": source, "prompt_source": "published", "area_bucket": "", "description": "",
                        "perturbed": False, "label_source": "published"})  # every REGIONS column, typed
    return provenance, regions


def _published_samples(source: str, edited: list[tuple], bases: dict, names: list[str], label_index: dict[str, int],
                       fit: Callable) -> tuple[dict, dict, list, list, list]:
    """(edited_images, label_maps, sample rows, provenance rows, region rows) of the forgeries."""
    edited_images, label_maps, sample_rows, provenance_rows, region_rows = {}, {}, [], [], []
    for item, shape, label_kind, areas, edited_area in edited:
        sample_id = item.item_id
        base_id = item.base_key if item.base_key in bases else sample_id
        edited_images[sample_id] = _image_loader(item, fit)
        label_maps[sample_id] = (lambda i=item, s=shape: fit(published_label_map(i, s, label_index)[0], nearest=True))
        provenance, regions = _published_rows(source, item, areas, label_kind, names, base_id)
        provenance_rows += provenance
        region_rows += regions
        generators = [row["generator"] for row in provenance if row["generator"]]
        n_turns = len(areas)
        sample_rows.append({
            "sample_id": sample_id, "base_id": base_id, "group_id": item.base_key or sample_id,
            "base_kind": "real" if base_id in bases else "", "n_turns": n_turns,
            "generators": generators or ([item.generator] if item.generator else []),
            "last_generator": generators[-1] if generators else (item.generator or ""),
            "edited_area_ratio": edited_area, "edit_types": [],
            "region_kinds": [item.region_kind] * n_turns if item.region_kind else [],
            "origin": source, "published_split": item.split, "label_kind": label_kind, "source_path": item.source_path,
        })
    return edited_images, label_maps, sample_rows, provenance_rows, region_rows


def import_published(params: dict[str, Any]) -> tuple[Any, ...]:
    """Read the published dataset ``params['source']`` (imdl | brgen | opensdid | diffseg30k).

    Returns (base_images, base_manifest, base_annotations (empty), edited_images, label_maps,
    regions, samples, provenance, ingest_issues). Images are decoded once here to check them
    and again, lazily, when saved; ``published.image_size`` (an int) squashes images (area) and
    label maps (nearest) to that square, ``null`` keeps the published size. Labels map to
    ``import_label_space``. Every id is a valid, unique id (``UniqueIds``; renamed ones get a
    note). Bad or inconsistent entries go to ``ingest_issues`` and are skipped; none is fatal. A
    forgery-only dataset (no authentic image) is valid: base_manifest is then empty.
    Raises SourceError (carrying the issues) only when no item at all is usable.
    """
    from pipelines.contract.schemas import PROVENANCE_COLUMNS, REGION_COLUMNS, SAMPLE_COLUMNS

    params = params_of(IngestParams, params)
    source = params.source
    names = import_label_space(params.published)
    label_index = {_normalise_generator(n): i + 1 for i, n in enumerate(names)}
    size = params.published.image_size

    def fit(image: np.ndarray, nearest: bool = False) -> np.ndarray:
        return image if not size else _resize(image, (int(size), int(size)), nearest=nearest)

    issues: list[dict[str, str]] = []
    bases, manifest_rows, edited = _read_published(source, params, label_index, fit, issues)
    edited_images, label_maps, sample_rows, provenance_rows, region_rows = _published_samples(
        source, edited, bases, names, label_index, fit)
    if not sample_rows and not manifest_rows:
        raise SourceError(f"import of {source!r} produced no usable image ({len(issues)} issue(s); first: "
                          f"{issues[0] if issues else 'none'})", issues=issues)
    samples = pd.DataFrame(sample_rows, columns=[*SAMPLE_COLUMNS, *PUBLISHED_SAMPLE_EXTRAS])
    logger.info("imported %s: %d forged, %d authentic images, %d issue(s)", source, len(samples), len(manifest_rows),
                len(issues))
    return (
        bases, pd.DataFrame(manifest_rows, columns=[*MANIFEST_COLUMNS, "published_split"]),
        pd.DataFrame(columns=ANNOTATION_COLUMNS), edited_images, label_maps,
        pd.DataFrame(region_rows, columns=REGION_COLUMNS), samples,
        pd.DataFrame(provenance_rows, columns=PROVENANCE_COLUMNS), pd.DataFrame(issues, columns=ISSUE_COLUMNS),
    )
