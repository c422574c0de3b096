"""One cache for loaded models: get-or-build by key, one eviction rule.

A checkpoint (a diffusion pipeline, a VLM, a CLIP scorer) takes seconds to minutes to load and
gigabytes to hold, so everything that names the same model with the same settings should share
one instance. ``ModelCache`` is that sharing, written once: ``get(key, build)`` returns the model
stored under ``key`` or calls ``build()`` once and stores the result. Its eviction rule is the only
one: at most ``max_entries`` models (least recently used dropped first; ``None`` = no limit) and
``clear()``.

The cache is an object, so a caller that builds models can be handed one: a test fills it with
tiny models under the keys the code asks for (``put``) instead of monkeypatching a module's
builder. Loaders that are not handed one (a diffusers pipeline, a VLM's weights, a grounding
model, a TorchScript inpainter) share ``process_cache()``: the process's one instance, whose
``max_entries`` is the only limit on what stays loaded, across every family. Its eviction frees
the dropped model's memory (garbage collection, and the CUDA allocator's cached blocks).
"""

from __future__ import annotations

import gc
import json
import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any


class ModelCache:
    """Models by key, at most ``max_entries`` of them (least recently used evicted first).

    Args:
        max_entries: the most models kept (an int >= 1), or None for no limit.
        on_evict: called as ``on_evict(key, model)`` for each model dropped by the limit or by
            ``clear`` / ``pop`` (e.g. to free accelerator memory); not called by ``put``
            replacing a key.

    Raises:
        ValueError: ``max_entries`` < 1.
    """

    def __init__(self, max_entries: int | None = None, on_evict: Callable[[Hashable, Any], None] | None = None):
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._on_evict = on_evict
        self.max_entries = max_entries
        self.set_max_entries(max_entries)

    @staticmethod
    def key(family: str, name: str, kwargs: Mapping[str, Any] | None = None) -> tuple[str, str, str]:
        """The key of registry entry ``name`` of ``family`` ("vlm", "perceiver", "quality" ...)
        built with ``kwargs``: (family, name, kwargs as sorted JSON, non-JSON values by ``str``)."""
        return family, name, json.dumps(dict(kwargs or {}), sort_keys=True, default=str)

    def set_max_entries(self, max_entries: int | None) -> None:
        """Change the limit (evicting the least recently used now if over it). Raises ValueError if < 1."""
        if max_entries is not None and int(max_entries) < 1:
            raise ValueError(f"ModelCache max_entries must be >= 1 or None, got {max_entries}")
        self.max_entries = None if max_entries is None else int(max_entries)
        self._evict(keep=None)

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The model under ``key`` (now the most recently used), built with ``build()`` and stored
        first if absent. A ``build`` that raises stores nothing. Eviction never drops ``key``."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        model = build()
        self.put(key, model)
        return model

    def put(self, key: Hashable, model: Any) -> None:
        """Store ``model`` under ``key`` as the most recently used (replacing what was there)."""
        self._entries[key] = model
        self._entries.move_to_end(key)
        self._evict(keep=key)

    def pop(self, key: Hashable) -> Any:
        """Remove and return the model under ``key`` (KeyError if absent)."""
        model = self._entries.pop(key)
        if self._on_evict is not None:
            self._on_evict(key, model)
        return model

    def clear(self) -> None:
        """Drop every model (their memory is freed once nothing else holds them)."""
        for key in list(self._entries):
            self.pop(key)

    def keys(self) -> list[Hashable]:
        """The keys held, least recently used first."""
        return list(self._entries)

    def items(self) -> list[tuple[Hashable, Any]]:
        """(key, model) pairs, least recently used first; looking does not make them recent."""
        return list(self._entries.items())

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.keys())

    def _evict(self, keep: Hashable | None) -> None:
        if self.max_entries is None:
            return
        for key in [k for k in self._entries if k != keep][: max(0, len(self._entries) - self.max_entries)]:
            self.pop(key)


def free_memory(key: Hashable, model: Any) -> None:
    """``on_evict`` of the process cache: collect the dropped model now and give CUDA's cached
    blocks back, so the next model fits (torch is only touched when something imported it)."""
    del key, model
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


_PROCESS = ModelCache(on_evict=free_memory)


def process_cache() -> ModelCache:
    """The process's one model cache (see the module docstring)."""
    return _PROCESS


def family_keys(family: str, cache: ModelCache | None = None) -> list[tuple]:
    """Keys of ``cache`` (default: the process cache) whose first element is ``family``, least
    recently used first."""
    return [k for k in (cache or _PROCESS).keys() if isinstance(k, tuple) and k and k[0] == family]


def drop_family(family: str, cache: ModelCache | None = None) -> None:
    """Drop every model of ``family`` from ``cache`` (default: the process cache)."""
    target = cache or _PROCESS
    for key in family_keys(family, target):
        target.pop(key)
