"""Export: the split dataset in the forms the field already reads (SEEDS.md, published forms).

Layouts, under data/07_model_output/export/:

- ``imdl/<split>/Tp/<name>.png`` + ``imdl/<split>/Gt/<name>.png`` (IMDL-BenCo folder form,
  forgeries only: its ``ManiDataset`` counts every Tp/Gt pair as tampered), authentic images in
  ``imdl/<split>/Au/<name>.png``, and ``imdl/<split>.json`` (IMDL-BenCo JSON form: ``[Tp path,
  Gt path]``, ``[Au path, "Negative"]`` for authentic). JSON paths are absolute when saved
  (``ImdlListsDataset``): IMDL-BenCo's ``JsonDataset`` opens them as written, from any folder.
- ``brgen/Au/<Source>_<base_id>.png``, ``brgen/Tp/<Generator>_<Kind>_<Source>_<sample_id>.png``,
  ``brgen/Gt/<same>_mask.png`` (0/255) and ``brgen/<split>.json`` (IMDL lists, absolute paths). BR-Gen names
  hold one generator: the LAST one of a multi-turn sample ('_' in names written as '-'); Kind is
  the last turn's region kind (Thing / Stuff / Background).
- ``diffseg30k/<split>/NNNNNNNN.image.png`` + ``NNNNNNNN.mask.png``: the mask holds the class
  index per pixel (0 untouched, k = classes[k]), and ``diffseg30k/labels.json`` names the classes
  and maps every NNNNNNNN to its EditLens item.
- ``hf/<split>.parquet``: Hugging Face datasets-loadable (``load_dataset("parquet",
  data_dir=...)`` / ``data_files``): ``key``, ``image``, ``mask`` (0/255, None for authentic),
  ``label`` (0 authentic, 1 edited), ``label_map`` (class indices) and provenance columns; the
  OpenSDID column set plus EditLens' own.

Authentic items are written under their base image id, so a re-import names them as before.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from pipelines.contract.labels import generator_names
from pipelines.contract.params import ExportParams, params_of
from pipelines.contract.items import item_loaders

logger = logging.getLogger(__name__)

FORMATS = ("imdl", "brgen", "diffseg30k", "hf")


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _joined(values: list[str] | None) -> str:
    """A list column as the published formats write it (docs/data.md): "telea,tiny-sd", '' for none."""
    return ",".join(values or [])


def _escape(field: str, default: str) -> str:
    """A BR-Gen name field: no '_' (the separator)."""
    field = str(field or "").replace("_", "-").strip()
    return field or default


class _Item:
    """One split row with lazy access to its image and label map."""

    def __init__(self, row: Any, sources: dict[str, dict[str, Callable]], label_maps: dict[str, Callable],
                 sample: dict[str, Any], base: dict[str, Any]):
        self.row, self.sample, self.base = row, sample, base
        self._image, self._label = item_loaders(row, sources["edited_images"], label_maps, sources["base_images"],
                                                "export")
        self.name = row.item_id if row.kind == "edited" else row.base_id

    def image(self) -> np.ndarray:
        return np.asarray(self._image())

    def label_map(self) -> np.ndarray:
        if self._label is None:
            return np.zeros(self.image().shape[:2], dtype=np.uint8)
        return np.asarray(self._label()).astype(np.uint8)

    def binary_mask(self) -> np.ndarray:
        return np.where(self.label_map() > 0, 255, 0).astype(np.uint8)

    @property
    def edited(self) -> bool:
        return self.row.kind == "edited"


def _items(splits: pd.DataFrame, edited_images, label_maps, base_images, samples: pd.DataFrame,
           base_manifest: pd.DataFrame, only: list[str] | None) -> list[_Item]:
    sources = {"edited_images": edited_images, "base_images": base_images}
    by_sample = samples.set_index("sample_id").to_dict("index") if len(samples) else {}
    by_base = base_manifest.set_index("base_id").to_dict("index") if len(base_manifest) else {}
    rows = splits if not only else splits[splits["split"].isin(only)]
    items = []
    for row in rows.sort_values(["split", "item_id"]).itertuples(index=False):
        items.append(_Item(row, sources, label_maps, by_sample.get(row.item_id, {}), by_base.get(row.base_id, {})))
    return items


def export_imdl(items: list[_Item]) -> tuple[dict[str, Callable], dict[str, list]]:
    """Forgeries in ``<split>/Tp`` + ``<split>/Gt`` (IMDL-BenCo's ``ManiDataset`` labels every
    Tp/Gt pair as tampered, so authentic images are NOT there); authentic images in
    ``<split>/Au`` (CASIA's folder name; ``ManiDataset`` ignores it), listed in the JSON form as
    ``[Au path, "Negative"]``, the only IMDL-BenCo form that can say "authentic"."""
    files: dict[str, Callable] = {}
    lists: dict[str, list] = {}
    for item in items:
        split = item.row.split
        if item.edited:
            tp, gt = f"{split}/Tp/{item.name}", f"{split}/Gt/{item.name}"
            files[tp], files[gt] = item.image, item.binary_mask
            entry = [f"{tp}.png", f"{gt}.png"]
        else:
            files[f"{split}/Au/{item.name}"] = item.image
            entry = [f"{split}/Au/{item.name}.png", "Negative"]
        lists.setdefault(split, []).append(entry)
    return files, lists


def brgen_names(item: _Item) -> tuple[str, str]:
    """(Tp or Au stem, Gt stem or '') of an item in BR-Gen's naming."""
    source = _escape(item.base.get("source", ""), "Unknown")
    if not item.edited:
        return f"{source}_{item.row.base_id}", ""
    kinds = item.sample.get("region_kinds") or []
    kind = _escape(kinds[-1].capitalize() if kinds else "", "Region")
    stem = f"{_escape(item.row.last_generator, 'Unknown')}_{kind}_{source}_{item.row.item_id}"
    return stem, f"{stem}_mask"


def export_brgen(items: list[_Item]) -> tuple[dict[str, Callable], dict[str, list]]:
    files: dict[str, Callable] = {}
    lists: dict[str, list] = {}
    for item in items:
        stem, mask = brgen_names(item)
        if item.edited:
            files[f"Tp/{stem}"], files[f"Gt/{mask}"] = item.image, item.binary_mask
            entry = [f"Tp/{stem}.png", f"Gt/{mask}.png"]
        else:
            files[f"Au/{stem}"] = item.image
            entry = [f"Au/{stem}.png", "Negative"]
        lists.setdefault(item.row.split, []).append(entry)
    return files, lists


def export_diffseg30k(items: list[_Item], class_names: list[str]) -> tuple[dict[str, Callable], dict[str, Any]]:
    files: dict[str, Callable] = {}
    index: dict[str, Any] = {
        "classes": ["untouched", *class_names],
        "mask_values": "class index per pixel: 0 untouched, k = classes[k] (the last edit wins)",
        "items": {},
    }
    for number, item in enumerate(items):
        key = f"{item.row.split}/{number:08d}"
        files[f"{key}.image"] = item.image
        files[f"{key}.mask"] = item.label_map
        index["items"][key] = {"item_id": item.name, "kind": "edited" if item.edited else "authentic",
                               "base_id": item.row.base_id, "generators": _joined(item.row.generators),
                               "last_generator": item.row.last_generator}
    return files, index


def export_hf(items: list[_Item], class_names: list[str]) -> dict[str, Callable[[], pd.DataFrame]]:
    """One lazily built DataFrame per split (images encoded when the split is saved)."""
    by_split: dict[str, list[_Item]] = {}
    for item in items:
        by_split.setdefault(item.row.split, []).append(item)

    def build(split_items: list[_Item]) -> pd.DataFrame:
        rows = []
        for item in split_items:
            label_map = item.label_map()
            rows.append({
                "key": item.name,
                "image": {"bytes": _png_bytes(item.image()), "path": f"{item.name}.png"},
                "mask": {"bytes": _png_bytes(np.where(label_map > 0, 255, 0).astype(np.uint8)), "path": f"{item.name}_mask.png"}
                if item.edited else None,
                "label": int(item.edited),
                "label_map": {"bytes": _png_bytes(label_map), "path": f"{item.name}_labels.png"} if item.edited else None,
                "split": item.row.split, "kind": item.row.kind, "base_id": item.row.base_id, "group_id": item.row.group_id,
                "generators": _joined(item.row.generators), "last_generator": item.row.last_generator or "",
                "n_turns": int(item.sample.get("n_turns", 0) or 0),
                "edit_types": _joined(item.sample.get("edit_types")),
                "region_kinds": _joined(item.sample.get("region_kinds")),
            })
        frame = pd.DataFrame(rows)
        frame.attrs["editlens"] = {"class_names": ["untouched", *class_names],
                                   "label_map": "class index per pixel: 0 untouched, k = class_names[k]"}
        return frame

    return {split: (lambda s=split_items: build(s)) for split, split_items in by_split.items()}


def export_dataset(
    splits: pd.DataFrame,
    edited_images: dict[str, Callable],
    label_maps: dict[str, Callable],
    base_images: dict[str, Callable],
    filtered_samples: pd.DataFrame,
    base_manifest: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[Any, ...]:
    """Returns (imdl files, imdl lists, brgen files, brgen lists, diffseg30k files, diffseg30k
    index, hf tables) for the formats in ``params.formats`` (None: all); the others are empty.
    Semantic masks are named by the run's label space (``contract.labels.generator_names``). Files
    are lazy: images are read and encoded as they are saved."""
    params = params_of(ExportParams, params)
    formats = list(params.formats or FORMATS)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"export.formats: unknown {unknown}; known: {list(FORMATS)}")
    class_names = generator_names(params.generators) if params.generators else []
    items = _items(splits, edited_images, label_maps, base_images, filtered_samples, base_manifest, params.splits)
    imdl = export_imdl(items) if "imdl" in formats else ({}, {})
    brgen = export_brgen(items) if "brgen" in formats else ({}, {})
    diffseg = export_diffseg30k(items, class_names) if "diffseg30k" in formats else ({}, {})
    hf = export_hf(items, class_names) if "hf" in formats else {}
    logger.info("exporting %d items (%s) as %s", len(items), ", ".join(sorted(set(splits["split"]))), formats)
    return imdl[0], imdl[1], brgen[0], brgen[1], diffseg[0], diffseg[1], hf
