"""Where real photographs come from: scikit-image's bundled photos, a COCO instances/stuff JSON
with its image folder, an ImageNet/Places-style folder of class sub-folders, or a table of image
URLs (Megalith-10M, OpenSDI's source of real photos, publishes a parquet of URLs).

Each source yields ``RawPhoto`` records; ``nodes.py`` resizes and crops them into base images.
Paths go through fsspec so the same source works on local disk and on S3-compatible storage.
Files that cannot be read are skipped and, when the caller passes an ``issues`` list, recorded in
it as {"source", "item", "reason"}.
"""

from __future__ import annotations

import errno
import hashlib
import io
import ipaddress
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from pipelines.contract.ids import SAFE_ID, UniqueIds, safe_id  # noqa: F401  (re-exported: the door of every source)
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

    ``annotations``: list of {"category", "supercategory", "isthing", "rle"} (a compressed COCO
    RLE at the photo's own size; or "mask" (H,W) bool) - read them with ``annotation_mask``. ``group_id`` ties together photos that must stay in one split
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
    """A source's configuration or files are unusable; the message names the file and the problem.

    ``issues``: the items quarantined before the failure ({"source", "item", "reason"}), so a run
    that stops still writes its quarantine page (``pipelines.hooks``)."""

    def __init__(self, message: str, issues: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.issues = list(issues or [])


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


_ERRNO_REASONS = {errno.ENOENT: "file not found", errno.EACCES: "permission denied", errno.EPERM: "permission denied",
                  errno.ELOOP: "symlink loop (too many levels of symbolic links)", errno.EISDIR: "is a folder, not a file",
                  errno.ENOTDIR: "a parent of the path is not a folder"}


def short_reason(exc: BaseException, item: str = "") -> str:
    """One short, specific reason for a quarantined item: no repeat of ``item`` (the issues table
    has it in its own column), no ``<... object at 0x...>`` reprs, OS errors by name not by errno."""
    if isinstance(exc, OSError) and exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    text = str(exc)
    for prefix in (item, item.split("://", 1)[-1], getattr(exc, "filename", None)):
        if prefix and text.startswith(f"{prefix}: "):
            text = text[len(prefix) + 2:]
    text = re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "", text)
    return re.sub(r"\[Errno \d+\] ", "", text).strip() or type(exc).__name__


# ------------------------------------------------------------------------------------------ COCO
MAX_JSON_DEPTH = 512  # COCO needs 5 levels; a deeper file is refused before it costs memory
_OPENS, _CLOSES = ("start_map", "start_array"), ("end_map", "end_array")


def _json_error(path: str, exc: BaseException) -> SourceError:
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return SourceError(f"{path}: file not found")
    return SourceError(f"{path}: not valid JSON ({short_reason(exc, path)})")


def scan_json_object(path: str, build: tuple[str, ...] = (), stream: str | None = None,
                     on_item: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """One streaming pass (ijson events) over the JSON object in ``path``.

    Returns {key: value} for the top-level keys in ``build`` that are present; each item of the
    top-level list ``stream`` is built and handed to ``on_item`` one at a time (``stream`` maps to
    True when it was a list, False when it was something else). Memory: one item or built value
    at a time. Raises SourceError naming the file: not found, invalid JSON, not an object, or
    nested deeper than ``MAX_JSON_DEPTH`` (refused as it is read: no recursion, no blow-up).
    """
    import ijson

    values: dict[str, Any] = {}
    key, builder, depth, fresh = None, None, 0, False
    try:
        with fsspec.open(path, "rb") as fh:
            for event, value in ijson.basic_parse(fh, use_float=True):
                if event in _OPENS:
                    depth += 1
                    if depth > MAX_JSON_DEPTH:
                        raise SourceError(f"{path}: JSON nested more than {MAX_JSON_DEPTH} levels deep; refused")
                if depth <= 1 and key is None and event not in ("map_key", "end_map"):
                    if depth == 1 and event == "start_map":
                        continue
                    raise SourceError(f"{path}: not a JSON object (COCO files are {{\"images\": [...], ...}})")
                if depth == 1 and event in ("map_key", "end_map"):
                    key, fresh = value, True
                    depth -= event == "end_map"
                    continue
                first, fresh = fresh, False
                if key == stream and first:
                    values[stream] = event == "start_array"
                if key == stream and values[stream] and depth >= 2 and not (depth == 2 and event in ("start_array", "end_array")):
                    builder = builder or ijson.ObjectBuilder()
                    builder.event(event, value)
                    if depth == 2 or (event in _CLOSES and depth == 3):
                        on_item(builder.value)
                        builder = None
                elif key in build:
                    builder = builder or ijson.ObjectBuilder()
                    builder.event(event, value)
                    if depth == 1 or (event in _CLOSES and depth == 2):
                        values[key], builder = builder.value, None
                depth -= event in _CLOSES
    except (OSError, ValueError, ijson.JSONError) as exc:
        raise _json_error(path, exc) from exc
    return values


def _coco_list(path: str, found: dict[str, Any], key: str) -> list:
    """A top-level list of a COCO file, checked."""
    if key not in found:
        raise SourceError(f"{path}: missing the COCO field {key!r}")
    if not isinstance(found[key], list):
        raise SourceError(f"{path}: the COCO field {key!r} must be a list")
    return found[key]


def _coco_images(path: str, entries: list, issues: list | None) -> dict[Any, dict[str, Any]]:
    """image id -> image entry; entries without a usable id are reported and dropped."""
    images: dict[Any, dict[str, Any]] = {}
    for index, info in enumerate(entries):
        if not isinstance(info, dict) or "id" not in info:
            _record(issues, "coco", f"{path}#images[{index}]", "image entry without an 'id'")
        elif not isinstance(info["id"], (int, str)) or isinstance(info["id"], bool):
            _record(issues, "coco", f"{path}#images[{index}]", f"image id {info['id']!r} is neither a number nor a string")
        elif info["id"] in images:
            _record(issues, "coco", f"{path}#images[{index}]", f"image id {info['id']!r} is listed twice")
        else:
            images[info["id"]] = info
    return images


def _coco_rle(ann: dict[str, Any], info: dict[str, Any], where: str, issues: list | None) -> dict | None:
    """One annotation as a compressed RLE at its image's JSON size; None (recorded) if unusable."""
    from pycocotools import mask as mask_utils

    height, width = info.get("height"), info.get("width")
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        return None  # the image's own size check reports it once
    problem = _annotation_problem(ann, width, height)
    if problem:
        _record(issues, "coco", where, problem)
        if not problem.startswith("note:"):
            return None
        ann = _clip_polygons(ann, width, height)
    seg = ann["segmentation"]
    try:
        if isinstance(seg, list):
            return mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        if isinstance(seg["counts"], list):
            return mask_utils.frPyObjects(seg, height, width)
        counts = seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"]
        return {"size": list(seg["size"]), "counts": counts}
    except Exception as exc:  # pycocotools raises TypeError / ValueError on bad counts
        _record(issues, "coco", where, f"unreadable segmentation ({short_reason(exc)})")
        return None


def _coco_annotations(path: str, images: dict[Any, dict[str, Any]], issues: list | None) -> dict[Any, list[dict]]:
    """image id -> [{id, category_id, rle}] with every polygon / RLE turned into a compressed RLE
    as it streams by: memory grows with the RLE bytes, never with full-size masks or the JSON's
    number lists. Crowd and unusable annotations are left out (unusable ones recorded)."""
    by_image: dict[Any, list[dict]] = {}
    counter = iter(range(1 << 62))

    def take(ann: Any) -> None:
        index = next(counter)
        missing = [k for k in ("id", "image_id", "category_id", "segmentation") if not isinstance(ann, dict) or k not in ann]
        where = f"{path}#annotation={ann.get('id', f'[{index}]') if isinstance(ann, dict) else f'[{index}]'}"
        if missing:
            _record(issues, "coco", where, f"annotation without the field(s) {missing}")
            return
        info = images.get(ann["image_id"]) if isinstance(ann["image_id"], (int, str)) else None
        if info is None:
            _record(issues, "coco", where, f"annotation for image id {ann['image_id']}, which is not in 'images'")
            return
        rle = None if ann.get("iscrowd", 0) else _coco_rle(ann, info, where, issues)
        if rle is not None:
            by_image.setdefault(ann["image_id"], []).append({"id": ann.get("id"), "category_id": ann["category_id"],
                                                             "rle": rle})

    found = scan_json_object(path, stream="annotations", on_item=take)
    if "annotations" not in found:
        raise SourceError(f"{path}: missing the COCO field 'annotations'")
    if not found["annotations"]:
        raise SourceError(f"{path}: the COCO field 'annotations' must be a list")
    return by_image


def annotation_mask(annotation: dict[str, Any]) -> np.ndarray:
    """(H, W) bool mask of a ``RawPhoto`` annotation, decoded from its RLE when asked for (one at a
    time, so a photo with thousands of annotations never holds thousands of full-size masks)."""
    if "mask" in annotation:
        return np.asarray(annotation["mask"], dtype=bool)
    from pycocotools import mask as mask_utils

    return mask_utils.decode(annotation["rle"]).astype(bool)


def _coco_captions(captions: str | None) -> dict[Any, list[str]]:
    index: dict[Any, list[str]] = {}

    def take(ann: Any) -> None:
        if isinstance(ann, dict) and isinstance(ann.get("caption"), str) and isinstance(ann.get("image_id"), (int, str)):
            index.setdefault(ann["image_id"], []).append(ann["caption"])

    if captions:
        scan_json_object(captions, stream="annotations", on_item=take)
    return index


def iter_coco_photos(
    annotations: str, images: str, max_images: int | None = None, captions: str | None = None,
    issues: list[dict[str, str]] | None = None,
) -> Iterator[RawPhoto]:
    """COCO-format instances (and/or stuff) JSON plus its image folder, streamed (ijson).

    Memory: the image entries, the categories and one compressed RLE per annotation; masks are
    decoded one annotation at a time (``annotation_mask``), so COCO train2017 (448 MB, 860k
    annotations) fits. Image ids may be numbers or strings (ordered numbers first); any id becomes
    a valid photo id ``coco-<safe_id(id)>`` (``UniqueIds``). Things vs stuff: a category's
    ``isthing`` when present (panoptic JSON), else COCO's convention (ids 1-91 are things).
    Crowd annotations are skipped. A bad image or annotation is recorded in ``issues`` and
    skipped; a missing, invalid or too deeply nested JSON raises ``SourceError`` naming it.
    """
    found = scan_json_object(annotations, build=("images", "categories"))
    entries = _coco_images(annotations, _coco_list(annotations, found, "images"), issues)
    categories = {c["id"]: c for c in _coco_list(annotations, found, "categories")
                  if isinstance(c, dict) and isinstance(c.get("id"), (int, str)) and "name" in c}
    by_image = _coco_annotations(annotations, entries, issues)
    caption_index = _coco_captions(captions)
    ids = UniqueIds("coco", issues, prefix="coco-")
    ordered = sorted(entries, key=lambda v: (isinstance(v, str), v))
    for image_id in ordered[: max_images or None]:
        info = entries[image_id]
        where = f"{annotations}#image={image_id}"
        if not isinstance(info.get("file_name"), str) or not info["file_name"]:
            _record(issues, "coco", where, "image entry has no 'file_name'")
            continue
        item = f"{images.rstrip('/')}/{info['file_name']}"
        try:
            path = resolve_inside(info["file_name"], images, item)
            image = decode_image(_read_bytes(path), "RGB", name=path)
        except Exception as exc:  # a single bad photo must not stop the run
            _record(issues, "coco", item, short_reason(exc, item))
            continue
        photo_id = ids(image_id, where)
        yield RawPhoto(photo_id=photo_id, group_id=photo_id, source="coco", source_path=path, image=image,
                       annotations=_photo_annotations(by_image.pop(image_id, []), info, image.shape[:2], categories,
                                                      path, issues),
                       captions=caption_index.get(image_id, []))


def _photo_annotations(anns: list[dict], info: dict, shape: tuple[int, int], categories: dict, path: str,
                       issues: list | None) -> list[dict[str, Any]]:
    """The annotations of one decoded photo as {category, supercategory, isthing, rle}; none
    when the JSON's size is not the file's (the polygons would be misplaced)."""
    from pycocotools import mask as mask_utils

    height, width = shape
    if anns and (info.get("height"), info.get("width")) != (height, width):
        _record(issues, "coco", path, f"note: the JSON says {info.get('width')}x{info.get('height')} but the file is "
                                      f"{width}x{height}; its annotations are not used")
        return []
    out = []
    for ann in anns:
        category = categories.get(ann["category_id"])
        if category is None:
            logger.warning("%s: annotation %s has unknown category %s; skipped", path, ann["id"], ann["category_id"])
            continue
        if not mask_utils.area(ann["rle"]):
            continue
        out.append({"category": category["name"], "supercategory": category.get("supercategory", ""),
                    "isthing": bool(category.get("isthing", category["id"] <= 91)), "rle": ann["rle"]})
    return out


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


_NOT_PHOTOS = {".gif": "GIF (a 256-colour palette) is not used as a base photo; convert it to PNG to use it"}


def _walk_files(fs: Any, folder: str, on_error: Callable[[OSError, str], None], seen: set[str]) -> Iterator[str]:
    """Every file under ``folder`` (fsspec's own walk drops errors below the top folder). A
    folder reached twice through symlinks is listed once."""
    try:
        listing = sorted(fs.ls(folder, detail=True), key=lambda info: info["name"])
    except OSError as exc:
        on_error(exc, folder)
        return
    for info in listing:
        path = info["name"].rstrip("/")
        if info["type"] != "directory" or path == folder.rstrip("/"):
            yield path
            continue
        real = os.path.realpath(path) if "file" in _protocols(fs) else path
        if real in seen:
            on_error(OSError(errno.ELOOP, "folder reached twice through symlinks"), path)
            continue
        seen.add(real)
        yield from _walk_files(fs, path, on_error, seen)


def _protocols(fs: Any) -> tuple:
    return fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)


def _folder_files(fs: Any, base: str, root: str, issues: list | None) -> list[str]:
    """Every image file under ``base``, sorted. Sub-folders that cannot be listed and files that
    are not images (by suffix) are recorded with their reason: nothing is left out silently."""
    protocol = root.split("://", 1)[0] + "://" if "://" in root else ""

    def unreadable(exc: OSError, folder: str) -> None:
        _record(issues, "folder", protocol + folder, f"folder not readable: {short_reason(exc)}")

    files = []
    start = os.path.realpath(base) if "file" in _protocols(fs) else base
    for path in _walk_files(fs, base, unreadable, {start}):
        name = path.rsplit("/", 1)[-1]
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if suffix in IMAGE_SUFFIXES:
            files.append(path)
        else:
            _record(issues, "folder", protocol + path, _NOT_PHOTOS.get(
                suffix, f"not an image file name (suffix {suffix or 'none'}; read: {', '.join(IMAGE_SUFFIXES)})"))
    return sorted(files)


def iter_folder_photos(root: str, max_images: int | None = None,
                       issues: list[dict[str, str]] | None = None) -> Iterator[RawPhoto]:
    """An ImageNet/Places-style tree ``root/<class>/<image>``; the class folder becomes the category.

    Photo ids are ``folder-<safe_id(relative path without suffix, '/' as '-')>``, unique in the
    run (``UniqueIds``: ``x.png`` + ``x.jpg`` or ``cls/x.png`` + ``cls-x.png`` keep both, the
    second with ``-2`` and a note). Unreadable files and folders, symlinks out of the root and
    non-image files are recorded in ``issues`` with a short reason and skipped.
    """
    fs, base = fsspec.core.url_to_fs(root)
    if not fs.exists(base):
        raise SourceError(f"{root}: image folder not found")
    files = _folder_files(fs, base, root, issues)
    if not files:
        raise SourceError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) found", issues=issues)
    if max_images is not None and int(max_images) < 1:
        raise SourceError(f"{root}: ingest.folder.max_images must be >= 1 or null, got {max_images}")
    protocol = root.split("://", 1)[0] + "://" if "://" in root else ""
    ids = UniqueIds("folder", issues, prefix="folder-")
    for path in files[: max_images or None]:
        relative = path[len(base):].lstrip("/")
        parts = relative.split("/")
        full = protocol + path
        try:
            if not protocol or protocol == "file://":
                resolve_inside(path, base, full)  # a symlink out of the root is refused
            with fs.open(path, "rb") as fh:
                image = decode_image(fh.read(), "RGB", name=full)
        except Exception as exc:
            _record(issues, "folder", full, short_reason(exc, full))
            continue
        photo_id = ids(relative.rsplit(".", 1)[0].replace("/", "-"), full)
        yield RawPhoto(photo_id=photo_id, group_id=photo_id, source="folder", source_path=full, image=image,
                       category=parts[0] if len(parts) > 1 else "")


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


