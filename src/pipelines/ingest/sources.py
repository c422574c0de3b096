"""Where real photographs come from: scikit-image's bundled photos, a COCO instances/stuff JSON
with its image folder, an ImageNet/Places-style folder of class sub-folders, or a table of image
URLs (Megalith-10M, OpenSDI's source of real photos, publishes a parquet of URLs).

Each source yields ``RawPhoto`` records; ``nodes.py`` resizes and crops them into base images.
Paths go through fsspec so the same source works on local disk and on S3-compatible storage.
Files that cannot be read are skipped and, when the caller passes an ``issues`` list, recorded in
it as {"source", "item", "reason"}.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from pipelines.datasets import decode_image

logger = logging.getLogger(__name__)

# Real colour photographs shipped inside installed packages (no download): name -> where it lives,
# "<package>:<name>" (scikit-image: a ``skimage.data`` function; scikit-learn: a file of
# ``load_sample_images``; matplotlib: a file of its sample_data). Grey, binary, synthetic and tiny
# images (camera, coins, horse, colorwheel, logo, matplotlib's 128 px Minduka) are deliberately absent.
SAMPLE_PHOTOS = {
    "astronaut": "skimage:astronaut",
    "chelsea": "skimage:chelsea",
    "coffee": "skimage:coffee",
    "rocket": "skimage:rocket",
    "motorcycle": "skimage:stereo_motorcycle",
    "retina": "skimage:retina",
    "hubble": "skimage:hubble_deep_field",
    "immunohistochemistry": "skimage:immunohistochemistry",
    "china": "sklearn:china.jpg",
    "flower": "sklearn:flower.jpg",
    "grace_hopper": "matplotlib:grace_hopper.jpg",
}


def _load_sample(spec: str) -> tuple[object, str]:
    """One ``SAMPLE_PHOTOS`` entry -> (the loaded array or stereo tuple, a path naming it)."""
    package, name = spec.split(":", 1)
    if package == "skimage":
        import skimage.data

        return getattr(skimage.data, name)(), f"skimage.data.{name}"
    if package == "sklearn":
        from sklearn.datasets import load_sample_image

        return load_sample_image(name), f"sklearn.datasets.load_sample_image({name!r})"
    import matplotlib.cbook
    from PIL import Image

    with Image.open(matplotlib.cbook.get_sample_data(name, asfileobj=False)) as photo:
        return np.asarray(photo.convert("RGB")), f"matplotlib sample_data/{name}"


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class RawPhoto:
    """A full-size photo before cropping.

    ``annotations``: list of {"category", "supercategory", "isthing", "mask" (H,W) bool} at the
    photo's own size (COCO only). ``group_id`` ties together photos that must stay in one split
    (e.g. the two views of a stereo pair).
    """

    photo_id: str
    group_id: str
    source: str
    source_path: str
    image: np.ndarray
    annotations: list[dict[str, Any]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    category: str = ""


class SourceError(ValueError):
    """A source's configuration or files are unusable; the message names the file and the problem."""


def iter_sample_photos(names: list[str] | None) -> Iterator[RawPhoto]:
    """The real photographs bundled with installed packages (``SAMPLE_PHOTOS``), optionally a subset by name."""
    names = list(SAMPLE_PHOTOS) if not names else list(names)
    unknown = sorted(set(names) - set(SAMPLE_PHOTOS))
    if unknown:
        raise SourceError(f"unknown sample photo(s) {unknown}; known: {sorted(SAMPLE_PHOTOS)}")
    for name in names:
        loaded, source_path = _load_sample(SAMPLE_PHOTOS[name])
        views = loaded[:2] if isinstance(loaded, tuple) else (loaded,)
        for view_index, image in enumerate(views):
            suffix = f"-{view_index}" if len(views) > 1 else ""
            yield RawPhoto(
                photo_id=f"{name}{suffix}",
                group_id=name,
                source="sample",
                source_path=source_path,
                image=np.ascontiguousarray(image[..., :3]),
            )


