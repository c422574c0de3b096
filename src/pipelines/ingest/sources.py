"""Where real photographs come from: scikit-image's bundled photos, a COCO instances/stuff JSON
with its image folder, or an ImageNet/Places-style folder of class sub-folders.

Each source yields ``RawPhoto`` records; ``nodes.py`` resizes and crops them into base images.
Paths go through fsspec so the same source works on local disk and on S3-compatible storage.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from pipelines.datasets import decode_image

logger = logging.getLogger(__name__)

# Real colour photographs shipped inside scikit-image (no download). Grey, binary and
# synthetic images (camera, coins, horse, colorwheel, logo) are deliberately absent.
SAMPLE_PHOTOS = {
    "astronaut": "astronaut",
    "chelsea": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "motorcycle": "stereo_motorcycle",
    "retina": "retina",
    "hubble": "hubble_deep_field",
    "immunohistochemistry": "immunohistochemistry",
}

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
    """scikit-image's bundled real photographs (``SAMPLE_PHOTOS``), optionally a subset by name."""
    import skimage.data

    names = list(SAMPLE_PHOTOS) if not names else list(names)
    unknown = sorted(set(names) - set(SAMPLE_PHOTOS))
    if unknown:
        raise SourceError(f"unknown sample photo(s) {unknown}; known: {sorted(SAMPLE_PHOTOS)}")
    for name in names:
        loaded = getattr(skimage.data, SAMPLE_PHOTOS[name])()
        views = loaded[:2] if isinstance(loaded, tuple) else (loaded,)
        for view_index, image in enumerate(views):
            suffix = f"-{view_index}" if len(views) > 1 else ""
            yield RawPhoto(
                photo_id=f"{name}{suffix}",
                group_id=name,
                source="sample",
                source_path=f"skimage.data.{SAMPLE_PHOTOS[name]}",
                image=np.ascontiguousarray(image[..., :3]),
            )


def _read_bytes(path: str) -> bytes:
    with fsspec.open(path, "rb") as fh:
        return fh.read()


def iter_coco_photos(
    annotations: str, images: str, max_images: int | None = None, captions: str | None = None
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
    except json.JSONDecodeError as exc:
        raise SourceError(f"{annotations}: not valid JSON ({exc})") from exc
    for key in ("images", "annotations", "categories"):
        if key not in dataset:
            raise SourceError(f"{annotations}: missing the COCO field {key!r}")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
        coco.createIndex()
    caption_index: dict[int, list[str]] = {}
    if captions:
        for ann in json.loads(_read_bytes(captions)).get("annotations", []):
            caption_index.setdefault(ann["image_id"], []).append(ann["caption"])
    categories = {c["id"]: c for c in dataset["categories"]}
    image_ids = sorted(coco.imgs)[: max_images or None]
    for image_id in image_ids:
        info = coco.imgs[image_id]
        path = f"{images.rstrip('/')}/{info['file_name']}"
        try:
            image = decode_image(_read_bytes(path), "RGB", name=path)
        except Exception as exc:  # a single bad photo must not stop the run
            logger.warning("skipping COCO image %s: %s", path, exc)
            continue
        height, width = image.shape[:2]
        anns = []
        for ann in coco.imgToAnns.get(image_id, []):
            if ann.get("iscrowd", 0):
                continue
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


def iter_folder_photos(root: str, max_images: int | None = None) -> Iterator[RawPhoto]:
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
            with fs.open(path, "rb") as fh:
                image = decode_image(fh.read(), "RGB", name=full)
        except Exception as exc:
            logger.warning("skipping %s: %s", full, exc)
            continue
        stem = relative.rsplit(".", 1)[0].replace("/", "-")
        yield RawPhoto(photo_id=f"folder-{stem}", group_id=f"folder-{stem}", source="folder",
                       source_path=full, image=image,
                       category=category)
