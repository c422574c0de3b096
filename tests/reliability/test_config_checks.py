"""Configuration errors are rejected before any work starts: a real KedroSession on a throwaway
copy of the project (``--env tiny``) with bad runtime parameters never runs a node."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.config_checks import ConfigError, check_parameters


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def _run(project: Path, runtime_params: dict, pipeline: str) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with KedroSession.create(project_path=project, env="tiny", runtime_params=runtime_params) as session:
        session.run(pipeline_name=pipeline)


@pytest.mark.slow
def test_bad_runtime_params_stop_a_kedro_run_before_any_node(project_copy: Path):
    bad = {"inpaint": {"generators": [{"name": "telea"}, {"name": "dall-e-9"}]},
           "split": {"ratios": [0.7, 0.2]},
           "train": {"model": "unet9000"},
           "evaluate": {"image_threshold": 1.5},
           "perceive": {"iou_threshold": -0.1}}
    with pytest.raises(ConfigError) as err:
        _run(project_copy, bad, "__default__")
    message = str(err.value)
    assert "before any work started" in message
    assert "inpaint.generators[1] (dall-e-9): unknown generator 'dall-e-9'; known: " in message
    assert "telea" in message.split("dall-e-9")[-1] and "sd-inpaint" in message  # the known names are listed
    assert "train.model: unknown detector 'unet9000'; known: " in message and "deeplabv3plus" in message
    assert "split.ratios: [0.7, 0.2] sums to 0.9, not 1" in message
    assert "evaluate.image_threshold: 1.5 is out of range; must be a number in [0, 1]" in message
    assert "perceive.iou_threshold: -0.1 is out of range" in message
    assert _files_under(project_copy / "data") == []  # nothing ran, nothing was written

    # only the sections a pipeline reads are checked: `ingest` does not read train.model
    with pytest.raises(ConfigError, match="unknown source 'flickr'") as err:
        _run(project_copy, {"ingest": {"source": "flickr"}, "train": {"model": "unet9000"}}, "ingest")
    assert "unet9000" not in str(err.value) and "known: sample, coco, folder, urls, imdl" in str(err.value)
    assert _files_under(project_copy / "data") == []


@pytest.mark.parametrize("params, expected", [
    ({"perceive": {"perceiver": "sam9"}}, "perceive.perceiver: unknown perceiver 'sam9'; known: auto, annotations, florence2_sam, grounded_sam, superpixel"),
    ({"perceive": {"fallback_perceiver": "auto"}}, "perceive.fallback_perceiver: unknown perceiver 'auto'"),
    ({"filter": {"checks": [{"scorer": "niqe", "max": 5}]}}, "filter.checks[0].scorer: unknown quality scorer 'niqe'; known: brisque"),
    ({"filter": {"checks": [{"scorer": "brisque", "min": 60, "max": 10}]}}, "min 60 is larger than max 10"),
    ({"split": {"ratios": [0.8, 0.3], "names": ["train", "val"]}}, "sums to 1.1, not 1"),
    ({"split": {"ratios": [0.5, 0.5], "names": ["train", "val", "test"]}}, "2 ratios for 3 split names"),
    ({"split": {"ratios": [1.2, -0.2]}}, "negative or non-numeric ratio"),
    ({"split": {"protocols": {"brgen": {"ratios": [0.8, 0.1, 0.2], "names": ["a", "b", "c"]}}}}, "split.protocols.brgen.ratios"),
    ({"evaluate": {"pixel_threshold": "high"}}, "evaluate.pixel_threshold: 'high' is out of range"),
    ({"perceive": {"min_area_ratio": 0.5, "max_area_ratio": 0.1}}, "larger than perceive.max_area_ratio"),
    ({"train": {"trainer": {"steps": 0}}}, "train.trainer.steps: 0 must be a positive integer"),
    ({"ingest": {"image_size": -64}}, "ingest.image_size: -64 must be a positive integer"),
    ({"perceive": {"trust_remote_code": True}}, "perceive.trust_remote_code: trust_remote_code may only be switched on per model"),
    # types and bounds from pipelines.contract.params (issue 20, item 9)
    ({"ingest": {"min_side": "abc"}}, "ingest.min_side: 'abc' must be an integer"),
    ({"ingest": {"folder": {"max_images": "abc"}}}, "ingest.folder.max_images: 'abc' must be an integer"),
    ({"ingest": {"folder": {"max_images": -1}}}, "ingest.folder.max_images: -1 must be > 0"),
    ({"ingest": {"urls": {"timeout_s": 0}}}, "ingest.urls.timeout_s: 0 must be > 0"),
    ({"inpaint": {"chunk_size": "many"}}, "inpaint.chunk_size: 'many' must be an integer"),
    ({"stats": {"samples": "some"}}, "stats.samples: 'some' must be one of 'kept' or 'all'"),
])
def test_each_kind_of_bad_parameter_is_named(params, expected):
    problems = check_parameters(params)
    assert any(expected in p for p in problems), problems


def test_per_model_trust_remote_code_and_the_shipped_envs_pass(project_copy: Path):
    per_model = check_parameters({"perceive": {"vlms": [{"name": "x", "kwargs": {"trust_remote_code": True}}]}})
    assert not any("trust_remote_code" in p for p in per_model), per_model
    from kedro.config import OmegaConfigLoader
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_copy)
    for env in ("base", "tiny", "gpu", "s3", "brgen", "opensdi"):
        loader = OmegaConfigLoader(str(project_copy / "conf"), env=None if env == "base" else env,
                                   **{**settings.CONFIG_LOADER_ARGS, "default_run_env": "local" if env == "base" else env})
        assert check_parameters(loader["parameters"]) == [], env


def test_every_type_problem_is_listed_at_once_and_named_once():
    problems = check_parameters({"ingest": {"min_side": "abc", "image_size": -1, "coco": {"max_images": 0}},
                                 "evaluate": {"batch_size": "x", "n_overlays": -2}})
    assert len(problems) == 5, problems  # image_size is named once, by its range check
    assert sum(p.startswith("ingest.image_size") for p in problems) == 1


@pytest.mark.parametrize("params, expected", [
    ({"evaluate": {"n_overlay": 3}}, "evaluate.n_overlay: unknown key; allowed: batch_size, boundary_tolerance_px"),
    ({"evaluate": {"protocols": {"breakdowns": {"bi": ["generator"]}}}},
     "evaluate.protocols.breakdowns.bi: unknown key; allowed: area_buckets, authentic, by, mean, membership"),
    ({"split": {"protocols": {"mine": {"kind": "random", "ratio": [1.0]}}}},
     "split.protocols.mine.ratio: unknown key; allowed: by, counts, families, held_out, kind, names, pairs, ratios, scale, source, target, train_on"),
    ({"ingest": {"folder": {"roots": "x"}}}, "ingest.folder.roots: unknown key; allowed: max_images, root"),
    ({"train": {"trainer": {"stepz": 5}}}, "train.trainer: unknown key(s) stepz; allowed: amp, augment"),
    ({"export": {"format": ["hf"]}}, "export.format: unknown key; allowed: formats, generators, splits"),
])
def test_a_misspelt_key_is_named_with_the_allowed_keys(params, expected):
    problems = check_parameters(params)
    assert any(expected in p for p in problems), problems


def test_a_section_model_holds_the_defaults_a_node_reads():
    from pipelines.contract.params import EvaluateParams, SplitParams, params_of

    assert params_of(EvaluateParams, {}).protocols.breakdowns.membership == "last"
    assert params_of(EvaluateParams, {"split": "test"}).split == "test"
    assert params_of(SplitParams, None).names == ["train", "val"]
