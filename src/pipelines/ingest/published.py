"""Readers for the published forms a user brings (SEEDS.md, "Published data forms"):

- ``imdl``: IMDL-BenCo, a JSON list of ``[image, mask]`` (mask ``"Negative"`` = authentic) or a
  folder with ``Tp/`` and ``Gt/`` (or one such folder per split), plus authentic images in
  ``Au/`` when present (CASIA's layout); masks 0/255, decoded as mean over channels > 127.5; an
  all-zero mask means authentic.
- ``brgen``: BR-Gen's ``Au/<Source>_<id>``, ``Tp/<Inpainter>_<Kind>_<Source>_<id>``,
  ``Gt/<same>_mask``; the inpainter and mask kind come from the name, the Tp is linked to its Au
  (its base image, hence its split group); ``<split>.json`` IMDL lists give the published split.
- ``opensdid``: parquet with ``key``, ``image``, ``mask``, ``label`` (0 real, 1 fake); a fake
  without a mask is fully generated (every pixel is the generator's).
- ``diffseg30k``: ``NNNNNNNN.image.png`` / ``NNNNNNNN.mask.png`` pairs (flat or one folder per
  split) or parquet with ``image`` / ``mask`` columns. Mask values are inspected: 0/255 or 0/1 =
  binary, otherwise class indices named by ``class_names`` or a ``labels.json`` beside the pairs.

Each reader yields ``PublishedItem`` records and appends what it cannot use to ``issues``
({"source", "item", "reason"}); nothing here decodes pixels except to inspect masks. Item ids
are the published names as they are: ``nodes.import_published`` makes them valid and unique at
the door (``contract.ids.UniqueIds``), and maps ``base_key`` links the same way.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import fsspec

from pipelines.ingest.sources import IMAGE_SUFFIXES, SourceError, resolve_inside

logger = logging.getLogger(__name__)

PUBLISHED_FORMATS = ("imdl", "brgen", "opensdid", "diffseg30k")
SPLIT_WORDS = ("train", "validation", "val", "test")
_MASK_SUFFIXES = ("_mask", "_gt", "-mask", "-gt", ".mask")


@dataclass
class PublishedItem:
    """One image of a published dataset, before decoding.

    ``image`` / ``mask`` return the stored bytes; ``mask`` is None for authentic images and for
    fully generated fakes (``fully_generated``). ``mask_coding`` is ``binary`` (IMDL rule:
    mean over channels > 127.5) or ``values`` (inspect the single-channel values, DiffSeg30k).
    ``base_key`` links a forgery to the authentic item with that ``item_id`` (BR-Gen's Au).
    """

    item_id: str
    kind: str  # "edited" | "authentic"
    image: Callable[[], bytes]
    mask: Callable[[], bytes] | None
    source: str
    source_path: str
    generator: str = ""
    region_kind: str = ""
    base_key: str = ""
    split: str = ""
    mask_coding: str = "binary"
    fully_generated: bool = False
    classes: list[str] | None = None


def _fs(root: str):
    fs, base = fsspec.core.url_to_fs(root)
    protocol = root.split("://", 1)[0] + "://" if "://" in root else ""
    return fs, base.rstrip("/"), protocol


def _file_reader(fs, path: str, root: str | None = None) -> Callable[[], bytes]:
    """Reads ``path``; with ``root`` on a local disk, refuses it first if it resolves outside
    ``root`` (a symlink out of the dataset's folder), naming both."""
    def read() -> bytes:
        if root is not None and "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
            resolve_inside(path, root, path)
        with fs.open(path, "rb") as fh:
            return fh.read()
    return read


def _stem(path: str) -> str:
    name = posixpath.basename(path)
    return name.rsplit(".", 1)[0] if "." in name else name


def _images_in(fs, folder: str) -> list[str]:
    if not fs.exists(folder):
        return []
    return sorted(p for p in fs.ls(folder, detail=False) if p.lower().endswith(IMAGE_SUFFIXES))


def _record(issues: list[dict[str, str]], source: str, item: str, reason: str) -> None:
    logger.warning("%s: skipping %s: %s", source, item, reason)
    issues.append({"source": source, "item": item, "reason": reason})


def split_from_name(name: str) -> str:
    """'train-00000-of-00001' -> 'train', 'validation.json' -> 'validation'; '' when no split word."""
    head = re.split(r"[-_.]", posixpath.basename(name).lower(), maxsplit=1)[0]
    return head if head in SPLIT_WORDS else ""


# ---------------------------------------------------------------------------------- IMDL-BenCo
def _imdl_json_files(json_cfg: Any) -> list[tuple[str, str]]:
    """[(split, path)] from a path, a list of paths or {split: path}."""
    if isinstance(json_cfg, dict):
        return [(str(k), str(v)) for k, v in json_cfg.items()]
    paths = [json_cfg] if isinstance(json_cfg, str) else list(json_cfg)
    return [(split_from_name(p) or _stem(p), str(p)) for p in paths]


def iter_imdl(root: str | None, json: Any = None, generator: str = "", issues: list | None = None) -> Iterator[PublishedItem]:
    """IMDL-BenCo JSON lists (``json``: path, list, or {split: path}; relative entries are
    resolved against the JSON's folder) or Tp/Gt folders under ``root`` (or ``root/<split>/``).
    Tp/Gt are paired by file stem (a ``_gt`` / ``_mask`` suffix on the mask is ignored)."""
    issues = issues if issues is not None else []
    listed: dict[str, str] = {}  # resolved image path -> the entry that listed it first
    if json:
        for split, path in _imdl_json_files(json):
            fs, _, protocol = _fs(path)
            try:
                with fs.open(fsspec.core.url_to_fs(path)[1], "rb") as fh:
                    entries = _json_load(fh.read(), path)
            except FileNotFoundError as exc:
                raise SourceError(f"{path}: IMDL-BenCo JSON not found") from exc
            if not isinstance(entries, list):
                raise SourceError(f"{path}: an IMDL-BenCo JSON must be a list of [image, mask] pairs")
            folder = posixpath.dirname(fsspec.core.url_to_fs(path)[1])
            roots = [protocol + folder, *([root] if root else [])]
            for index, entry in enumerate(entries):
                where = f"{path}[{index}]"
                if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
                    _record(issues, "imdl", where, f"entry is not an [image, mask] pair of strings: {entry!r}")
                    continue
                negative = entry[1] == "Negative"
                try:  # entries stay inside the JSON's folder (or ingest.imdl.root): no ../../etc/passwd
                    image_path = _inside(entry[0], roots, where)
                    mask_path = None if negative else _inside(entry[1], roots, where)
                except SourceError as exc:
                    _record(issues, "imdl", where, str(exc).split(": ", 1)[1])
                    continue
                if not fs.exists(image_path):
                    _record(issues, "imdl", where, f"image {entry[0]} does not exist")
                    continue
                if mask_path is not None and not fs.exists(mask_path):
                    _record(issues, "imdl", where, f"mask {entry[1]} does not exist")
                    continue
                if image_path in listed:
                    _record(issues, "imdl", where, f"duplicate entry: {entry[0]} is already listed at {listed[image_path]}")
                    continue
                listed[image_path] = where
                yield PublishedItem(
                    item_id=_stem(image_path), kind="authentic" if negative else "edited",
                    image=_file_reader(fs, image_path), mask=None if negative else _file_reader(fs, mask_path),
                    source="imdl", source_path=protocol + image_path, generator=generator or "", split=split,
                )
        return
    if not root:
        raise SourceError("ingest.imdl needs `root` (Tp/Gt folders) or `json` (IMDL-BenCo lists)")
    fs, base, protocol = _fs(root)
    if not fs.exists(base):
        raise SourceError(f"{root}: IMDL-BenCo folder not found")
    folders = [("", base)] if fs.exists(f"{base}/Tp") else [
        (posixpath.basename(p), p) for p in sorted(fs.ls(base, detail=False)) if fs.exists(f"{p}/Tp")]
    if not folders:
        raise SourceError(f"{root}: no Tp/ folder (nor <split>/Tp/ folders) found")
    for split, folder in folders:
        masks = {_strip_mask_suffix(_stem(p)): p for p in _images_in(fs, f"{folder}/Gt")}
        used = set()
        for image_path in _images_in(fs, f"{folder}/Tp"):
            stem = _stem(image_path)
            mask_path = masks.get(stem)
            if mask_path is None:
                _record(issues, "imdl", protocol + image_path, "no Gt mask with the same name")
                continue
            used.add(stem)
            # Authentic or not is decided from the mask (all zero = authentic), as IMDL-BenCo does.
            yield PublishedItem(
                item_id=stem, kind="edited", image=_file_reader(fs, image_path, base),
                mask=_file_reader(fs, mask_path, base), source="imdl", source_path=protocol + image_path,
                generator=generator or "", split=split,
            )
        for stem in sorted(set(masks) - used):
            _record(issues, "imdl", protocol + masks[stem], "Gt mask without a Tp image")
        for image_path in _images_in(fs, f"{folder}/Au"):  # CASIA's / EditLens' authentic folder
            yield PublishedItem(item_id=_stem(image_path), kind="authentic", image=_file_reader(fs, image_path, base),
                                mask=None, source="imdl", source_path=protocol + image_path, split=split)


def _strip_mask_suffix(stem: str) -> str:
    for suffix in _MASK_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _inside(path: str, roots: list[str], where: str) -> str:
    """``path`` from a list resolved inside one of ``roots`` (filesystem path, no protocol)."""
    resolved = resolve_inside(path, roots, where)
    return fsspec.core.url_to_fs(resolved)[1] if "://" in resolved else resolved


def _json_load(payload: bytes, name: str) -> Any:
    """Parsed JSON; SourceError naming ``name`` for invalid JSON and for nesting too deep to read
    (Python's parser recurses: a file of 100k ``[`` would otherwise give a bare RecursionError)."""
    try:
        return json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{name}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise SourceError(f"{name}: JSON nested too deeply to read") from exc


# -------------------------------------------------------------------------------------- BR-Gen
def parse_brgen_name(stem: str) -> dict[str, str] | None:
    """'SDXL_Stuff_COCO_000123' -> {generator: SDXL, kind: stuff, source: COCO, id: 000123};
    None if the name does not have four '_'-separated fields (the id may contain '_')."""
    parts = stem.split("_", 3)
    if len(parts) != 4 or not all(parts):
        return None
    return {"generator": parts[0], "kind": parts[1].lower(), "source": parts[2], "id": parts[3]}


def iter_brgen(root: str, issues: list | None = None) -> Iterator[PublishedItem]:
    """BR-Gen's Au/Tp/Gt layout under ``root``; ``<split>.json`` IMDL lists in ``root`` (if any)
    give each image's published split."""
    issues = issues if issues is not None else []
    fs, base, protocol = _fs(root)
    if not fs.exists(f"{base}/Tp"):
        raise SourceError(f"{root}: no Tp/ folder (BR-Gen layout Au/ Tp/ Gt/)")
    split_of: dict[str, str] = {}
    for path in sorted(p for p in fs.ls(base, detail=False) if p.lower().endswith(".json")):
        split = split_from_name(path) or _stem(path)
        with fs.open(path, "rb") as fh:
            entries = _json_load(fh.read(), protocol + path)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
                split_of[posixpath.basename(entry[0])] = split
    authentic = {_stem(p): p for p in _images_in(fs, f"{base}/Au")}
    for stem, path in authentic.items():
        yield PublishedItem(item_id=stem, kind="authentic", image=_file_reader(fs, path, base), mask=None, source="brgen",
                            source_path=protocol + path, split=split_of.get(posixpath.basename(path), ""))
    masks = {_stem(p): p for p in _images_in(fs, f"{base}/Gt")}
    parsed = []
    for path in _images_in(fs, f"{base}/Tp"):
        stem = _stem(path)
        fields = parse_brgen_name(stem)
        if fields is None:
            _record(issues, "brgen", protocol + path, "name is not <Inpainter>_<Kind>_<Source>_<id>")
            continue
        mask = masks.pop(f"{stem}_mask", None)
        if mask is None:
            _record(issues, "brgen", protocol + path, f"no Gt/{stem}_mask")
            continue
        parsed.append((path, stem, fields, mask))
    ids = [f["id"] for _, _, f, _ in parsed]
    use_short = len(set(ids)) == len(ids)  # several forgeries of one real image share its id
    for path, stem, fields, mask in parsed:
        real = f"{fields['source']}_{fields['id']}"
        # Without its Au image the key still keeps the forgeries of one real image in one split group.
        base_key = real if real in authentic else (_longest_prefix(real, authentic) or real)
        yield PublishedItem(
            item_id=fields["id"] if use_short else stem, kind="edited", image=_file_reader(fs, path, base),
            mask=_file_reader(fs, mask, base), source="brgen", source_path=protocol + path,
            generator=fields["generator"], region_kind=fields["kind"], base_key=base_key,
            split=split_of.get(posixpath.basename(path), ""),
        )
    for stem, path in masks.items():
        _record(issues, "brgen", protocol + path, "Gt mask without a Tp image")


def _longest_prefix(name: str, candidates: dict[str, str]) -> str:
    """The candidate that ``name`` extends with '-...' (EditLens variants '<base>-v<k>'), longest first."""
    best = ""
    for key in candidates:
        if name.startswith(key + "-") and len(key) > len(best):
            best = key
    return best


# ---------------------------------------------------------------------- OpenSDID / parquet forms
def _cell_bytes(value: Any) -> bytes | None:
    """HF Image cells are {"bytes", "path"} structs; plain bytes are accepted too."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value) or None
    return None


def _parquet_files(files: Any) -> list[dict[str, str]]:
    """[{path, generator, split}] from a path, a list of paths, or a list of such dicts."""
    items = [files] if isinstance(files, (str, dict)) else list(files or [])
    out = []
    for item in items:
        entry = {"path": item} if isinstance(item, str) else dict(item)
        entry.setdefault("generator", "")
        entry.setdefault("split", split_from_name(entry["path"]))
        out.append(entry)
    return out


def read_parquet_table(path: str):
    import pyarrow.parquet as pq

    fs, inner = fsspec.core.url_to_fs(path)
    if not fs.exists(inner):
        raise SourceError(f"{path}: parquet file not found")
    with fs.open(inner, "rb") as fh:
        return pq.read_table(io.BytesIO(fh.read()))


def iter_opensdid(files: Any, generator: str = "", issues: list | None = None) -> Iterator[PublishedItem]:
    """OpenSDID-style parquet: ``key``, ``image``, ``mask``, ``label`` (0 real / 1 fake). Per-file
    ``generator`` / ``split`` may be given ({path, generator, split}); the split defaults to the
    file name's leading word (train / val / validation / test)."""
    issues = issues if issues is not None else []
    entries = _parquet_files(files)
    if not entries:
        raise SourceError("ingest.opensdid.files names no parquet file")
    for entry in entries:
        table = read_parquet_table(entry["path"])
        missing = {"image", "label"} - set(table.column_names)
        if missing:
            raise SourceError(f"{entry['path']}: no column(s) {sorted(missing)} (OpenSDID: key, image, mask, label)")
        meta = _hf_metadata(table)
        rows = table.to_pylist()
        for index, row in enumerate(rows):
            key = str(row.get("key") if row.get("key") is not None else f"{_stem(entry['path'])}-{index}")
            where = f"{entry['path']}[{key}]"
            image = _cell_bytes(row.get("image"))
            if image is None:
                _record(issues, "opensdid", where, "no image bytes")
                continue
            label, mask = row.get("label"), _cell_bytes(row.get("mask"))
            if label not in (0, 1):
                _record(issues, "opensdid", where, f"label {label!r} is neither 0 (real) nor 1 (fake)")
                continue
            label_map = _cell_bytes(row.get("label_map"))  # EditLens' own export: semantic labels
            gen = row.get("last_generator") or entry["generator"] or generator or ""
            if label == 0:
                yield PublishedItem(item_id=key, kind="authentic", image=lambda b=image: b, mask=None,
                                    source="opensdid", source_path=where, split=row.get("split") or entry["split"],
                                    base_key="")
                continue
            if label_map is not None and meta.get("class_names"):
                mask_reader, coding, classes = (lambda b=label_map: b), "values", list(meta["class_names"])
            else:
                mask_reader, coding, classes = ((lambda b=mask: b) if mask is not None else None), "binary", None
            yield PublishedItem(
                item_id=key, kind="edited", image=lambda b=image: b, mask=mask_reader, source="opensdid",
                source_path=where, generator=str(gen), split=row.get("split") or entry["split"],
                mask_coding=coding, classes=classes, fully_generated=mask_reader is None,
                base_key=str(row.get("base_id") or ""), region_kind=str(row.get("region_kinds") or "").split(",")[-1],
            )


def _hf_metadata(table) -> dict[str, Any]:
    """EditLens' extra schema metadata (``editlens`` key): class names of the label_map column."""
    raw = (table.schema.metadata or {}).get(b"editlens")
    return json.loads(raw) if raw else {}


# ------------------------------------------------------------------------------------ DiffSeg30k
def iter_diffseg30k(root: str | None = None, files: Any = None, class_names: list[str] | None = None,
                    issues: list | None = None) -> Iterator[PublishedItem]:
    """``NNNNNNNN.image.png`` / ``NNNNNNNN.mask.png`` pairs under ``root`` (flat or ``<split>/``),
    or parquet ``files`` with ``image`` and ``mask`` columns. Class names: ``class_names``, else a
    ``labels.json`` in ``root`` ({"classes": [...], "items": {"<split>/<NNNNNNNN>": {item_id, ...}}})."""
    issues = issues if issues is not None else []
    if files:
        for entry in _parquet_files(files):
            table = read_parquet_table(entry["path"])
            if not {"image", "mask"} <= set(table.column_names):
                raise SourceError(f"{entry['path']}: DiffSeg30k parquet needs image and mask columns")
            for index, row in enumerate(table.to_pylist()):
                where = f"{entry['path']}[{index}]"
                image, mask = _cell_bytes(row.get("image")), _cell_bytes(row.get("mask"))
                if image is None or mask is None:
                    _record(issues, "diffseg30k", where, "missing image or mask bytes")
                    continue
                yield PublishedItem(item_id=f"{index:08d}", kind="edited", image=lambda b=image: b,
                                    mask=lambda b=mask: b, source="diffseg30k", source_path=where,
                                    split=entry["split"], mask_coding="values", classes=class_names)
        return
    if not root:
        raise SourceError("ingest.diffseg30k needs `root` (NNNNNNNN.image.png pairs) or `files` (parquet)")
    fs, base, protocol = _fs(root)
    if not fs.exists(base):
        raise SourceError(f"{root}: DiffSeg30k folder not found")
    index: dict[str, Any] = {}
    if fs.exists(f"{base}/labels.json"):
        with fs.open(f"{base}/labels.json", "rb") as fh:
            index = _json_load(fh.read(), f"{root}/labels.json")
    classes = list(class_names) if class_names else index.get("classes")
    items = index.get("items", {})
    pairs = sorted(p for p in fs.find(base) if p.endswith(".image.png"))
    if not pairs:
        raise SourceError(f"{root}: no NNNNNNNN.image.png files")
    for path in pairs:
        relative = path[len(base):].lstrip("/")
        number = posixpath.basename(path)[: -len(".image.png")]
        split = posixpath.dirname(relative)
        mask_path = path[: -len(".image.png")] + ".mask.png"
        if not fs.exists(mask_path):
            _record(issues, "diffseg30k", protocol + path, "no matching .mask.png")
            continue
        info = items.get(f"{split}/{number}" if split else number, {})
        kind = info.get("kind", "edited")
        yield PublishedItem(
            item_id=str(info.get("item_id", number)), kind="authentic" if kind == "authentic" else "edited",
            image=_file_reader(fs, path, base), mask=None if kind == "authentic" else _file_reader(fs, mask_path, base),
            source="diffseg30k", source_path=protocol + path, split=split, mask_coding="values", classes=classes,
            base_key=str(info.get("base_id", "")) if kind != "authentic" else "",
        )
