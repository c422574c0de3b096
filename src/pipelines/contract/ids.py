"""Sample ids and the per-sample random stream.

Every random draw of a stage comes from ``sample_rng(seed, key)`` with a key naming the item
(and the purpose, e.g. ``"inpaint:<sample_id>"``), so results do not depend on the order items
are processed in, on shards, or on resumption.
"""

from __future__ import annotations

import zlib

import numpy as np

FULL_SYNTHESIS_SUFFIX = "-full"


def sample_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the run seed and the item's id, so results do not change
    when items are processed in another order or in shards."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def sample_id(base_id: str, variant: int) -> str:
    """The id of the ``variant``-th edited sample made from ``base_id``."""
    return f"{base_id}-v{variant}"


def region_id(sample: str, turn: int) -> str:
    """The id of turn ``turn`` (1-based) of a sample: one row of ``regions`` / ``provenance``."""
    return f"{sample}-t{turn}"


def edit_group_id(sample: str, group: int) -> str:
    """The id of the ``group``-th region of a sample (an addition's two turns share it)."""
    return f"{sample}-g{group}"


def full_synthesis_id(base_id: str) -> str:
    """The id of the wholly generated sample made from ``base_id``'s caption."""
    return f"{base_id}{FULL_SYNTHESIS_SUFFIX}"
