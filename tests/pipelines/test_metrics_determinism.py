"""metrics.json holds only what the seed decides: wall-clock fields stay in metrics_<task>.json."""

from __future__ import annotations

from pipelines.evaluate.nodes import combine_metrics


def _task(seconds: float) -> dict:
    return {"pixel": {"miou": 0.4}, "timing_s": {"in_domain": seconds},
            "training": {"steps": 300, "seconds": seconds, "images_per_second": 8 / seconds, "stopped_by": "steps"},
            "protocols": {"robustness": {"conditions": [{"name": "JPEG 60", "seconds": seconds, "pixel": {"miou": 0.3}}]}}}


def test_two_runs_differing_only_in_time_combine_to_the_same_document():
    first, second = combine_metrics(_task(3.0), _task(4.5)), combine_metrics(_task(4.5), _task(3.0))
    assert first == second
    assert first["binary"] == {"pixel": {"miou": 0.4}, "training": {"steps": 300, "stopped_by": "steps"},
                               "protocols": {"robustness": {"conditions": [{"name": "JPEG 60", "pixel": {"miou": 0.3}}]}}}


def test_the_task_documents_keep_their_timings():
    binary = _task(3.0)
    combine_metrics(binary, _task(4.0))
    assert binary["timing_s"] == {"in_domain": 3.0} and binary["training"]["seconds"] == 3.0
