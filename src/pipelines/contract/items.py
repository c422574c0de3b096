"""Reading the items a split table names: the image and its label map as arrays."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

Loader = dict[str, Callable[[], np.ndarray]]


def load_split_items(
    splits: pd.DataFrame, split: str, edited_images: Loader, label_maps: Loader, base_images: Loader,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], pd.DataFrame]:
    """Return ([(image (H,W,3) uint8, label_map (H,W) uint8)], the matching rows) for ``split``.

    Authentic items get an all-zero label map. Raises ValueError if the split is empty or names
    an image that is not in the datasets.
    """
    rows = splits[splits["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"split {split!r} has no items (splits present: {sorted(splits['split'].unique())})")
    sources = {"edited_images": edited_images, "base_images": base_images}
    items = []
    for row in rows.itertuples():
        loader = sources[row.image_dataset]
        if row.image_key not in loader:
            raise ValueError(f"split table names {row.image_dataset}/{row.image_key}, which does not exist")
        image = loader[row.image_key]()
        if row.kind == "authentic":
            label_map = np.zeros(image.shape[:2], dtype=np.uint8)
        else:
            label_map = label_maps[row.label_key]()
        items.append((image, label_map))
    return items, rows