def _local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def resolve_inside(path: str, roots: list[str] | str, what: str) -> str:
    """``path`` (relative ones against the first root) resolved, if it lies inside one of ``roots``.

    Local paths are resolved with symlinks followed (a link out of the root is outside); other
    protocols lexically ('..' collapsed). Raises ``SourceError`` naming ``what``, the path and the
    roots for anything else: a manifest or an imported list never reaches outside its declared root.
    """
    import os
    import posixpath

    roots = [roots] if isinstance(roots, str) else [r for r in roots if r]
    if not roots:
        raise SourceError(f"{what}: no root to resolve {path!r} against")

    def strip(p: str) -> str:
        return p[len("file://"):] if p.startswith("file://") else p

    if _local(path) and all(_local(r) for r in roots):
        lexical = os.path.normpath(os.path.join(strip(roots[0]), strip(path)))
        resolved = os.path.realpath(lexical)
        for root in roots:
            real_root = os.path.realpath(strip(root))
            if os.path.commonpath([real_root, resolved]) == real_root:
                return lexical
    else:
        protocol = roots[0].split("://", 1)[0] + "://" if "://" in roots[0] else ""
        if "://" in path and not path.startswith(protocol):
            raise SourceError(f"{what}: path {path!r} is not on {protocol or 'the local disk'} like its root; refused")
        inner = path.split("://", 1)[1] if "://" in path else path
        first = roots[0].split("://", 1)[1] if "://" in roots[0] else roots[0]
        resolved = posixpath.normpath(inner if "://" in path or inner.startswith("/") else posixpath.join(first, inner))
        for root in roots:
            bare = posixpath.normpath(root.split("://", 1)[1] if "://" in root else root)
            if resolved == bare or resolved.startswith(bare.rstrip("/") + "/"):
                return protocol + resolved
    raise SourceError(f"{what}: path {path!r} resolves to {resolved}, outside its root "
                      f"{' or '.join(roots)}; refused")


def _read_bytes(path: str) -> bytes:
    with fsspec.open(path, "rb") as fh:
        return fh.read()


def _record(issues: list[dict[str, str]] | None, source: str, item: str, reason: str) -> None:
    logger.warning("skipping %s: %s", item, reason)
    if issues is not None:
        issues.append({"source": source, "item": item, "reason": reason})


def iter_coco_photos(
    annotations: str, images: str, max_images: int | None = None, captions: str | None = None,
    issues: list[dict[str, str]] | None = None,
) -> Iterator[RawPhoto]:
    """COCO-format instances (and/or stuff) JSON plus its image folder, through pycocotools.

    Things vs stuff: a category's ``isthing`` field when present (panoptic JSON), else COCO's id
    convention (ids 1-91 are things, 92-182 stuff). Crowd annotations are skipped. Images that
    cannot be read are logged and skipped, never fatal.
    """
    from pycocotools.coco import COCO

    try:
        dataset = json.loads(_read_bytes(annotations))
    except FileNotFoundError as exc:
        raise SourceError(f"{annotations}: COCO annotations file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{annotations}: not valid JSON ({exc})") from exc
    if not isinstance(dataset, dict):
        raise SourceError(f"{annotations}: a COCO file is a JSON object, got {type(dataset).__name__}")
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise SourceError(f"{annotations}: missing the COCO field {key!r}")
        if not isinstance(dataset[key], list):
            raise SourceError(f"{annotations}: the COCO field {key!r} must be a list")
    # Entries pycocotools would crash on (KeyError deep in createIndex) are reported and dropped.
    good_images = []
    for index, info in enumerate(dataset["images"]):
        if not isinstance(info, dict) or "id" not in info:
            _record(issues, "coco", f"{annotations}#images[{index}]", "image entry without an 'id'")
            continue
        good_images.append(info)
    good_anns = []
    for index, ann in enumerate(dataset["annotations"]):
        missing = [k for k in ("id", "image_id", "category_id", "segmentation") if not isinstance(ann, dict) or k not in ann]
        if missing:
            ident = ann.get("id", f"[{index}]") if isinstance(ann, dict) else f"[{index}]"
            _record(issues, "coco", f"{annotations}#annotation={ident}", f"annotation without the field(s) {missing}")
            continue
        good_anns.append(ann)
    dataset = {**dataset, "images": good_images, "annotations": good_anns}
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        coco.createIndex()
    caption_index: dict[int, list[str]] = {}
    if captions:
        for ann in json.loads(_read_bytes(captions)).get("annotations", []):
            caption_index.setdefault(ann["image_id"], []).append(ann["caption"])
    categories = {c["id"]: c for c in dataset["categories"] if isinstance(c, dict) and "id" in c and "name" in c}
    image_ids = sorted(coco.imgs)[: max_images or None]
    for ann in dataset["annotations"]:
        if ann["image_id"] not in coco.imgs:
            _record(issues, "coco", f"{annotations}#annotation={ann.get('id')}",
                    f"annotation for image id {ann['image_id']}, which is not in 'images'")
    for image_id in image_ids:
        info = coco.imgs[image_id]
        if not isinstance(info.get("file_name"), str) or not info["file_name"]:
            _record(issues, "coco", f"{annotations}#image={image_id}", "image entry has no 'file_name'")
            continue
        try:
            path = resolve_inside(info["file_name"], images, f"{annotations}#image={image_id}")
            image = decode_image(_read_bytes(path), "RGB", name=path)
        except Exception as exc:  # a single bad photo must not stop the run
            _record(issues, "coco", f"{images.rstrip('/')}/{info['file_name']}", str(exc))
            continue
        height, width = image.shape[:2]
        anns = []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0):
                continue
            where = f"{annotations}#annotation={ann.get('id')}"
            problem = _annotation_problem(ann, width, height)
            if problem:
                _record(issues, "coco", where, problem)
                if not problem.startswith("note:"):
                    continue
                ann = _clip_polygons(ann, width, height)
            category = categories.get(ann["category_id"])
            if category is None:
                logger.warning("%s: annotation %s has unknown category %s; skipped", annotations, ann.get("id"), ann["category_id"])
                continue
            if (info.get("height"), info.get("width")) != (height, width):
                logger.warning("%s: JSON says %sx%s but the file is %sx%s; annotations skipped",
                               path, info.get("width"), info.get("height"), width, height)
                break
            mask = coco.annToMask(ann).astype(bool)
            if not mask.any():
                continue
            anns.append({
                "category": category["name"],
                "supercategory": category.get("supercategory", ""),
                "isthing": bool(category.get("isthing", category["id"] <= 91)),
                "mask": mask,
            })
        yield RawPhoto(
            photo_id=f"coco-{image_id}",
            group_id=f"coco-{image_id}",
            source="coco",
            source_path=path,
            image=image,
            annotations=anns,
            captions=caption_index.get(image_id, []),
        )


