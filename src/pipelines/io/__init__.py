"""The shared I/O layer every stage may import (with ``pipelines.contract`` and ``models``).

- ``shards``: which base ids a shard holds; streaming a parquet table shard by shard.
- ``resume``: the per-item work store (records + arrays, fingerprints) that makes a stage resumable.
- ``resumable``: ``resumable_map``, the one loop perceive, inpaint and filter run their items through.
- ``models``: ``ModelCache``, the one cache (with one eviction rule) of loaded models a node is handed.
- ``pipelines.datasets`` (the catalog's dataset classes) belongs to this layer too; it stays at its
  path because ``conf/*/catalog.yml`` names its classes.

This package imports nothing on import, so ``pipelines.datasets`` can use ``shards`` without a circle.
"""
