"""Reading the items a split table names: the image and its label map as arrays.

A split row names its image by catalog dataset (``image_dataset``: ``edited_images`` or
``base_images``) and key, and its label map by ``label_key`` in ``label_maps``;
``item_loaders`` is the one place that resolves those names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

Loader = dict[str, Callable[[], np.ndarray]]


def item_loaders(row: Any, edited_images: Mapping[str, Callable], label_maps: Mapping[str, Callable],
                 base_images: Mapping[str, Callable], where: str = "split table",
                 ) -> tuple[Callable[[], np.ndarray], Callable[[], np.ndarray] | None]:
    """(image loader, label map loader or None for an authentic item) of split row ``row`` (a
    namedtuple or Series with ``item_id``, ``kind``, ``image_dataset``, ``image_key``,
    ``label_key``). Raises ValueError naming ``where`` and the item when a name does not resolve."""
    sources = {"edited_images": edited_images, "base_images": base_images}
    if row.image_dataset not in sources:
        raise ValueError(f"{where}: item {row.item_id} names image dataset {row.image_dataset!r}; "
                         f"known: {sorted(sources)}")
    images = sources[row.image_dataset]
    if row.image_key not in images:
        raise ValueError(f"{where}: item {row.item_id} names {row.image_dataset}/{row.image_key}, which does not exist")
    if row.kind == "authentic":
        return images[row.image_key], None
    if row.label_key not in label_maps:
        raise ValueError(f"{where}: item {row.item_id} names label_maps/{row.label_key}, which does not exist")
    return images[row.image_key], label_maps[row.label_key]


def load_split_items(
    splits: pd.DataFrame, split: str, edited_images: Loader, label_maps: Loader, base_images: Loader,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], pd.DataFrame]:
    """Return ([(image (H,W,3) uint8, label_map (H,W) uint8)], the matching rows) for ``split``.

    Authentic items get an all-zero label map. Raises ValueError if the split is empty or names
    an image or label map that is not in the datasets (``item_loaders``).
    """
    rows = splits[splits["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"split {split!r} has no items (splits present: {sorted(splits['split'].unique())})")
    items = []
    for row in rows.itertuples():
        image_loader, label_loader = item_loaders(row, edited_images, label_maps, base_images)
        image = image_loader()
        label_map = np.zeros(image.shape[:2], dtype=np.uint8) if label_loader is None else label_loader()
        items.append((image, label_map))
    return items, rows
