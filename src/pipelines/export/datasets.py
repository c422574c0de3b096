"""Export datasets: a parquet file that Hugging Face ``datasets`` loads with its image columns
decoded (``HuggingFaceParquetDataset``), and IMDL-BenCo JSON lists whose paths IMDL-BenCo itself
can open (``ImdlListsDataset``).

``datasets`` reads the ``huggingface`` key of the parquet schema metadata for its feature types;
an ``Image`` feature is a struct ``{bytes: binary, path: string}``. Extra EditLens metadata (the
class names of the semantic ``label_map`` column) goes under the ``editlens`` key.
"""

from __future__ import annotations

import io
import json
from pathlib import PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from kedro.io.core import AbstractDataset, get_filepath_str
from kedro_datasets.partitions import PartitionedDataset

from pipelines.datasets import _filesystem, write_bytes_atomically

_IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def hf_features(frame: pd.DataFrame, image_columns: list[str]) -> dict[str, Any]:
    """``datasets`` feature dict: Image for ``image_columns``, Value(<dtype>) for the rest."""
    features: dict[str, Any] = {}
    for column in frame.columns:
        if column in image_columns:
            features[column] = {"_type": "Image"}
        elif pd.api.types.is_bool_dtype(frame[column]):
            features[column] = {"dtype": "bool", "_type": "Value"}
        elif pd.api.types.is_integer_dtype(frame[column]):
            features[column] = {"dtype": "int64", "_type": "Value"}
        elif pd.api.types.is_float_dtype(frame[column]):
            features[column] = {"dtype": "float64", "_type": "Value"}
        else:
            features[column] = {"dtype": "string", "_type": "Value"}
    return features


class HuggingFaceParquetDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """Save a DataFrame whose ``image_columns`` hold ``{"bytes": png, "path": name}`` dicts (or
    None) as parquet with Hugging Face feature metadata; ``frame.attrs['editlens']`` (a dict)
    is stored too. Load returns the DataFrame (image cells as dicts)."""

    def __init__(self, *, filepath: str, image_columns: list[str] | None = None,
                 credentials: dict[str, Any] | None = None, fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._fs, self._protocol, self._path = _filesystem(filepath, credentials, fs_args)
        self._filepath = filepath
        self._image_columns = list(image_columns or ["image", "mask"])
        self.metadata = metadata

    def save(self, data: pd.DataFrame) -> None:
        images = [c for c in self._image_columns if c in data]
        fields = []
        for column in data.columns:
            if column in images:
                fields.append(pa.field(column, _IMAGE_TYPE))
            else:
                fields.append(pa.field(column, pa.Array.from_pandas(data[column]).type))
        meta = {b"huggingface": json.dumps({"info": {"features": hf_features(data, images)}}).encode()}
        if data.attrs.get("editlens"):
            meta[b"editlens"] = json.dumps(data.attrs["editlens"]).encode()
        schema = pa.schema(fields, metadata=meta)
        table = pa.Table.from_pandas(data, schema=schema, preserve_index=False).replace_schema_metadata(meta)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        path = get_filepath_str(PurePosixPath(self._path), self._protocol)
        write_bytes_atomically(self._fs, self._protocol, path, buffer.getvalue())

    def load(self) -> pd.DataFrame:
        path = get_filepath_str(PurePosixPath(self._path), self._protocol)
        with self._fs.open(path, "rb") as fh:
            return pq.read_table(io.BytesIO(fh.read())).to_pandas()

    def _exists(self) -> bool:
        return self._fs.exists(get_filepath_str(PurePosixPath(self._path), self._protocol))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "image_columns": self._image_columns}


class ImdlListsDataset(PartitionedDataset):
    """IMDL-BenCo JSON lists (``[[image, mask | "Negative"], ...]``), one file per partition.

    Entries are given relative to the dataset's folder and saved as absolute paths (``<protocol>
    ://...`` off the local disk): IMDL-BenCo's ``JsonDataset`` opens each entry as written, i.e.
    against the working directory, so a relative list only loads from one folder. EditLens'
    own importer reads both forms (entries must lie inside the JSON's folder either way).
    """

    def save(self, data: dict[str, Any]) -> None:
        import os

        base = self._normalized_path.rstrip("/")
        local = self._protocol in ("file", "local", "")

        def absolute(path: str) -> str:
            if path == "Negative" or path.startswith("/") or "://" in path:
                return path
            joined = f"{base}/{path}"
            return os.path.abspath(joined) if local else f"{self._protocol}://{joined}"

        def resolve(value: Any) -> Any:
            entries = value() if callable(value) else value
            return [[absolute(str(p)) for p in entry] for entry in entries]

        super().save({key: resolve(value) for key, value in data.items()})
