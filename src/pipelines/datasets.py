"""Kedro datasets for EditLens' own file kinds: lossless PNG arrays and safetensors checkpoints.

Both write through fsspec, so the same catalog entry works on a local disk and on S3-compatible
storage (MinIO). Writes are all-or-nothing: on a local disk the bytes go to a temporary file in
the same folder that is renamed into place; on object stores a single PUT makes the object appear
only when complete. A reader therefore never sees a half-written image or checkpoint.

``register_filesystems`` (run by a Kedro hook before the catalog exists) also makes every ``s3://``
and every local write of the catalog all-or-nothing, including the kedro-datasets types (parquet, JSON, text, figures): see
``AllOrNothingS3FileSystem`` and ``AllOrNothingLocalFileSystem``. A process killed mid-write
leaves at most a hidden ``.tmp-<name>.<random>.part`` file, which no dataset suffix matches.
"""

from __future__ import annotations

import copy
import io
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import Any

import cv2
import fsspec
import numpy as np
import pandas as pd
from fsspec.implementations.local import LocalFileOpener, LocalFileSystem
from kedro.io.core import AbstractDataset, DatasetError, get_filepath_str, get_protocol_and_path
from kedro_datasets.pandas import ParquetDataset
from kedro_datasets.partitions import PartitionedDataset
from PIL import Image

from models.cache import ModelCache, process_cache
from pipelines.io.shards import parse_shard, shard_batches

# Refuse decompression bombs before decoding: 8k x 8k is far beyond the 1024 px the seeds use.
MAX_IMAGE_PIXELS = 8192 * 8192


def _filesystem(filepath: str, credentials: dict[str, Any] | None, fs_args: dict[str, Any] | None):
    protocol, path = get_protocol_and_path(filepath)
    if protocol == "file":
        fs_args = {**(fs_args or {}), "auto_mkdir": True}
    fs = fsspec.filesystem(protocol, **(credentials or {}), **(fs_args or {}))
    return fs, protocol, path


def _all_or_nothing_s3_filesystem() -> type:
    """Build ``AllOrNothingS3FileSystem`` (s3fs is imported only when an s3:// path is used).

    fsspec's buffered files commit in ``close()``, and ``with fs.open(path, "wb") as f`` closes
    them even when the body raised. On S3 that uploads whatever was buffered: a dataset whose
    serialisation fails half-way (``json.dump`` of a non-serialisable value, ``to_parquet`` of a
    bad column) replaces the previous good object with a truncated or empty one, and a retry
    would read it. These files instead discard the upload (aborting a multipart upload if one was
    started) when they are closed while an exception is propagating, so the previous object stays.
    """
    import sys

    from s3fs import S3FileSystem
    from s3fs.core import S3File

    class AllOrNothingS3File(S3File):
        def close(self) -> None:
            if not self.closed and "r" not in self.mode:
                in_flight = sys.exc_info()[1]
                # An exception already being handled when the file was opened is not a failure of
                # this write (a report written from an `except` block must still land).
                if in_flight is not None and in_flight is not getattr(self, "_exception_at_open", None):
                    self.discard()
                    self.closed = True
                    return
            super().close()

    class AllOrNothingS3FileSystem(S3FileSystem):
        """s3fs with all-or-nothing file writes; registered for ``s3://`` and ``s3a://``."""

        def _open(self, path, mode="rb", *args, **kwargs):
            file = super()._open(path, mode, *args, **kwargs)
            if "r" not in mode and type(file) is S3File:
                file.__class__ = AllOrNothingS3File
                file._exception_at_open = sys.exc_info()[1]
            return file

    for cls in (AllOrNothingS3FileSystem, AllOrNothingS3File):  # importable by name, so picklable
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    return AllOrNothingS3FileSystem


