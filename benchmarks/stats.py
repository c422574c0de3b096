"""Wall and CPU time of one call, and confidence intervals for paired ratios.

On a shared machine wall time moves with everybody else's load; CPU time (user + system, of this
process, its threads and every process it started) moves much less, and shows work that wall time
hides (e.g. Prefect's API server, a separate process, serving a flow run). Rounds are paired (each
round runs both sides back to back), so the statistic is the ratio per round.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import psutil
from scipy import stats


def cpu_snapshot() -> dict[Any, float]:
    """CPU seconds (user + system) used so far by this process and each live descendant, keyed by
    (pid, start time) so a reused pid is a new process, plus ``"reaped"``: the children this
    process has already waited for (``os.times``). A grandchild that exited without being waited
    for by us is not counted (its parent's own counters hold it only if that parent waited)."""
    me = psutil.Process()
    snapshot: dict[Any, float] = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            with process.oneshot():
                times = process.cpu_times()
                snapshot[(process.pid, process.create_time())] = times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    reaped = os.times()
    snapshot["reaped"] = reaped.children_user + reaped.children_system
    return snapshot


def cpu_between(before: dict[Any, float], after: dict[Any, float]) -> float:
    """CPU seconds used between two ``cpu_snapshot`` calls: per process, after minus before
    (0 before for a process started in between); a process gone by ``after`` counts only
    through ``"reaped"``."""
    return float(sum(seconds - before.get(key, 0.0) for key, seconds in after.items()))


def measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``fn()`` once; returns (wall seconds, CPU seconds of this process tree, fn's result)."""
    before, start = cpu_snapshot(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - start
    return wall, cpu_between(before, cpu_snapshot()), out


def ratio_interval(numerator: Sequence[float], denominator: Sequence[float],
                   confidence: float = 0.95) -> dict[str, Any]:
    """Point estimate and confidence interval of the ratio ``numerator / denominator`` over paired
    rounds: Student's t-interval on the mean of the per-round log ratios, back-transformed, so the
    estimate is the geometric mean of the round ratios and the interval is multiplicative
    (a ratio and its inverse get mirrored intervals).

    Args:
        numerator, denominator: positive times, one per round, same length.
        confidence: two-sided coverage in (0, 1).
    Returns:
        {"ratio": geometric mean, "low", "high": interval bounds (None with fewer than 2 rounds),
        "median": median round ratio, "rounds": n, "round_ratios": each round's ratio}.
    Raises:
        ValueError: lengths differ, no round, a non-positive or non-finite time, or a confidence
        outside (0, 1).
    """
    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired rounds needed: got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all() and (a > 0).all() and (b > 0).all()):
        raise ValueError(f"times must be positive and finite: {a.tolist()} / {b.tolist()}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    logs = np.log(a / b)
    mean = float(logs.mean())
    out: dict[str, Any] = {"ratio": math.exp(mean), "low": None, "high": None, "median": float(np.median(a / b)),
                           "rounds": int(a.size), "round_ratios": [round(float(r), 3) for r in a / b]}
    if a.size > 1:
        half = float(stats.t.ppf(0.5 + confidence / 2, df=a.size - 1)) * float(logs.std(ddof=1)) / math.sqrt(a.size)
        out.update(low=math.exp(mean - half), high=math.exp(mean + half))
    return out


def format_interval(summary: dict[str, Any]) -> str:
    """``1.04x [0.98, 1.10]`` (or ``1.04x`` alone without an interval)."""
    text = f"{summary['ratio']:.2f}x"
    if summary.get("low") is not None:
        text += f" [{summary['low']:.2f}, {summary['high']:.2f}]"
    return text
