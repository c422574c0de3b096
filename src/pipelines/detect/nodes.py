"""Run a trained detector on any photos: every readable image of a folder, an S3 prefix or a single
file gets a predicted label map coloured by generator (an overlay PNG), the image score and the
share of its pixels attributed to each generator. Unreadable files are skipped with the reason,
never fatal (as in ingest).

The checkpoint is the train stage's (``detector_semantic`` by default: it names the generator of
each pixel; a binary checkpoint works too and reports one "edited" class).
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

import fsspec
import numpy as np
from PIL import Image, ImageDraw

from models.detectors import detector_from_state
from models.detectors.training import image_score_definition, predict
from pipelines.datasets import decode_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Class colours (class 0, untouched, is left as it is): one distinct colour per generator label.
PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]], dtype=np.uint8)
LEGEND_HEIGHT = 18


def list_inputs(location: str, storage: dict[str, Any] | None = None) -> tuple[list[str], list[dict[str, str]]]:
    """Image files under ``location`` (a folder or prefix, searched recursively, or one file), sorted,
    as fsspec URLs; and the files skipped for their suffix as {"file", "reason"}.

    Raises FileNotFoundError naming ``location`` when nothing exists there.
    """
    fs, path = fsspec.core.url_to_fs(location, **(storage or {}))
    protocol = location.split("://", 1)[0] + "://" if "://" in location else ""
    if fs.isfile(path):
        return [location], []
    if not fs.isdir(path):
        raise FileNotFoundError(f"detect.input: {location} is neither a file nor a folder / prefix")
    files, skipped = [], []
    for found in sorted(fs.find(path)):
        url = protocol + found if protocol else found
        if posixpath.basename(found).startswith("."):
            continue
        if found.lower().endswith(IMAGE_SUFFIXES):
            files.append(url)
        else:
            skipped.append({"file": url, "reason": f"not an image file (suffix; known: {', '.join(IMAGE_SUFFIXES)})"})
    return files, skipped


def _fit(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` downscaled (area) so its long side is at most ``max_side`` (None: unchanged)."""
    height, width = image.shape[:2]
    if not max_side or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def overlay(image: np.ndarray, label_map: np.ndarray, names: list[str], alpha: float = 0.55) -> np.ndarray:
    """(H, W, 3) image with each predicted class k > 0 blended in ``PALETTE[k]`` and a legend strip
    (one colour swatch + name per class) below: (H + LEGEND_HEIGHT, W, 3) uint8."""
    out = image.astype(np.float32)
    edited = label_map > 0
    colours = PALETTE[label_map % len(PALETTE)].astype(np.float32)
    out[edited] = (1 - alpha) * out[edited] + alpha * colours[edited]
    canvas = Image.new("RGB", (image.shape[1], image.shape[0] + LEGEND_HEIGHT), "white")
    canvas.paste(Image.fromarray(out.round().astype(np.uint8)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x = 2
    for k, name in enumerate(names[1:], start=1):
        draw.rectangle([x, image.shape[0] + 4, x + 10, image.shape[0] + 14], fill=tuple(int(c) for c in PALETTE[k % len(PALETTE)]))
        draw.text((x + 13, image.shape[0] + 3), name, fill="black")
        x += 13 + int(draw.textlength(name)) + 10
    return np.asarray(canvas)


def _result_key(url: str, root: str) -> str:
    """A partition name for ``url``: its path under the input root, suffix dropped, '/' -> '__'."""
    inner = url.split("://", 1)[-1]
    base = root.split("://", 1)[-1].rstrip("/")
    relative = inner[len(base) + 1:] if inner.startswith(base + "/") else posixpath.basename(inner)
    return posixpath.splitext(relative)[0].replace("/", "__")


def detect_edits(checkpoint: dict[str, Any], params: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, dict], dict]:
    """The detect node.

    Args:
        checkpoint: {"state", "config"} of a trained detector (the catalog's checkpoint dataset).
        params: ``detect``: ``input`` (folder, prefix or file; local or s3://...), ``storage``
            (fsspec options for the input), ``max_side`` (long side images are analysed at;
            null = full size), ``pixel_threshold`` (a pixel counts as edited when 1 - p(untouched)
            exceeds it).
    Returns:
        (overlays {key: (H + 18, W, 3) uint8}, results {key: {"file", "image_score", "edited_share",
        "generator_shares": {name: share of the image's pixels}, "analysed_size": [H, W], ...}},
        index {"input", "model", "image_score", "n_images", "n_skipped", "skipped": [{"file", "reason"}]}).
    Raises:
        FileNotFoundError: ``input`` does not exist. ValueError: no image could be read.
    """
    config = checkpoint["config"]
    names = list(config.get("class_names") or [])
    model = detector_from_state(checkpoint["state"], config["detector"])
    threshold = float(params.get("pixel_threshold", 0.5))
    files, skipped = list_inputs(str(params["input"]), params.get("storage"))
    overlays, results = {}, {}
    for url in files:
        try:
            with fsspec.open(url, "rb", **(params.get("storage") or {})) as fh:
                image = decode_image(fh.read(), "RGB", name=url)
        except Exception as exc:  # one bad file must not stop the others
            logger.warning("skipping %s: %s", url, exc)
            skipped.append({"file": url, "reason": str(exc)})
            continue
        image = _fit(image, params.get("max_side"))
        probabilities, scores = predict(model, [image], batch_size=1)
        label_map = probabilities[0].argmax(axis=0).astype(np.uint8)
        label_map[(1.0 - probabilities[0][0]) <= threshold] = 0
        key = _result_key(url, str(params["input"]))
        overlays[key] = overlay(image, label_map, names)
        shares = np.bincount(label_map.ravel(), minlength=len(names)) / label_map.size
        results[key] = {"file": url, "image_score": float(scores[0]), "edited_share": float(1.0 - shares[0]),
                        "generator_shares": {name: float(shares[k]) for k, name in enumerate(names) if k > 0},
                        "analysed_size": list(image.shape[:2]), "task": config.get("task"),
                        "model": config["detector"].get("name")}
        logger.info("%s: image score %.3f, edited %.1f %%", url, scores[0], 100 * results[key]["edited_share"])
    if not results:
        raise ValueError(f"detect.input {params['input']}: no readable image among {len(files)} file(s); "
                         f"skipped: {skipped[:5]}")
    index = {"input": str(params["input"]), "model": config["detector"].get("name"), "task": config.get("task"),
             "image_score": image_score_definition(model), "class_names": names, "pixel_threshold": threshold,
             "n_images": len(results), "n_skipped": len(skipped), "skipped": skipped}
    return overlays, results, index