def __getattr__(name: str) -> Any:
    if name == "AllOrNothingS3FileSystem":
        cls = _all_or_nothing_s3_filesystem()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class AllOrNothingLocalFileOpener(LocalFileOpener):
    """A local file opened for writing (``w``/``wb``) that goes to a hidden temporary file in the
    same folder (``.tmp-<name>.<random>.part``) and is renamed into place when closed normally.
    Closed while an exception propagates, it is deleted and the previous file stays; killed
    (SIGKILL), it leaves only the temporary file, which no dataset suffix matches."""

    def _open(self) -> None:
        atomic = (self.f is None and "w" in self.mode and "+" not in self.mode and self.autocommit
                  and not self.compression)
        if not atomic:
            super()._open()
            return
        folder = os.path.dirname(self.path) or "."
        fd, self._tmp_path = tempfile.mkstemp(dir=folder, prefix=f".tmp-{os.path.basename(self.path)}.", suffix=".part")
        os.close(fd)
        self.f = open(self._tmp_path, mode=self.mode)
        self._exception_at_open = sys.exc_info()[1]

    def _finish(self, failed: bool) -> None:
        tmp, self._tmp_path = self._tmp_path, None
        try:
            self.f.close()
        finally:
            if failed:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            else:
                os.chmod(tmp, 0o666 & ~_UMASK)  # the mode a plain open() gives, before it is visible
                os.replace(tmp, self.path)

    def close(self) -> None:
        if getattr(self, "_tmp_path", None) is None or self.f is None or self.f.closed:
            return super().close()
        in_flight = sys.exc_info()[1]
        # An exception already being handled when the file was opened is not a failure of this write.
        self._finish(failed=in_flight is not None and in_flight is not self._exception_at_open)

    def __exit__(self, exc_type, exc_value, traceback):
        if getattr(self, "_tmp_path", None) is None:
            return super().__exit__(exc_type, exc_value, traceback)
        self._incontext = False
        self._finish(failed=exc_value is not None)


def _read_umask() -> int:
    mask = os.umask(0o022)  # read once, at import: os.umask is process-wide
    os.umask(mask)
    return mask


_UMASK = _read_umask()


class AllOrNothingLocalFileSystem(LocalFileSystem):
    """fsspec's local file system with all-or-nothing writes (``AllOrNothingLocalFileOpener``);
    registered for ``file://`` and ``local://``, so every local write of the catalog (parquet,
    JSON, text, figures) is atomic too, not only PNGs and checkpoints."""

    def _open(self, path, mode="rb", block_size=None, **kwargs):
        path = self._strip_protocol(path)
        if self.auto_mkdir and ("w" in mode or "x" in mode or "a" in mode):
            self.makedirs(self._parent(path), exist_ok=True)
        return AllOrNothingLocalFileOpener(path, mode, fs=self, **kwargs)


def register_filesystems() -> None:
    """Make every ``s3://`` and local write through fsspec all-or-nothing (idempotent).

    Called by ``pipelines.hooks.FilesystemHooks.after_context_created``, before Kedro builds the
    catalog, and by code that writes outside a Kedro session (flows, tests); importing this module
    registers nothing. s3 by import path, so s3fs loads only when a catalog entry really lives on
    s3://; by class if something already loaded s3fs' own class (fsspec then looks no further than
    its loaded registry).
    """
    for protocol in ("s3", "s3a"):
        if protocol in fsspec.registry:
            fsspec.register_implementation(protocol, __getattr__("AllOrNothingS3FileSystem"), clobber=True)
        else:
            fsspec.register_implementation(protocol, f"{__name__}.AllOrNothingS3FileSystem", clobber=True)
    for protocol in ("file", "local"):
        fsspec.register_implementation(protocol, AllOrNothingLocalFileSystem, clobber=True)


