"""`make bench`: where the time goes in EditLens, measured side by side in one run.

Every comparison runs both sides in the same run (interleaved where it matters), so the ratios
hold even though absolute times vary between runs on shared machines. Sections:

  components     seconds per image of each CPU generator and of BRISQUE (the per-image costs
                 docs/scaling.md starts from)
  orchestration  the inpaint stage through Kedro and as a Prefect flow vs a bare loop, same generators, same images;
                 wall and CPU time (process + children), ratios with a 95 % interval over paired rounds
  metrics        the project's evaluation vs a per-image reference on 500 label maps of 512 px
  loading        the trainer's DataLoader (2 workers, decode + augment) vs raw PNG decode
  trainer        train_detector's step vs a bare segmentation_models_pytorch step, same batch
  memory         peak RSS of a tiny `kedro run`, of one generation worker, and of a streamed
                 100k-row manifest
  gpu            generation batched vs unbatched (1024 px fp16) and training images/s at 512 px
                 with AMP, when CUDA is present ("skipped: no CUDA" otherwise)

    python benchmarks/run.py                 # everything (about 8 min on 2 CPU cores)
    python benchmarks/run.py --only orchestration --rounds 2   # a quick look at the printout
    python benchmarks/run.py --only metrics,loading

Results: benchmarks/results.json (git-ignored) and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
import torch  # noqa: E402

from benchmarks import gpu, memory, metrics_bench, orchestration, training_bench  # noqa: E402
from benchmarks.common import REPO  # noqa: E402

SECTIONS = ("components", "orchestration", "metrics", "loading", "trainer", "memory", "gpu")


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up (model loading, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def components(size: int = 256) -> dict[str, float]:
    from models.generators import create_generator
    from models.quality import create_quality_scorer

    image = cv2.resize(skimage.data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    mask = np.zeros((size, size), bool)
    mask[64:160, 80:176] = True  # 14% of the image, a typical object
    out: dict[str, float] = {"image_size": size}
    with tempfile.TemporaryDirectory() as tmp:
        specs = {"telea": {}, "navier_stokes": {}, "tiny-sd": {"model": str(Path(tmp) / "tiny-sd"), "steps": 4}}
        for name, kwargs in specs.items():
            generator = create_generator(name, **kwargs)
            out[f"{name}_s_per_edit"] = best_of(lambda g=generator: g.inpaint(image, mask, "a red car", 0))
    brisque = create_quality_scorer("brisque")
    out["brisque_s_per_image"] = best_of(lambda: brisque.score(image))
    return out


def _interval(o: dict, key: str) -> str:
    """``1.04x [0.98, 1.10]``: the geometric mean of the round ratios and its 95 % interval."""
    low, high = o.get(f"{key}_ci95", [None, None])
    return f"{o[key]:.2f}x" + ("" if low is None else f" [{low:.2f}, {high:.2f}]")


def orchestration_rows(o: dict) -> list[tuple[str, str, str, str]]:
    """Table rows of ``orchestration.run``: per comparison, the wall-time ratio with its 95 %
    interval, then the CPU-time ratio (this process and every process it started) with its own."""
    rows = []
    for prefix, label, side in (("", "kedro / bare loop", "kedro_"),
                                ("prefect_", "Prefect flow / bare loop", "prefect_"),
                                ("scaled_prefect_", "Prefect flow / bare loop, {scaled_samples} samples", "scaled_prefect_")):
        if f"{prefix}ratio" not in o:
            continue
        name = "orchestration: " + label.format(**o)
        samples = f"{o['samples']} samples, " if not prefix else ""
        empty = f"; an empty flow run takes {o['prefect_empty_flow_s']:.2f} s" if prefix == "prefect_" else ""
        rounds = o[f"{prefix}pair_ratios"]
        rows.append((f"{name}, wall", _interval(o, f"{prefix}ratio"), "<= 1.10x",
                     f"{samples}{o[f'{side}s']:.1f} s vs {o[f'{prefix}bare_loop_s']:.1f} s (median round); "
                     f"{len(rounds)} rounds {' / '.join(f'{r:.2f}' for r in rounds)}{empty}"))
        if f"{prefix}cpu_ratio" in o:
            cpu_rounds = o[f"{prefix}cpu_pair_ratios"]
            rows.append((f"{name}, CPU", _interval(o, f"{prefix}cpu_ratio"), "<= 1.10x",
                         f"{o[f'{side}cpu_s']:.1f} s vs {o[f'{prefix}bare_loop_cpu_s']:.1f} s CPU, process + children; "
                         f"rounds {' / '.join(f'{r:.2f}' for r in cpu_rounds)}"))
    return rows


def table(results: dict) -> list[str]:
    rows = []
    o, m, lo, t, mem = (results.get(k, {}) for k in ("orchestration", "metrics", "loading", "trainer", "memory"))
    rows += orchestration_rows(o)
    if m:
        rows.append(("metrics: reference / project", f"{m['speedup']:.1f}x", ">= 10x",
                     f"{m['label_maps']} maps {m['size']} px; identical: {m['identical']}"))
    if lo:
        rows.append(("loading: loader / raw decode", f"{lo['ratio']:.2f}x", ">= 0.9x",
                     f"{lo['loader_img_s']:.0f} vs {lo['raw_decode_img_s']:.0f} img/s, {lo['workers']} workers"))
    if t:
        rows.append(("trainer step / bare smp step", f"{t['ratio']:.2f}x", "<= 1.10x",
                     f"{t['trainer_s_per_step']:.2f} vs {t['bare_smp_s_per_step']:.2f} s/step (median of paired steps)"))
    if mem:
        if "tiny_kedro_run_peak_mib" in mem:
            rows.append(("peak RSS, tiny `kedro run`", f"{mem['tiny_kedro_run_peak_mib']:.0f} MiB", "<= 4096 MiB",
                         f"{mem['tiny_kedro_run_s']:.0f} s"))
        if "stream_growth_10k_to_100k_mib" in mem:
            rows.append(("shard task's table read, 10k -> 100k rows", f"{mem['stream_growth_10k_to_100k_mib']:+.0f} MiB", "flat",
                         f"pandas load: {mem['pandas_growth_10k_to_100k_mib']:+.0f} MiB"))
    if o.get("generation_worker_peak_mib"):
        rows.append(("peak RSS, one generation worker", f"{o['generation_worker_peak_mib']:.0f} MiB", "",
                     f"{o['samples']} samples at 256 px, {o['generation_worker_s']:.0f} s"))
    g = results.get("gpu", {})
    rows.append(("gpu", g.get("skipped") and f"skipped: {g['skipped']}" or "see results.json", "", ""))
    lines = ["| measurement | value | target | details |", "| --- | ---: | ---: | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--rounds", type=int, default=None,
                        help="orchestration rounds of every comparison (default 8 Kedro, 8 Prefect, 4 scaled); "
                             "fewer for a quick look, at the cost of wider intervals")
    args = parser.parse_args(argv)
    chosen = [s for s in args.only.split(",") if s]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    results: dict = {"measured_on": f"{platform.machine()}, {os.cpu_count()} CPU cores, "
                                    f"load average {os.getloadavg()[0]:.1f} at start, torch {torch.__version__}",
                     "cuda": torch.cuda.is_available()}
    runners = {
        "components": components, "metrics": metrics_bench.run,
        "orchestration": (orchestration.run if args.rounds is None else lambda: orchestration.run(
            repeats=args.rounds, prefect_repeats=args.rounds, scaled_repeats=args.rounds)),
        "loading": training_bench.loading, "trainer": training_bench.trainer_step,
        "memory": lambda: {**memory.streaming(), **memory.tiny_run()}, "gpu": gpu.run,
    }
    start = time.perf_counter()
    for name in chosen:
        began = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        results[name] = runners[name]()
        print(f"[bench] {name}: {json.dumps(results[name], default=float)[:300]} ({time.perf_counter() - began:.0f} s)",
              flush=True)
    results["total_s"] = time.perf_counter() - start
    results["load_average_at_end"] = os.getloadavg()[0]
    print()
    print("\n".join(table(results)))
    print(f"\nmeasured on: {results['measured_on']}; load average at end {results['load_average_at_end']:.1f}; "
          f"total {results['total_s']:.0f} s")
    out = REPO / "benchmarks" / "results.json"
    out.write_text(json.dumps(results, indent=2, default=float))
    print(f"written {out}")


if __name__ == "__main__":
    main()
