"""Ingest: real photos -> square base images (short side resized, centre-cropped) + a manifest."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm

from pipelines.ingest.sources import (
    RawPhoto,
    SourceError,
    iter_coco_photos,
    iter_folder_photos,
    iter_sample_photos,
)

logger = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "base_id", "group_id", "source", "kind", "source_path", "category", "caption",
    "orig_height", "orig_width", "height", "width", "crop", "sha256",
]
ANNOTATION_COLUMNS = ["base_id", "ann_index", "category", "supercategory", "isthing", "area_ratio", "rle"]


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


def _photos(params: dict[str, Any]):
    source = params["source"]
    if source == "sample":
        return iter_sample_photos(params.get("sample", {}).get("names"))
    if source == "coco":
        cfg = params["coco"]
        return iter_coco_photos(cfg["annotations"], cfg["images"], cfg.get("max_images"), cfg.get("captions"))
    if source == "folder":
        cfg = params["folder"]
        return iter_folder_photos(cfg["root"], cfg.get("max_images"))
    raise SourceError(f"ingest.source must be one of sample, coco, folder; got {source!r}")


def ingest_photos(params: dict[str, Any]) -> tuple[dict[str, Callable[[], np.ndarray]], pd.DataFrame, pd.DataFrame]:
    """Read the configured source and make ``image_size`` square base images.

    Returns (base_images: base_id -> (S,S,3) uint8, base_manifest, base_annotations). The
    annotations' masks are cropped exactly like their image and stored as COCO RLE strings.
    ``sha256`` is over the base image's raw RGB bytes; duplicate pixels are dropped with a warning.
    """
    image_size = int(params["image_size"])
    if image_size < 32:
        raise ValueError(f"ingest.image_size must be >= 32, got {image_size}")
    crops = int(params.get("crops_per_photo", 1))
    min_side = int(params.get("min_side", 0))
    rng = np.random.default_rng(params.get("seed", 0))
    images: dict[str, np.ndarray] = {}
    rows, ann_rows = [], []
    seen: dict[str, str] = {}
    for photo in tqdm(_photos(params), desc="ingest", unit="photo"):
        photo: RawPhoto
        height, width = photo.image.shape[:2]
        if min(height, width) < min_side:
            logger.warning("skipping %s: %dx%d is smaller than ingest.min_side=%d", photo.source_path, width, height, min_side)
            continue
        for crop_index, box in enumerate(crop_boxes(height, width, crops, rng)):
            base = np.ascontiguousarray(square_crop(photo.image, box, image_size))
            digest = hashlib.sha256(base.tobytes()).hexdigest()
            base_id = f"{photo.photo_id}-c{crop_index}" if crops > 1 else photo.photo_id
            if digest in seen:
                logger.warning("skipping %s: same pixels as %s", base_id, seen[digest])
                continue
            seen[digest] = base_id
            images[base_id] = base
            rows.append({
                "base_id": base_id, "group_id": photo.group_id, "source": photo.source, "kind": "real",
                "source_path": photo.source_path, "category": photo.category,
                "caption": photo.captions[0] if photo.captions else "",
                "orig_height": height, "orig_width": width, "height": image_size, "width": image_size,
                "crop": json.dumps(list(box)), "sha256": digest,
            })
            for ann_index, ann in enumerate(photo.annotations):
                mask = square_crop(ann["mask"].astype(np.uint8), box, image_size, nearest=True).astype(bool)
                if not mask.any():
                    continue
                rle = mask_utils.encode(np.asfortranarray(mask))
                ann_rows.append({
                    "base_id": base_id, "ann_index": ann_index, "category": ann["category"],
                    "supercategory": ann.get("supercategory", ""), "isthing": bool(ann["isthing"]),
                    "area_ratio": float(mask.mean()),
                    "rle": json.dumps({"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}),
                })
    if not images:
        raise SourceError(f"ingest source {params['source']!r} produced no images")
    logger.info("ingested %d base images from %d groups", len(images), len({r["group_id"] for r in rows}))
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    annotations = pd.DataFrame(ann_rows, columns=ANNOTATION_COLUMNS)
    return _lazy(images), manifest, annotations


def _lazy(arrays: dict[str, np.ndarray]) -> dict[str, Callable[[], np.ndarray]]:
    return {key: (lambda value=value: value) for key, value in arrays.items()}


def decode_rle(rle_json: str) -> np.ndarray:
    """Inverse of the RLE strings in ``base_annotations``: (H,W) bool mask."""
    rle = json.loads(rle_json)
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)
