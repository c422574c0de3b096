"""Orchestration overhead: the ``inpaint`` stage through Kedro (catalog, hooks and data-quality
gates, work store, partitioned PNG datasets, parquet tables) and as a Prefect flow run (the same,
plus a planning session, Prefect's task and flow engines and the stage manifest) vs a bare Python
loop that calls the same generators on the same images and masks and writes the same PNGs
(``tests/benchmarks`` checks that its files are identical to the pipeline's).

All run in this process on the embedded default (256 px; every sample of ``kedro run``'s dataset,
about 70 with the CPU generators telea, navier_stokes and tiny-sd), after ingest + perceive, with
tiny-sd already loaded (the process-wide diffusers cache serves every path).

Each round runs every side back to back and records wall time and CPU time (user + system of this
process and every process it started, Prefect's API server included: ``benchmarks.stats``). A ratio
is the geometric mean of the round ratios with a 95 % t-interval over the rounds, so the table says
how far the noise of the machine lets one trust the second decimal."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from benchmarks.common import kedro_session, project_copy, timed
from benchmarks.stats import measure, ratio_interval


def _bare_loop(root: Path, params: dict[str, Any], out: Path) -> int:
    """What the inpaint node does, minus Kedro: decode, edit turn by turn, write PNGs."""
    from models.generators import create_generator
    from pipelines.inpaint.nodes import draw_generators, generator_entries, generator_labels, sample_turns
    from pipelines.perceive.nodes import sample_rng

    data = root / "data"
    regions = pd.read_parquet(data / "03_primary" / "regions.parquet")
    entries = generator_entries(params["generators"])
    generators = {e["name"]: create_generator(e["generator"], **e["kwargs"]) for e in entries}
    labels = generator_labels(entries)
    names = [e["name"] for e in entries]
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for sample_id, turns in sample_turns(regions).items():  # the node's own one-pass grouping
        rng = sample_rng(int(params["seed"]), f"inpaint:{sample_id}")
        chosen = draw_generators(rng, names, len(turns), True)
        base = turns[0]["base_id"]
        image = cv2.cvtColor(cv2.imread(str(data / "02_intermediate" / "base_images" / f"{base}.png")), cv2.COLOR_BGR2RGB)
        label_map = np.zeros(image.shape[:2], np.uint8)
        for name, row in zip(chosen, turns):
            mask = cv2.imread(str(data / "03_primary" / "region_masks" / f"{row['region_id']}.png"), cv2.IMREAD_GRAYSCALE) > 127
            image = generators[name].inpaint(image, mask, row["prompt"], int(rng.integers(0, 2**31 - 1)))
            label_map[mask] = labels[name]
        cv2.imwrite(str(out / f"{sample_id}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        cv2.imwrite(str(out / f"{sample_id}-label.png"), label_map, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        n += 1
    return n


def _prefect_home() -> None:
    """A throwaway Prefect home (its ephemeral API server's database) unless one is configured."""
    import tempfile

    os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="editlens-bench-prefect-"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _rounds(arms: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, list[float]]]:
    """Interleaved rounds, the order rotating every round: the machine's load drifts, and
    whichever side ran last would otherwise always see the same drift. Returns
    {arm: {"wall": [s per round], "cpu": [CPU s per round]}}."""
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in arms}
    names = list(arms)
    for repeat in range(repeats):
        for name in names[repeat % len(names):] + names[:repeat % len(names)]:
            wall, cpu, _ = measure(arms[name])
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
    return times


