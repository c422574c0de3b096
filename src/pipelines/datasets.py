"""Kedro datasets for EditLens' own file kinds: lossless PNG arrays and safetensors checkpoints.

Both write through fsspec, so the same catalog entry works on a local disk and on S3-compatible
storage (MinIO). Writes are all-or-nothing: on a local disk the bytes go to a temporary file in
the same folder that is renamed into place; on object stores a single PUT makes the object appear
only when complete. A reader therefore never sees a half-written image or checkpoint.

Importing this module also makes every ``s3://`` write of the catalog all-or-nothing, including the
kedro-datasets types (parquet, JSON, text, figures): see ``AllOrNothingS3FileSystem``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import PurePosixPath
from typing import Any

import fsspec
import numpy as np
from kedro.io.core import AbstractDataset, DatasetError, get_filepath_str, get_protocol_and_path
from PIL import Image

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


# By import path, so s3fs loads only when a catalog entry really lives on s3://; by class if
# something already loaded s3fs' own class (fsspec then looks no further than its loaded registry).
for _protocol in ("s3", "s3a"):
    if _protocol in fsspec.registry:
        fsspec.register_implementation(_protocol, __getattr__("AllOrNothingS3FileSystem"), clobber=True)
    else:
        fsspec.register_implementation(_protocol, f"{__name__}.AllOrNothingS3FileSystem", clobber=True)


def write_bytes_atomically(fs: Any, protocol: str, path: str, payload: bytes) -> None:
    """Write ``payload`` to ``path`` so that readers see either the old object or the complete new one."""
    if protocol == "file":
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(payload)
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
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
        path = get_filepath_str(PurePosixPath(self._path), self._protocol)
        write_bytes_atomically(self._fs, self._protocol, path, buffer.getvalue())

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(PurePosixPath(self._path), self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "mode": self._mode}


def decode_image(payload: bytes, mode: str | None, name: str) -> np.ndarray:
    """Decode image bytes to a uint8 array; ``name`` is used in error messages.

    Raises ``DatasetError`` naming the file for empty, truncated, non-image or oversized inputs.
    """
    if not payload:
        raise DatasetError(f"{name}: file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(payload)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise DatasetError(
                    f"{name}: {img.width}x{img.height} pixels exceeds the {MAX_IMAGE_PIXELS} pixel limit "
                    "(possible decompression bomb); refused before decoding"
                )
            img.load()
            if mode == "L":
                if img.mode in ("I;16", "I;16B", "I"):
                    return np.asarray(img).astype(np.uint8)
                return np.asarray(img.convert("L"))
            if img.mode in ("I;16", "I;16B", "I"):
                grey = (np.asarray(img).astype(np.float64) / 257.0).round().astype(np.uint8)
                return np.stack([grey] * 3, axis=-1)
            if img.mode in ("RGBA", "LA", "P", "PA"):
                # Composite transparency on white, the way viewers show it.
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
            return np.asarray(img.convert("RGB"))
    except DatasetError:
        raise
    except Exception as exc:  # PIL raises several unrelated types for bad files
        raise DatasetError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from exc


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
