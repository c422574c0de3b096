"""Manifests: the commit record of what one flow task wrote to the data root.

Single objects are written all-or-nothing (``pipelines.datasets``), but a stage writes many objects
(every image of a partitioned dataset, several tables). A task therefore

1. deletes its manifest ``<data_root>/manifests/<group>.json`` before it starts writing,
2. runs its Kedro nodes,
3. lists the data root again and writes the manifest last: every object created or rewritten since
   step 1, with its size and sha256, and the catalog dataset(s) it belongs to.

A reader that goes through the manifests sees a stage either complete or not at all: a manifest
exists only after every object it lists was written, and a failed or retried task has none. The
same code serves a local ``data/`` folder and ``s3://bucket/prefix`` (MinIO, AWS).

No Prefect imports here; ``flows.kedro_flow`` calls these around each task.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import fsspec
from kedro.io.core import get_protocol_and_path

from pipelines.datasets import write_bytes_atomically

MANIFEST_FOLDER = "manifests"
MANIFEST_VERSION = 1


@dataclass
class DataRoot:
    """Where a Kedro environment keeps its data: ``url`` as configured (``s3://b/data`` or an
    absolute local path), ``fs`` an fsspec filesystem holding the ``storage`` credentials."""

    url: str
    fs: Any
    protocol: str
    path: str  # ``url`` without the protocol, as fsspec paths are

    def key_of(self, fs_path: str) -> str:
        """``fs_path`` (as fsspec lists it) relative to the data root, with ``/`` separators."""
        return fs_path[len(self.path.rstrip("/")) + 1:].replace(os.sep, "/")

    def fs_path(self, key: str) -> str:
        return f"{self.path.rstrip('/')}/{key}"

    def manifest_key(self, group: str) -> str:
        return f"{MANIFEST_FOLDER}/{group}.json"


def data_root_of(config_loader: Any, project_path: str) -> DataRoot:
    """The data root of a Kedro context: ``globals.data_root`` with the ``storage`` credentials.
    A relative local root is resolved against ``project_path``."""
    url = str(config_loader["globals"]["data_root"]).rstrip("/")
    try:
        credentials = dict(config_loader["credentials"].get("storage") or {})
    except Exception:  # no credentials file in this environment: local disk needs none
        credentials = {}
    protocol, _ = get_protocol_and_path(url)
    if protocol == "file" and not os.path.isabs(url.removeprefix("file://")):
        url = os.path.abspath(os.path.join(project_path, url.removeprefix("file://")))
    fs = fsspec.filesystem(protocol, **credentials)
    _, path = get_protocol_and_path(url)
    return DataRoot(url=url, fs=fs, protocol=protocol, path=path)


def snapshot(root: DataRoot) -> dict[str, tuple]:
    """{key: version} of every object under the data root except the manifests. The version is
    what changes when an object is rewritten: size + ETag + modification time."""
    root.fs.invalidate_cache()
    if not root.fs.exists(root.path):
        return {}
    listing = root.fs.find(root.path, detail=True)
    versions: dict[str, tuple] = {}
    for fs_path, info in listing.items():
        if info.get("type") == "directory":
            continue
        key = root.key_of(fs_path)
        if key.startswith(f"{MANIFEST_FOLDER}/") or "/.tmp-" in f"/{key}":
            continue
        versions[key] = (info.get("size"), info.get("ETag") or info.get("etag"),
                         str(info.get("LastModified") or info.get("mtime") or info.get("last_modified")))
    return versions


def changed_keys(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Keys created or rewritten between two snapshots, sorted."""
    return sorted(key for key, version in after.items() if before.get(key) != version)


def dataset_prefixes(catalog_config: dict[str, Any], root: DataRoot, project_path: str) -> dict[str, str]:
    """{dataset name: its key (file) or key prefix (folder) under the data root}, for every catalog
    entry stored under the root. Entries starting with ``_`` are YAML anchors, not datasets."""
    prefixes: dict[str, str] = {}
    for name, entry in catalog_config.items():
        if name.startswith("_") or not isinstance(entry, dict):
            continue
        location = entry.get("filepath") or entry.get("path")
        if not location:
            continue
        protocol, path = get_protocol_and_path(str(location))
        if protocol == "file" and not os.path.isabs(path):
            path = os.path.abspath(os.path.join(project_path, path))
        if protocol == root.protocol and path.rstrip("/").startswith(root.path.rstrip("/") + "/"):
            prefixes[name] = root.key_of(path.rstrip("/"))
    return prefixes


def datasets_of(key: str, prefixes: dict[str, str]) -> list[str]:
    """The catalog dataset(s) an object belongs to: the longest matching file or folder prefix
    (two datasets can share a folder, e.g. the binary and semantic overlays)."""
    matches = {name: p for name, p in prefixes.items() if key == p or key.startswith(p + "/")}
    if not matches:
        return []
    longest = max(len(p) for p in matches.values())
    return sorted(name for name, p in matches.items() if len(p) == longest)


def build_manifest(root: DataRoot, keys: list[str], prefixes: dict[str, str], meta: dict[str, Any],
                   checksums: bool = True) -> dict[str, Any]:
    """The manifest of ``keys``: one entry per object with size, sha256 (read back from storage
    when ``checksums``) and dataset names, plus ``meta`` (group, flow run, env, ...)."""
    objects = []
    for key in keys:
        fs_path = root.fs_path(key)
        entry: dict[str, Any] = {"key": key, "datasets": datasets_of(key, prefixes)}
        if checksums:
            payload = root.fs.cat_file(fs_path)
            entry["size"] = len(payload)
            entry["sha256"] = hashlib.sha256(payload).hexdigest()
        else:
            entry["size"] = root.fs.size(fs_path)
        objects.append(entry)
    return {"manifest_version": MANIFEST_VERSION, "root": root.url, **meta,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "n_objects": len(objects), "objects": objects}


def write_manifest(root: DataRoot, group: str, manifest: dict[str, Any]) -> str:
    """Write the manifest all-or-nothing; returns its URL."""
    payload = json.dumps(manifest, indent=2, sort_keys=False, default=str).encode()
    path = root.fs_path(root.manifest_key(group))
    write_bytes_atomically(root.fs, root.protocol, path, payload)
    return f"{root.url}/{root.manifest_key(group)}"


def remove_manifest(root: DataRoot, group: str) -> None:
    """Withdraw ``group``'s manifest (if any) before the group rewrites its objects."""
    path = root.fs_path(root.manifest_key(group))
    if root.fs.exists(path):
        root.fs.rm_file(path)


def read_manifests(root: DataRoot) -> dict[str, dict[str, Any]]:
    """{group: manifest} of every committed group under the data root."""
    root.fs.invalidate_cache()
    folder = root.fs_path(MANIFEST_FOLDER)
    if not root.fs.exists(folder):
        return {}
    manifests = {}
    for fs_path in sorted(root.fs.find(folder)):
        if fs_path.endswith(".json") and "/.tmp-" not in fs_path:
            manifests[os.path.basename(fs_path)[: -len(".json")]] = json.loads(root.fs.cat_file(fs_path))
    return manifests
