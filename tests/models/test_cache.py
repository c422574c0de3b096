"""ModelCache: builds a model once per key, evicts the least recently used beyond its limit."""

import pytest

from models.cache import ModelCache


def test_builds_once_per_key_and_returns_the_same_object():
    calls = []
    cache = ModelCache()

    def build(name):
        calls.append(name)
        return object()

    first = cache.get(("clip", "cpu"), lambda: build("clip"))
    assert cache.get(("clip", "cpu"), lambda: build("clip")) is first
    assert cache.get(("clip", "cuda"), lambda: build("clip-cuda")) is not first
    assert calls == ["clip", "clip-cuda"]


def test_evicts_the_least_recently_used_beyond_max_entries_and_reports_it():
    evicted = []
    cache = ModelCache(max_entries=2, on_evict=lambda key, model: evicted.append((key, model)))
    cache.get("a", lambda: "A")
    cache.get("b", lambda: "B")
    cache.get("a", lambda: "not built")  # a is now the most recent: b goes first
    cache.get("c", lambda: "C")
    assert cache.keys() == ["a", "c"] and evicted == [("b", "B")]
    cache.set_max_entries(1)
    assert cache.keys() == ["c"] and evicted[-1] == ("a", "A")
    cache.clear()
    assert len(cache) == 0 and evicted[-1] == ("c", "C")


def test_a_failed_build_stores_nothing_and_a_put_model_is_used_instead_of_building():
    cache = ModelCache()

    def broken():
        raise OSError("checkpoint not found")

    with pytest.raises(OSError, match="checkpoint not found"):
        cache.get("vlm", broken)
    assert "vlm" not in cache
    cache.put("vlm", "tiny model")
    assert cache.get("vlm", broken) == "tiny model"


def test_max_entries_below_one_is_refused():
    with pytest.raises(ValueError, match="max_entries must be >= 1"):
        ModelCache(max_entries=0)
