"""Sample ids and the per-sample random stream.

Every random draw of a stage comes from ``sample_rng(seed, key)`` with a key naming the item
(and the purpose, e.g. ``"inpaint:<sample_id>"``), so results do not depend on the order items
are processed in, on shards, or on resumption.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
import zlib
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

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


def model_sample_id(sample: str, generator: str) -> str:
    """The id of perceived sample ``sample`` as inpainted by ``generator`` (BR-Gen: every mask
    by every inpainter); the generator's name is made id-safe (``safe_id``)."""
    return f"{sample}-{safe_id(generator)}"


REAL_ONLY_MARK = "=real-only-"
REAL_ONLY_KIND = "real-only"  # base_manifest.kind of a pool photo (an edited base is "real" or "ai")


def real_only_id(photo_id: str, pool: str) -> str:
    """The base id of a photo of ingest pool ``pool`` (``ingest.real_pools``, DiffSeg30k sec. 4):
    a real photo that is never perceived nor edited, only used as an authentic item."""
    return f"{photo_id}{REAL_ONLY_MARK}{pool}"


def pool_of(base_id: str) -> str | None:
    """The pool of a real-only base id (``real_only_id``), None for every other base."""
    stem, mark, pool = str(base_id).rpartition(REAL_ONLY_MARK)
    return pool if mark and stem else None


def full_synthesis_id(base_id: str) -> str:
    """The id of the wholly generated sample made from ``base_id``'s caption."""
    return f"{base_id}{FULL_SYNTHESIS_SUFFIX}"


# The rule every id must meet to name a work-store file or a partition (io.resume checks it).
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,199}$")
_MAX_ID_STEM = 120  # leaves room for prefixes and the '-c<k>', '-v<k>', '-t<k>' suffixes of later stages


def safe_id(name: Any) -> str:
    """A valid, stable id for any name a file system or a published table allows.

    A name that already meets ``SAFE_ID`` (and is at most 120 characters) is kept as it is;
    any other one is transliterated to ASCII (``naïve`` -> ``naive``), every other run of
    characters becomes ``-`` (so ``/``, ``..`` and spaces never survive), and an 8-hex sha1 of the
    original name is appended, so two names that map to one text still get distinct ids and the
    same name always gets the same id. Never raises.
    """
    text = str(name)
    if SAFE_ID.match(text) and len(text) <= _MAX_ID_STEM and ".." not in text:
        return text
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    cleaned = re.sub(r"[^A-Za-z0-9+=]+", "-", ascii_text.replace("..", "-"))
    cleaned = cleaned.strip("-")[:_MAX_ID_STEM].rstrip("-") or "id"
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned}-{digest}"


class UniqueIds:
    """Gives every item of one run a valid (``safe_id``), unique id at the door of a source.

    ``ids(raw, where)`` returns ``prefix + safe_id(raw)``, or, when another item already has that
    id, the same with ``-2``, ``-3``, ...: both items are kept, and a ``note:`` row in ``issues``
    names the other one. A name that had to be mapped gets a ``note:`` saying to what.
    ``ids.first(raw)`` is the id the first item called ``raw`` got ('' if none), for links
    between items (a forgery's authentic base).
    """

    def __init__(self, source: str, issues: list[dict[str, str]] | None, prefix: str = ""):
        self.source, self.issues, self.prefix = source, issues, prefix
        self.owner: dict[str, str] = {}  # id -> where the item that has it came from
        self._first: dict[str, str] = {}

    def __call__(self, raw: Any, where: str) -> str:
        candidate = self.prefix + safe_id(raw)
        unique, n = candidate, 1
        while unique in self.owner:
            n += 1
            unique = f"{candidate}-{n}"
        if unique != candidate:
            self._note(where, f"note: id {candidate} is also {self.owner[candidate]}'s; this one kept as {unique}")
        elif candidate != self.prefix + str(raw):
            self._note(where, f"note: name {str(raw)!r} is not a valid id; id {unique}")
        self.owner[unique] = where
        self._first.setdefault(str(raw), unique)
        return unique

    def first(self, raw: Any) -> str:
        return self._first.get(str(raw), "")

    def _note(self, where: str, reason: str) -> None:
        logger.info("%s: %s", where, reason)
        if self.issues is not None:
            self.issues.append({"source": self.source, "item": where, "reason": reason})