def _ratios(times: dict[str, dict[str, list[float]]], name: str, prefix: str) -> dict[str, Any]:
    """``name`` / bare, wall and CPU: the geometric mean of the per-round ratios and its 95 %
    interval (each round measures every side back to back, so a load swing longer than a round
    cancels out), the round ratios, and the times of the median round."""
    bare, side = times["bare"], times[name]
    wall, cpu = ratio_interval(side["wall"], bare["wall"]), ratio_interval(side["cpu"], bare["cpu"])
    middle = int(np.argsort(wall["round_ratios"])[len(bare["wall"]) // 2])
    key = prefix or f"{name}_"
    return {f"{prefix}ratio": wall["ratio"], f"{prefix}ratio_ci95": [wall["low"], wall["high"]],
            f"{prefix}median_ratio": wall["median"], f"{prefix}pair_ratios": wall["round_ratios"],
            f"{prefix}cpu_ratio": cpu["ratio"], f"{prefix}cpu_ratio_ci95": [cpu["low"], cpu["high"]],
            f"{prefix}cpu_pair_ratios": cpu["round_ratios"],
            f"{key}s": side["wall"][middle], f"{prefix}bare_loop_s": bare["wall"][middle],
            f"{key}cpu_s": side["cpu"][middle], f"{prefix}bare_loop_cpu_s": bare["cpu"][middle],
            f"{prefix}all_s" if prefix else f"all_{name}_s": side["wall"], f"{prefix}all_bare_s": bare["wall"],
            f"{prefix}all_cpu_s" if prefix else f"all_{name}_cpu_s": side["cpu"], f"{prefix}all_bare_cpu_s": bare["cpu"]}


class _Stage:
    """A project copy after ingest + perceive, and the three ways of running its inpaint stage."""

    def __init__(self, root: Path, params: dict[str, Any] | None):
        self.root, self.params = root, params
        for stage in ("ingest", "perceive"):
            with kedro_session(root, params=params) as session:
                session.run(pipeline_names=[stage])
        with kedro_session(root, params=params) as session:
            self.inpaint_params = session.load_context().params["inpaint"]
        self.samples = _bare_loop(root, self.inpaint_params, root / "warm-up")  # loads tiny-sd for every path

    def _clear(self) -> None:
        for folder in ("inpaint_work", "edited_images", "label_maps"):
            shutil.rmtree(self.root / "data" / "04_feature" / folder, ignore_errors=True)

    def bare(self) -> int:
        shutil.rmtree(self.root / "bare", ignore_errors=True)
        return _bare_loop(self.root, self.inpaint_params, self.root / "bare")

    def kedro(self) -> None:
        self._clear()
        with kedro_session(self.root, params=self.params) as session:
            session.run(pipeline_names=["inpaint"])

    def prefect(self) -> None:
        from flows.kedro_flow import kedro_pipeline_flow

        self._clear()
        kedro_pipeline_flow("inpaint", params=self.params, project_path=str(self.root))

    def check(self) -> None:
        samples = pd.read_parquet(self.root / "data" / "04_feature" / "samples.parquet")
        assert len(samples) == self.samples, (len(samples), self.samples)


def _empty_flow_s(repeats: int = 3) -> float:
    """Median wall time of a Prefect flow run that does nothing: Prefect's own cost per run."""
    from prefect import flow

    @flow(name="editlens-bench-empty")
    def empty() -> int:
        return 0

    return float(np.median([timed(empty)[0] for _ in range(repeats)]))


# The workload is pinned, not the embedded default's: 3 crops per photo = 70 samples, the size
# every earlier figure in docs/benchmarks.md was measured on (the default went to 12 crops for the
# detector, issue 19, which made each round 4x longer without changing what is compared).
BENCH_CROPS = 3


def run(repeats: int = 8, with_worker: bool = True, with_prefect: bool = True, scale: int = 3,
        prefect_repeats: int = 8, scaled_repeats: int = 4) -> dict[str, Any]:
    """1. bare loop vs ``kedro run --pipeline inpaint`` (a KedroSession in this process), ``repeats``
    rounds, before any Prefect server exists;
    2. with ``with_prefect``: bare loop vs the same pipeline as a Prefect flow run
    (``flows.kedro_flow.kedro_pipeline_flow``: planning session, one task, stage manifest with
    checksums; Prefect's ephemeral API server in a subprocess on the same cores), ``prefect_repeats``
    rounds, and
    the wall time of an empty flow run (Prefect's fixed cost per run);
    3. with ``scale`` > 1: phase 2 again on ``scale`` times as many samples (more crops per photo),
    where that fixed cost is spread over more images, ``scaled_repeats`` rounds.
    About 12 s a Kedro round, 14 s a Prefect round and 35 s a scaled round on 2 cores."""
    out: dict[str, Any] = {"image_size": 256, "rounds": repeats, "prefect_rounds": prefect_repeats,
                           "scaled_rounds": scaled_repeats, "target": "<= 1.10", "interval": "95% t over log ratios"}
    with project_copy() as root:
        stage = _Stage(root, {"ingest": {"crops_per_photo": BENCH_CROPS}})
        times = _rounds({"bare": stage.bare, "kedro": stage.kedro}, repeats)
        stage.check()
        out.update(samples=stage.samples, **_ratios(times, "kedro", ""))
        if with_prefect:
            _prefect_home()
            started = time.perf_counter()
            stage.prefect()  # starts Prefect's ephemeral API server: once per process, not timed
            out["prefect_server_start_s"] = time.perf_counter() - started
            out["prefect_empty_flow_s"] = _empty_flow_s()
            times = _rounds({"bare": stage.bare, "prefect": stage.prefect}, prefect_repeats)
            stage.check()
            out.update(_ratios(times, "prefect", "prefect_"))
        worker: dict[str, Any] = {}
        if with_worker:
            from benchmarks.memory import generation_worker
            shutil.rmtree(root / "data" / "04_feature" / "inpaint_work", ignore_errors=True)
            worker = generation_worker(root)
    if with_prefect and scale > 1:
        with project_copy() as root:
            scaled = _Stage(root, {"ingest": {"crops_per_photo": BENCH_CROPS * scale}})
            times = _rounds({"bare": scaled.bare, "prefect": scaled.prefect}, scaled_repeats)
            scaled.check()
            out.update(scaled_samples=scaled.samples, **_ratios(times, "prefect", "scaled_prefect_"))
    return {**out, **worker}