class _Refused(Exception):
    """A URL that is never fetched (scheme, private address); not retried."""


def check_url(url: str, allow_private: bool = False) -> None:
    """Raise ``_Refused`` unless ``url`` is http(s) and (unless ``allow_private``) every address
    its host resolves to is public: no ``file://``, no loopback, private, link-local (cloud
    metadata), multicast or reserved address. Redirects are checked the same way."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() not in ("http", "https"):
        raise _Refused(f"URL scheme {parsed.scheme or 'none'!r} is not allowed (only http and https)")
    if not parsed.hostname:
        raise _Refused("URL has no host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise _Refused(f"host {parsed.hostname} does not resolve ({short_reason(exc)})") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global:
            raise _Refused(f"host {parsed.hostname} is a private or loopback address ({address}); "
                           "set ingest.urls.allow_private: true to fetch from it")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl, self.allow_private)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url: str, deadline: float, timeout_s: float, max_bytes: int, allow_private: bool) -> bytes:
    """One GET that ends by ``deadline`` (time.monotonic) whatever the server's pace: the body is
    read in whatever pieces arrive and the deadline checked after each (a read waits at most
    ``timeout_s``, never longer than the time left when the connection opened)."""
    opener = urllib.request.build_opener(_CheckedRedirects(allow_private))
    request = urllib.request.Request(url, headers={"User-Agent": "EditLens/0.1 (+dataset ingest)"})
    chunks, size = [], 0
    with opener.open(request, timeout=max(0.01, min(timeout_s, deadline - time.monotonic()))) as response:
        while size <= max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("deadline")
            chunk = response.read1(min(1 << 16, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def download(url: str, sha256: str | None = None, retries: int = 3, backoff_s: float = 1.0,
             timeout_s: float = 30.0, max_bytes: int = 64 << 20, deadline_s: float = 120.0,
             allow_private: bool = False) -> Download:
    """GET ``url`` with up to ``retries`` retries on network errors, timeouts and retryable HTTP
    statuses (exponential back-off from ``backoff_s``); check the body against ``sha256`` when
    given. ``timeout_s`` bounds each wait for the server, ``deadline_s`` the whole item
    (attempts and back-off together). Only http(s), and public hosts unless ``allow_private``
    (``check_url``). Never raises: a failure comes back with its reason."""
    reason = ""
    deadline = time.monotonic() + float(deadline_s)
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(backoff_s * 2 ** (attempt - 1), max(0.0, deadline - time.monotonic())))
        if time.monotonic() >= deadline:
            return Download(url, None, f"no complete download within the {deadline_s:g} s deadline"
                            + (f" (last: {reason})" if reason else ""), attempt)
        try:
            check_url(url, allow_private)
            payload = _fetch(url, deadline, timeout_s, max_bytes, allow_private)
        except _Refused as exc:
            return Download(url, None, f"refused: {exc}", attempt + 1)
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code} {exc.reason}"
            if exc.code not in RETRYABLE_STATUS:
                return Download(url, None, reason, attempt + 1)
            continue
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            if time.monotonic() >= deadline:
                return Download(url, None, f"no complete download within the {deadline_s:g} s deadline", attempt + 1)
            detail = getattr(exc, "reason", exc)
            reason = f"network error: {detail if isinstance(detail, str) else short_reason(detail)}"
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
    deadline_s: float = 120.0,
    allow_private: bool = False,
) -> Iterator[RawPhoto]:
    """Photos downloaded from the URLs in a parquet (or csv) table, e.g. Megalith-10M's.

    At most ``concurrency`` downloads run at once (a thread pool); each is retried with back-off,
    ends within ``deadline_s`` and is checked against ``sha256_column`` when given. Only http(s)
    URLs of public hosts are fetched (``allow_private`` for loopback / private networks). Failed
    downloads, refused URLs, checksum mismatches and undecodable bodies are recorded in
    ``issues`` with a short reason and skipped. Ids: ``url-<safe_id(id_column)>`` or
    ``url-<sha1(url)[:16]>``, unique in the run (``UniqueIds``).
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
        raise SourceError(f"{table}: no URLs in column {url_column!r}", issues=issues)

    def fetch(job: tuple) -> Download:
        return download(job[0], job[1], retries, backoff_s, timeout_s, deadline_s=deadline_s, allow_private=allow_private)

    with ThreadPoolExecutor(max_workers=max(1, int(concurrency))) as pool:
        results = list(pool.map(fetch, jobs))
    ids = UniqueIds("urls", issues, prefix="url-")
    for (url, _, record), result in zip(jobs, results):
        if result.payload is None:
            _record(issues, "urls", url, result.reason)
            continue
        try:
            image = decode_image(result.payload, "RGB", name=url)
        except Exception as exc:
            _record(issues, "urls", url, short_reason(exc, url))
            continue
        photo_id = ids(record[id_column] if id_column else hashlib.sha1(url.encode("utf-8")).hexdigest()[:16], url)
        caption = record.get(caption_column) if caption_column else None
        yield RawPhoto(photo_id=photo_id, group_id=photo_id, source="urls", source_path=url, image=image,
                       captions=[caption] if isinstance(caption, str) and caption else [])
