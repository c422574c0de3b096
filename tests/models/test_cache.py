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


def test_every_loader_shares_the_process_cache_and_its_one_limit(tmp_path):
    """TorchScript inpainters, diffusers pipelines, VLM and grounding weights are all held by
    ``process_cache()``; ``set_max_loaded`` is that cache's limit, so loading one model of any family
    evicts the least recently used of every family, and the dropped model is really gone."""
    import torch

    from models.cache import family_keys, process_cache
    from models.generators import set_max_loaded
    from models.generators.torchscript import load_torchscript

    paths = []
    for index in range(2):
        module = torch.jit.script(torch.nn.Conv2d(4, 3, 1))
        paths.append(tmp_path / f"m{index}.pt")
        module.save(str(paths[-1]))
    cache = process_cache()
    before = cache.max_entries
    try:
        first = load_torchscript(paths[0])
        assert load_torchscript(paths[0]) is first  # shared, loaded once
        cache.put(("vlm-weights", "a-tiny-vlm"), object())
        set_max_loaded(2)
        assert cache.max_entries == 2
        load_torchscript(paths[1])  # the least recently used (paths[0]) goes
        assert [k[1] for k in family_keys("torchscript")] == [str(paths[1].resolve())]
        assert family_keys("vlm-weights") == [("vlm-weights", "a-tiny-vlm")]
        assert load_torchscript(paths[0]) is not first  # reloaded from disk
        assert family_keys("vlm-weights") == []  # now the least recently used of all
    finally:
        set_max_loaded(before)
        for family in ("torchscript", "vlm-weights"):
            for key in family_keys(family):
                cache.pop(key)
