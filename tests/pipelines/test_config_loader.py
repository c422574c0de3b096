"""The per-process config cache (pipelines.config_loader): a hit gives what Kedro's own loader
gives; an edited file, another env or other runtime params miss it; credentials are never cached."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from pipelines.config_loader import CachedOmegaConfigLoader, clear_cache
from pipelines.settings import CONFIG_LOADER_ARGS

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    clear_cache()
    target = tmp_path / "conf"
    shutil.copytree(REPO / "conf", target, ignore=shutil.ignore_patterns("local"))  # never a user's local conf
    (target / "local").mkdir()
    yield target
    clear_cache()


def loaders(conf: Path, **kwargs):
    return (CachedOmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS, **kwargs),
            OmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS, **kwargs))


@pytest.mark.parametrize("env", [None, "tiny", "gpu"])
def test_cached_config_equals_kedros_for_every_key(conf, env):
    for _ in range(2):  # the second round comes from the cache
        cached, plain = loaders(conf, env=env)
        for key in ("parameters", "catalog", "gates", "globals"):
            assert cached[key] == plain[key], key


def test_a_hit_skips_parsing_and_callers_cannot_change_the_cache(conf, monkeypatch):
    first = loaders(conf)[0]["parameters"]
    first["inpaint"]["seed"] = -1  # a caller mutating its copy

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again although nothing changed")

    loader = CachedOmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS)
    monkeypatch.setattr(OmegaConfigLoader, "_read_raw_config", no_parsing)
    second = loader["parameters"]
    assert second["inpaint"]["seed"] != -1


def test_an_edited_file_another_env_or_other_runtime_params_miss_the_cache(conf):
    default = loaders(conf)[0]["parameters"]["inpaint"]["chunk_size"]
    local = conf / "local" / "parameters_inpaint.yml"
    local.write_text("inpaint:\n  chunk_size: 3\n")
    assert loaders(conf)[0]["parameters"]["inpaint"]["chunk_size"] == 3 != default
    local.write_text("inpaint:\n  chunk_size: 4\n")  # same size, same second: only the bytes differ
    assert loaders(conf)[0]["parameters"]["inpaint"]["chunk_size"] == 4
    runtime = loaders(conf, runtime_params={"inpaint": {"chunk_size": 5}})[0]["parameters"]
    assert runtime["inpaint"]["chunk_size"] == 5
    assert loaders(conf)[0]["parameters"]["inpaint"]["chunk_size"] == 4
    assert loaders(conf, env="tiny")[0]["globals"] == loaders(conf, env="tiny")[1]["globals"]
    assert loaders(conf, env="tiny")[0]["globals"] != loaders(conf, env="gpu")[0]["globals"]


def test_credentials_are_read_from_the_environment_every_time(conf, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("EDITLENS_S3_ENDPOINT", "http://127.0.0.1:1")
    assert loaders(conf, env="s3")[0]["credentials"]["storage"]["key"] == "first"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second")
    assert loaders(conf, env="s3")[0]["credentials"]["storage"]["key"] == "second"


def test_a_broken_file_raises_every_time_and_is_never_cached(conf):
    (conf / "local" / "parameters_broken.yml").write_text("inpaint: [unclosed\n")
    for _ in range(2):
        with pytest.raises(Exception, match="parameters_broken"):
            loaders(conf)[0]["parameters"]
    (conf / "local" / "parameters_broken.yml").unlink()
    assert loaders(conf)[0]["parameters"] == loaders(conf)[1]["parameters"]


def test_layered_envs_merge_in_order_and_name_a_missing_layer(conf):
    """`--env a+b`: base, then a, then b, each over the one before (soft merge: a layer names only
    what it changes); the layer order decides who wins; an unknown layer is named."""
    (conf / "one").mkdir()
    (conf / "one" / "globals.yml").write_text("image_size: 96\nseed: 5\n")
    (conf / "one" / "parameters_train.yml").write_text("train:\n  trainer:\n    steps: 7\n    lr: 0.5\n")
    (conf / "two").mkdir()
    (conf / "two" / "parameters_train.yml").write_text("train:\n  trainer:\n    steps: 9\n")
    (conf / "two" / "globals.yml").write_text("image_size: 32\n")
    layered = CachedOmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS, env="one+two")
    assert layered["globals"]["image_size"] == 32 and layered["globals"]["seed"] == 5
    trainer = layered["parameters"]["train"]["trainer"]
    assert (trainer["steps"], trainer["lr"]) == (9, 0.5)
    assert trainer["batch_size"] == loaders(conf)[1]["parameters"]["train"]["trainer"]["batch_size"]
    # ${globals:...} in base parameters see the layered globals
    assert layered["parameters"]["split"]["seed"] == 5
    swapped = CachedOmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS, env="two+one")
    assert swapped["globals"]["image_size"] == 96 and swapped["parameters"]["train"]["trainer"]["steps"] == 7
    with pytest.raises(ValueError, match="'three'"):
        CachedOmegaConfigLoader(str(conf), **CONFIG_LOADER_ARGS, env="one+three")