def write_bytes_atomically(fs: Any, protocol: str, path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see either the old object or the complete new one."""
    if protocol == "file":
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        # ".tmp-<name>.<random>.part": hidden, and never matched by a dataset's filename_suffix, so a
        # file left behind by a SIGKILL mid-write is never listed as a partition (nor by manifests).
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".tmp-{os.path.basename(path)}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide the file from other users
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        fs.pipe_file(path, payload)


class PNGDataset(AbstractDataset[np.ndarray, np.ndarray]):
    """One image as a numpy array, stored as a lossless PNG.

    ``load`` returns (H, W, 3) uint8 RGB for ``mode: RGB`` or (H, W) uint8 for ``mode: L``
    (label maps and masks); palette, RGBA, 16-bit and grey inputs are converted, never rejected.
    ``save`` accepts (H, W) or (H, W, 3) uint8 arrays.
    """

    def __init__(
        self,
        *,
        filepath: str,
        mode: str | None = None,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if mode not in (None, "RGB", "L"):
            raise DatasetError(f"PNGDataset mode must be RGB, L or null, got {mode!r} for {filepath}")
        self._fs, self._protocol, self._path = _filesystem(filepath, credentials, fs_args)
        self._filepath = filepath
        self._mode = mode
        self.metadata = metadata

    def load(self) -> np.ndarray:
        path = get_filepath_str(PurePosixPath(self._path), self._protocol)
        with self._fs.open(path, "rb") as fh:
            payload = fh.read()
        return decode_image(payload, self._mode, name=self._filepath)

    def save(self, data: np.ndarray) -> None:
        array = np.asarray(data)
        if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
            raise DatasetError(
                f"PNGDataset {self._filepath}: expected (H,W) or (H,W,3) uint8, got {array.shape} {array.dtype}"
            )
        # OpenCV's encoder (zlib level 1): ~20% faster than Pillow's at the same size.
        ok, encoded = cv2.imencode(".png", array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise DatasetError(f"PNGDataset {self._filepath}: PNG encoding failed")
        path = get_filepath_str(PurePosixPath(self._path), self._protocol)
        write_bytes_atomically(self._fs, self._protocol, path, encoded.tobytes())

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(PurePosixPath(self._path), self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "mode": self._mode}


def _image_size_from_header(payload: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR without PIL, so even PIL's own bomb check never decodes."""
    if payload[:8] == b"\x89PNG\r\n\x1a\n" and len(payload) >= 24 and payload[12:16] == b"IHDR":
        return int.from_bytes(payload[16:20], "big"), int.from_bytes(payload[20:24], "big")
    return None


def _bomb_error(name: str, width: int, height: int) -> DatasetError:
    return DatasetError(
        f"{name}: {width}x{height} pixels exceeds the {MAX_IMAGE_PIXELS} pixel limit "
        "(possible decompression bomb); refused before decoding"
    )


def decode_image(payload: bytes, mode: str | None, name: str, exif_transpose: bool | None = None) -> np.ndarray:
    """Decode image bytes to a uint8 array; ``name`` is used in error messages.

    ``mode`` RGB gives (H, W, 3): grey, palette, CMYK, 16-bit and RGBA/LA/PA inputs are converted
    (transparency composited on white), never rejected. ``mode`` L gives (H, W). The EXIF
    orientation is applied (``exif_transpose``; default: for RGB, not for masks and label maps).

    Raises ``DatasetError`` naming the file for empty, truncated, non-image or oversized inputs;
    images over ``MAX_IMAGE_PIXELS`` are refused from their header, before any pixel is decoded.
    """
    if not payload:
        raise DatasetError(f"{name}: file is empty (0 bytes)")
    size = _image_size_from_header(payload)
    if size and size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise _bomb_error(name, *size)
    if exif_transpose is None:
        exif_transpose = mode != "L"
    try:
        with Image.open(io.BytesIO(payload)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise _bomb_error(name, img.width, img.height)
            img.load()
            if exif_transpose and img.getexif().get(0x0112, 1) not in (0, 1):  # EXIF Orientation
                from PIL import ImageOps

                img = ImageOps.exif_transpose(img)  # a rotated / mirrored copy
            if mode == "L":
                if img.mode in ("I;16", "I;16B", "I"):
                    return np.asarray(img).astype(np.uint8)
                return np.asarray(img.convert("L"))
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = (np.asarray(img).astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
                return np.stack([grey] * 3, axis=-1)
            if img.mode == "F":
                grey = np.asarray(img).astype(np.float64).round().clip(0, 255).astype(np.uint8)
                return np.stack([grey] * 3, axis=-1)
            if img.mode in ("RGBA", "LA", "P", "PA", "RGBa", "La") or "transparency" in img.info:
                # Composite transparency on white, the way viewers show it.
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
            return np.asarray(img.convert("RGB"))
    except DatasetError:
        raise
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"{name}: refused before decoding, possible decompression bomb ({exc})") from exc
    except OSError as exc:
        text = str(exc).lower()
        kind = _signature(payload)
        if "cannot identify" in text and not kind:
            problem = "not an image file (format not recognised)"
        elif "truncated" in text or "ended" in text or "broken" in text:
            problem = f"truncated {kind or 'image'} data"
        else:
            problem = f"corrupt {kind or 'image'} data"
        detail = "" if "cannot identify" in text else f" ({_plain(exc)})"
        raise DatasetError(f"{name}: not a readable image: {problem}{detail}") from exc
    except Exception as exc:  # PIL raises several unrelated types for bad files
        kind = _signature(payload)
        raise DatasetError(f"{name}: not a readable image: corrupt {kind or 'image'} data ({_plain(exc)})") from exc


_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP",
               b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def _signature(payload: bytes) -> str:
    """The format a file's first bytes claim ('' if none): a file that starts like a PNG but does
    not decode is a corrupt PNG, not 'not an image'."""
    if payload[:4] == b"RIFF" and payload[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES.items() if payload.startswith(magic)), "")


def _plain(exc: BaseException) -> str:
    """An exception's text without object reprs (``<_io.BytesIO object at 0x...>``)."""
    import re

    text = re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "", str(exc)).strip()
    return text or type(exc).__name__