def _annotation_problem(ann: dict[str, Any], width: int, height: int) -> str:
    """Why an annotation cannot be used ('' if it can; 'note: ...' if usable after clipping)."""
    seg = ann["segmentation"]
    if isinstance(seg, dict):  # RLE: its size must be the image's
        size = seg.get("size")
        if not (isinstance(size, list) and len(size) == 2) or "counts" not in seg:
            return "RLE segmentation without 'size' and 'counts'"
        if list(size) != [height, width]:
            return f"RLE segmentation is {size[1]}x{size[0]} but the image is {width}x{height}"
        return ""
    if not isinstance(seg, list) or not seg:
        return "segmentation is neither a polygon list nor an RLE"
    points = []
    for polygon in seg:
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2 \
                or not all(isinstance(v, (int, float)) for v in polygon):
            return "polygon is not a flat list of at least 3 (x, y) points"
        points.append(np.asarray(polygon, dtype=np.float64).reshape(-1, 2))
    xy = np.concatenate(points)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= width) & (xy[:, 1] >= 0) & (xy[:, 1] <= height)
    if inside.all():
        return ""
    if xy[:, 0].max() < 0 or xy[:, 0].min() > width or xy[:, 1].max() < 0 or xy[:, 1].min() > height:
        return f"polygon lies entirely outside the {width}x{height} image"
    return f"note: polygon has {int((~inside).sum())} point(s) outside the {width}x{height} image; clipped to it"


def _clip_polygons(ann: dict[str, Any], width: int, height: int) -> dict[str, Any]:
    if not isinstance(ann["segmentation"], list):
        return ann
    clipped = []
    for polygon in ann["segmentation"]:
        xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        xy[:, 0] = xy[:, 0].clip(0, width)
        xy[:, 1] = xy[:, 1].clip(0, height)
        clipped.append(xy.reshape(-1).tolist())
    return {**ann, "segmentation": clipped}


