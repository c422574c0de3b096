"""Masks in tables: COCO run-length encoding as a JSON string (``base_annotations.rle``)."""

from __future__ import annotations

import json

import numpy as np
from pycocotools import mask as mask_utils


def encode_rle(mask: np.ndarray) -> str:
    """(H,W) bool/uint8 mask -> ``{"size": [H, W], "counts": "<COCO compressed counts>"}`` as JSON."""
    rle = mask_utils.encode(np.asfortranarray(mask))
    return json.dumps({"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")})


def decode_rle(rle_json: str) -> np.ndarray:
    """Inverse of ``encode_rle``: (H,W) bool mask."""
    rle = json.loads(rle_json)
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)
