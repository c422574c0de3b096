"""Where the default binary detector's false alarms sit, and what test-time flips and a higher
pixel threshold would change (issue 19; a benchmark, not a test).

Reads a project's trained ``detector_binary`` and its validation split (as
``benchmarks/default_detector.py`` leaves them in ``PROJECT/variants/NAME``), predicts every
validation image once plainly and once averaged with its horizontal flip, and prints, per photo
group and over the split, the edited-pixel IoU and the share of untouched pixels called edited at
thresholds 0.5 / 0.6 / 0.7 on p(edited).

The thresholds are READ here, not chosen: a threshold picked on these numbers would be tuned on
the validation split the report scores. Usage:

    python benchmarks/default_detector_probe.py PROJECT/variants/NAME
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from models.detectors import detector_from_state
from pipelines.datasets import SafetensorsCheckpointDataset

THRESHOLDS = (0.5, 0.6, 0.7)


def _load(project: Path, row) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 image and (H, W) bool edited mask of one split row."""
    if row.kind == "edited":
        image = Image.open(project / f"data/04_feature/edited_images/{row.image_key}.png")
        edited = np.array(Image.open(project / f"data/04_feature/label_maps/{row.label_key}.png")) > 0
        return np.array(image.convert("RGB")), edited
    image = np.array(Image.open(project / f"data/02_intermediate/base_images/{row.image_key}.png").convert("RGB"))
    return image, np.zeros(image.shape[:2], bool)


def probe(project: Path) -> pd.DataFrame:
    """One row per (tta, threshold, photo group): tp, fp, fn and untouched pixel counts."""
    checkpoint = SafetensorsCheckpointDataset(filepath=str(project / "data/06_models/detector_binary.safetensors")).load()
    model = detector_from_state(checkpoint["state"], checkpoint["config"]["detector"]).eval()
    splits = pd.read_parquet(project / "data/05_model_input/splits.parquet")
    counts: dict[tuple, np.ndarray] = {}
    for row in splits[splits.split == "val"].itertuples():
        image, edited = _load(project, row)
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            plain = model(x).softmax(1)[0, 1].numpy()
            flipped = model(x.flip(-1)).softmax(1)[0, 1].flip(-1).numpy()
        for tta, prob in (("none", plain), ("hflip", (plain + flipped) / 2)):
            for threshold in THRESHOLDS:
                pred = prob > threshold
                key = (tta, threshold, row.group_id)
                counts[key] = counts.get(key, 0) + np.array(
                    [(pred & edited).sum(), (pred & ~edited).sum(), (~pred & edited).sum(), (~edited).sum()])
    return pd.DataFrame([dict(tta=k[0], threshold=k[1], group=k[2], tp=v[0], fp=v[1], fn=v[2], untouched=v[3])
                         for k, v in counts.items()])


def _rates(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["edited IoU"] = frame.tp / (frame.tp + frame.fp + frame.fn).clip(lower=1)
    frame["untouched called edited"] = frame.fp / frame.untouched.clip(lower=1)
    return frame


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__.rsplit("Usage:", 1)[1])
        return 2
    torch.set_num_threads(1)
    rows = probe(Path(args[0]))
    groups = _rates(rows[rows.threshold == 0.5])
    print(groups[["tta", "group", "edited IoU", "untouched called edited"]].to_markdown(index=False, floatfmt=".3f"))
    total = _rates(rows.groupby(["tta", "threshold"], as_index=False)[["tp", "fp", "fn", "untouched"]].sum())
    print(total[["tta", "threshold", "edited IoU", "untouched called edited"]].to_markdown(index=False, floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