def iter_folder_photos(root: str, max_images: int | None = None,
                       issues: list[dict[str, str]] | None = None) -> Iterator[RawPhoto]:
    """An ImageNet/Places-style tree ``root/<class>/<image>``; the class folder becomes the category.

    Unreadable files are logged and skipped.
    """
    fs, base = fsspec.core.url_to_fs(root)
    if not fs.exists(base):
        raise SourceError(f"{root}: image folder not found")
    files = sorted(p for p in fs.find(base) if p.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise SourceError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    protocol = root.split("://", 1)[0] + "://" if "://" in root else ""
    for path in files[: max_images or None]:
        relative = path[len(base):].lstrip("/")
        parts = relative.split("/")
        category = parts[0] if len(parts) > 1 else ""
        full = protocol + path
        try:
            if not protocol or protocol == "file://":
                resolve_inside(path, base, f"{root}: {relative}")  # a symlink out of the root is refused
            with fs.open(path, "rb") as fh:
                image = decode_image(fh.read(), "RGB", name=full)
        except Exception as exc:
            _record(issues, "folder", full, str(exc))
            continue
        stem = relative.rsplit(".", 1)[0].replace("/", "-")
        yield RawPhoto(photo_id=f"folder-{stem}", group_id=f"folder-{stem}", source="folder",
                       source_path=full, image=image,
                       category=category)


# ---------------------------------------------------------------------------------------- URLs
# HTTP statuses worth another try; any other 4xx is the server's final answer.
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass
class Download:
    """The outcome of one URL: ``payload`` on success, else ``reason`` says why it failed."""

    url: str
    payload: bytes | None
    reason: str = ""
    attempts: int = 0


def download(url: str, sha256: str | None = None, retries: int = 3, backoff_s: float = 1.0,
             timeout_s: float = 30.0, max_bytes: int = 64 << 20) -> Download:
    """GET ``url`` with up to ``retries`` retries on network errors, timeouts and retryable HTTP
    statuses (exponential back-off from ``backoff_s``); check the body against ``sha256`` when
    given. Never raises: a failure comes back with its reason."""
    reason = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "EditLens/0.1 (+dataset ingest)"})
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                payload = response.read(max_bytes + 1)
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in RETRYABLE_STATUS:
                return Download(url, None, reason, attempt + 1)
            continue
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = f"network error: {getattr(exc, 'reason', exc)}"
            continue
        if len(payload) > max_bytes:
            return Download(url, None, f"larger than {max_bytes} bytes", attempt + 1)
        if not payload:
            reason = "empty response"
            continue
        if sha256:
            digest = hashlib.sha256(payload).hexdigest()
            if digest != sha256.strip().lower():
                reason = f"sha256 mismatch: expected {sha256.strip().lower()[:16]}..., got {digest[:16]}..."
                continue  # a truncated transfer can cause it; the retry decides
        return Download(url, payload, "", attempt + 1)
    return Download(url, None, f"{reason} (after {retries + 1} attempts)", retries + 1)


def _read_url_table(table: str) -> Any:
    import pandas as pd

    try:
        with fsspec.open(table, "rb") as fh:
            payload = fh.read()
    except FileNotFoundError as exc:
        raise SourceError(f"{table}: URL table not found") from exc
    if table.lower().endswith((".csv", ".tsv")):
        return pd.read_csv(io.BytesIO(payload), sep="\t" if table.lower().endswith(".tsv") else ",")
    return pd.read_parquet(io.BytesIO(payload))


def iter_url_photos(
    table: str,
    url_column: str = "url",
    sha256_column: str | None = None,
    caption_column: str | None = None,
    id_column: str | None = None,
    max_images: int | None = None,
    concurrency: int = 8,
    retries: int = 3,
    backoff_s: float = 1.0,
    timeout_s: float = 30.0,
    issues: list[dict[str, str]] | None = None,
) -> Iterator[RawPhoto]:
    """Photos downloaded from the URLs in a parquet (or csv) table, e.g. Megalith-10M's.

    At most ``concurrency`` downloads run at once (a thread pool); each is retried with back-off
    and checked against ``sha256_column`` when given. Failed downloads, checksum mismatches and
    undecodable bodies are recorded in ``issues`` (reason included) and skipped.
    """
    frame = _read_url_table(table)
    for column in (url_column, sha256_column, caption_column, id_column):
        if column and column not in frame:
            raise SourceError(f"{table}: no column {column!r} (columns: {list(frame.columns)})")
    frame = frame.head(max_images) if max_images else frame
    jobs = []
    for row in frame.itertuples(index=False):
        record = row._asdict()
        url = record[url_column]
        if not isinstance(url, str) or not url.strip():
            _record(issues, "urls", str(url), "empty URL")
            continue
        checksum = record.get(sha256_column) if sha256_column else None
        jobs.append((url.strip(), checksum if isinstance(checksum, str) and checksum else None, record))
    if not jobs:
        raise SourceError(f"{table}: no URLs in column {url_column!r}")
    with ThreadPoolExecutor(max_workers=max(1, int(concurrency))) as pool:
        results = list(pool.map(lambda job: download(job[0], job[1], retries, backoff_s, timeout_s), jobs))
    seen: set[str] = set()
    for (url, _, record), result in zip(jobs, results):
        if result.payload is None:
            _record(issues, "urls", url, result.reason)
            continue
        try:
            image = decode_image(result.payload, "RGB", name=url)
        except Exception as exc:
            _record(issues, "urls", url, str(exc))
            continue
        key = str(record[id_column]) if id_column else hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]
        photo_id = f"url-{key}"
        if photo_id in seen:
            _record(issues, "urls", url, f"duplicate id {photo_id}")
            continue
        seen.add(photo_id)
        caption = record.get(caption_column) if caption_column else None
        yield RawPhoto(photo_id=photo_id, group_id=photo_id, source="urls", source_path=url, image=image,
                       captions=[caption] if isinstance(caption, str) and caption else [])