class ParallelPartitionedDataset(PartitionedDataset):
    """``PartitionedDataset`` whose ``save`` writes partitions from a small thread pool.

    Everything else is kedro-datasets' own (listing, lazy loading, ``overwrite``, suffixes). Each
    partition is still materialised (a lazy loader called), encoded and written by its own
    dataset instance, but ``save_workers`` of them at a time: PNG encoding (OpenCV) and file or S3
    I/O release the GIL, so on a 2-core machine 70 images are saved in ~60 % of the serial time,
    and on S3 the uploads overlap their round trips. At most ``save_workers`` partitions are in
    memory at once. A failing partition stops the save with an error naming it; partitions that
    were already written stay (every write is all-or-nothing on its own).

    Args: those of ``PartitionedDataset``, plus ``save_workers`` (default: CPU count, at most 8;
    1 = kedro-datasets' serial save) and ``allow_empty`` (an empty or missing folder loads as {}
    instead of raising: a node's output that may legitimately hold nothing, e.g. no
    ``train.variants``).
    """

    def __init__(self, *, save_workers: int | None = None, allow_empty: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        workers = min(8, os.cpu_count() or 1) if save_workers is None else int(save_workers)
        if workers < 1:
            raise DatasetError(f"{kwargs.get('path')}: save_workers must be >= 1, got {save_workers}")
        self._save_workers = workers
        self._allow_empty = bool(allow_empty)

    def load(self) -> dict[str, Any]:
        if self._allow_empty and not self._filesystem.exists(self._normalized_path):
            return {}
        try:
            return super().load()
        except DatasetError as exc:
            if self._allow_empty and "No partitions found" in str(exc):
                return {}
            raise

    def save(self, data: dict[str, Any]) -> None:
        """Save every partition. Partition ids that would leave the folder are refused before
        anything is deleted. On a local disk with ``overwrite`` the new partitions are written
        into a hidden sibling folder that replaces the old one only when all are saved: a failing
        partition leaves the previous folder whole, so it still agrees with the tables saved
        with it (on S3 the old objects are removed first, as kedro-datasets does)."""
        for partition_id in data:
            try:
                self._partition_to_path(partition_id)
            except Exception as exc:
                raise DatasetError(f"{self._path}: partition id {partition_id!r} is not a name inside the folder "
                                   f"({exc}); nothing was written") from exc
        if self._overwrite and self._protocol == "file":
            return self._save_beside_then_swap(data)
        return self._save_partitions(data)

    def _save_beside_then_swap(self, data: dict[str, Any]) -> None:
        import glob
        import shutil
        import uuid

        final = self._filesystem._strip_protocol(self._normalized_path).rstrip("/")
        parent, name = os.path.split(final)
        # A save killed earlier (SIGKILL, power loss) leaves its hidden staging folder behind; the
        # next save of the same folder removes it. Two saves of one folder at once are already
        # last-writer-wins, so this takes nothing a live save could still use for its result.
        for stale in glob.glob(os.path.join(glob.escape(parent), f".tmp-{glob.escape(name)}.*.part")) + \
                glob.glob(os.path.join(glob.escape(parent), f".tmp-{glob.escape(name)}.*.old")):
            shutil.rmtree(stale, ignore_errors=True)
        staging = os.path.join(parent, f".tmp-{name}.{uuid.uuid4().hex[:8]}.part")
        staged = copy.copy(self)
        staged._path, staged._overwrite, staged._cached_partitions = staging, False, None
        try:
            staged._save_partitions(data)
            os.makedirs(staging, exist_ok=True)  # an empty save still replaces the folder
            trash = staging[:-len(".part")] + ".old"
            if os.path.exists(final):
                os.rename(final, trash)
            os.rename(staging, final)
            shutil.rmtree(trash, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            self._invalidate_caches()

    def _save_partitions(self, data: dict[str, Any]) -> None:
        if self._save_workers == 1 or len(data) < 2:
            return super().save(data)
        if self._overwrite and self._filesystem.exists(self._normalized_path):
            self._filesystem.rm(self._normalized_path, recursive=True)

        def save_one(partition_id: str) -> None:
            partition_data = data[partition_id]
            kwargs = copy.deepcopy(self._dataset_config)
            kwargs[self._filepath_arg] = self._join_protocol(self._partition_to_path(partition_id))
            dataset = self._dataset_type(**kwargs)
            try:
                if callable(partition_data) and self._save_lazily:
                    partition_data = partition_data()
                dataset.save(partition_data)
            except Exception as exc:
                raise DatasetError(f"{self._path}: saving partition {partition_id!r} failed: {exc}") from exc

        with ThreadPoolExecutor(self._save_workers, thread_name_prefix="partition-save") as pool:
            futures = [pool.submit(save_one, partition_id) for partition_id in sorted(data)]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            finally:
                self._invalidate_caches()

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "save_workers": self._save_workers}


def array_cells_to_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every parquet list column's cells as Python lists (pyarrow hands them to
    pandas as 1-D numpy arrays, whose truth value is ambiguous and which compare element-wise);
    a null cell becomes []. Changes ``frame`` in place and returns it."""
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object and any(isinstance(v, np.ndarray) for v in values):
            frame[column] = [v.tolist() if isinstance(v, np.ndarray) else ([] if v is None else v) for v in values]
    return frame


class TableDataset(ParquetDataset):
    """``pandas.ParquetDataset`` whose list columns (``pipelines.contract.schemas``' ``list[...]``
    kinds) load as Python lists, as the stage that saved them built them."""

    def load(self) -> pd.DataFrame:
        return array_cells_to_lists(super().load())


class ShardedParquetDataset(TableDataset):
    """``pandas.ParquetDataset`` that a shard task reads only its share of.

    With ``shard: {index, count}`` (in the catalog from the run's runtime parameters, e.g.
    ``shard: ${runtime_params:inpaint.shard, null}``), ``load`` streams the file a row batch at a
    time and keeps the rows whose ``shard_key`` column falls in that shard
    (``pipelines.io.shards.shard_of``): a generation worker's memory for the table grows with its
    shard, not with the dataset. Without a shard it is ``TableDataset``, and
    ``save`` always is (a shard task never writes these tables)."""

    def __init__(self, *, shard: dict[str, Any] | None = None, shard_key: str = "base_id", **kwargs: Any) -> None:

        super().__init__(**kwargs)
        try:
            self._shard = parse_shard(shard)
        except ValueError as exc:
            raise DatasetError(f"{kwargs.get('filepath')}: {exc}") from exc
        self._shard_key = shard_key

    def load(self) -> pd.DataFrame:
        if self._shard is None:
            return super().load()
        import pyarrow as pa


        path = get_filepath_str(self._get_load_path(), self._protocol)
        columns = self._load_args.get("columns")
        with self._fs.open(path, "rb") as handle:
            batches = list(shard_batches(handle, self._shard, self._shard_key, columns=columns, name=path))
            if not batches:  # an empty shard: the schema, no rows
                import pyarrow.parquet as pq

                schema = pq.ParquetFile(handle).schema_arrow
                schema = pa.schema([schema.field(c) for c in columns]) if columns else schema
                return schema.empty_table().to_pandas()
        return array_cells_to_lists(pa.Table.from_batches(batches).to_pandas())

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "shard": self._shard, "shard_key": self._shard_key}


class SafetensorsCheckpointDataset(AbstractDataset[dict, dict]):
    """A detector checkpoint: ``{"state": dict[str, Tensor], "config": dict}`` in one .safetensors file.

    The config (architecture, task, class names, training history) travels as JSON in the
    safetensors header metadata, so a checkpoint is self-describing and loading it never unpickles.
    """

    def __init__(
        self,
        *,
        filepath: str,
        credentials: dict[str, Any] | None = None,
        fs_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._fs, self._protocol, self._path = _filesystem(filepath, credentials, fs_args)
        self._filepath = filepath
        self.metadata = metadata

    def load(self) -> dict:
        from safetensors.torch import load as load_safetensors
        from safetensors import safe_open

        path = get_filepath_str(PurePosixPath(self._path), self._protocol)
        with self._fs.open(path, "rb") as fh:
            payload = fh.read()
        state = load_safetensors(payload)
        with tempfile.NamedTemporaryFile(suffix=".safetensors") as tmp:
            tmp.write(payload)
            tmp.flush()
            with safe_open(tmp.name, framework="pt") as reader:
                header = reader.metadata() or {}
        if "config" not in header:
            raise DatasetError(f"{self._filepath}: safetensors file has no 'config' metadata; not an EditLens checkpoint")
        return {"state": state, "config": json.loads(header["config"])}

    def save(self, data: dict) -> None:
        from safetensors.torch import save as save_safetensors

        state = {k: v.detach().cpu().contiguous() for k, v in data["state"].items()}
        payload = save_safetensors(state, metadata={"config": json.dumps(data["config"], default=str)})
        path = get_filepath_str(PurePosixPath(self._path), self._protocol)
        write_bytes_atomically(self._fs, self._protocol, path, payload)

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(PurePosixPath(self._path), self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}


# The one model cache of this process (``ModelCacheDataset``): shard tasks that a worker process
# runs one after another, each with its own Kedro session and catalog, share the models it holds.
_PROCESS_MODELS = process_cache()


class ModelCacheDataset(AbstractDataset[ModelCache, None]):
    """The process's ``models.cache.ModelCache``, handed to the nodes that load models (perceive's
    perceivers and VLMs, filter's quality scorers) as an ordinary node input, so a test hands them
    a cache holding tiny models instead of patching a builder.

    Args:
        max_entries: the cache's one eviction rule: at most this many models (least recently used
            dropped first); None = no limit. Loading applies it to the process's cache.
    """

    def __init__(self, max_entries: int | None = None, metadata: dict[str, Any] | None = None):
        self._max_entries = max_entries
        self.metadata = metadata

    def load(self) -> ModelCache:
        if self._max_entries is not None:  # null leaves a limit another stage set (inpaint.max_pipelines_loaded)
            _PROCESS_MODELS.set_max_entries(self._max_entries)
        return _PROCESS_MODELS

    def save(self, data: None) -> None:
        raise DatasetError("model_cache is an input only: nodes get models from it, they never save it")

    def _describe(self) -> dict[str, Any]:
        return {"max_entries": self._max_entries, "models": len(_PROCESS_MODELS)}
