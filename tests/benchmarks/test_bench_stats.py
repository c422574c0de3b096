"""The statistics behind `make bench`'s orchestration rows: the paired-ratio interval covers the
true ratio as often as it claims, and CPU time counts this process, the children it waited for
and the children still running, but not time spent waiting."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks.run import orchestration_rows
from benchmarks.stats import format_interval, measure, ratio_interval

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n{then}"


def test_the_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(20261206)
    true_ratio, covered, trials = 1.07, 0, 2000
    for _ in range(trials):
        bare = rng.uniform(5.0, 7.0, size=8) * np.exp(rng.normal(0, 0.1, 8))  # load drifts per round
        side = bare * true_ratio * np.exp(rng.normal(0, 0.08, 8))
        summary = ratio_interval(side, bare)
        covered += summary["low"] <= true_ratio <= summary["high"]
    assert 0.93 <= covered / trials <= 0.97, covered / trials


def test_the_interval_is_the_t_interval_of_the_log_ratios_and_mirrors_for_the_inverse():
    side, bare = [6.0, 6.6, 5.9, 7.2], [5.0, 6.0, 5.5, 6.0]
    summary = ratio_interval(side, bare)
    logs = np.log(np.asarray(side) / np.asarray(bare))
    assert summary["ratio"] == pytest.approx(math.exp(logs.mean()))
    half = 3.182446305284263 * logs.std(ddof=1) / 2  # t(0.975, df=3)
    assert summary["low"] == pytest.approx(math.exp(logs.mean() - half))
    assert summary["high"] == pytest.approx(math.exp(logs.mean() + half))
    inverse = ratio_interval(bare, side)
    assert inverse["low"] == pytest.approx(1 / summary["high"]) and inverse["high"] == pytest.approx(1 / summary["low"])
    assert summary["rounds"] == 4 and summary["round_ratios"][0] == 1.2
    assert format_interval(summary).startswith(f"{summary['ratio']:.2f}x [")
    assert ratio_interval([2.0], [1.0])["low"] is None  # one round: no interval, said so


@pytest.mark.parametrize("numerator, denominator", [([1.0, 2.0], [1.0]), ([], []), ([1.0, 0.0], [1.0, 1.0]),
                                                    ([1.0, float("nan")], [1.0, 1.0])])
def test_bad_rounds_are_refused(numerator, denominator):
    with pytest.raises(ValueError):
        ratio_interval(numerator, denominator)


def test_cpu_time_counts_this_process_and_children_but_not_waiting():
    wall, cpu, _ = measure(lambda: time.sleep(0.4))
    assert wall >= 0.4 and cpu < 0.2
    wall, cpu, _ = measure(lambda: subprocess.run([sys.executable, "-c", BURN.format(seconds=0.5, then="")], check=True))
    assert cpu >= 0.45  # a child this process waited for (plus the interpreter's start-up)
    children = []

    def start_a_child_that_burns_then_sleeps() -> None:
        children.append(subprocess.Popen(
            [sys.executable, "-c", BURN.format(seconds=0.5, then="print('burnt', flush=True)\ntime.sleep(60)")],
            stdout=subprocess.PIPE, text=True))
        assert children[0].stdout.readline().strip() == "burnt"

    try:
        wall, cpu, _ = measure(start_a_child_that_burns_then_sleeps)
        assert children[0].poll() is None and cpu >= 0.45, cpu  # still running: counted while alive
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_the_table_prints_wall_and_cpu_ratios_with_their_intervals():
    side, bare = [6.0, 6.6, 5.9, 7.2], [5.0, 6.0, 5.5, 6.0]
    wall, cpu = ratio_interval(side, bare), ratio_interval([9.0, 9.5, 9.1, 9.9], [8.0, 8.4, 8.1, 8.7])
    o = {"samples": 70, "ratio": wall["ratio"], "ratio_ci95": [wall["low"], wall["high"]],
         "pair_ratios": wall["round_ratios"], "kedro_s": 6.3, "bare_loop_s": 5.75,
         "cpu_ratio": cpu["ratio"], "cpu_ratio_ci95": [cpu["low"], cpu["high"]],
         "cpu_pair_ratios": cpu["round_ratios"], "kedro_cpu_s": 9.3, "bare_loop_cpu_s": 8.2}
    (wall_row, cpu_row) = orchestration_rows(o)
    assert wall_row[0].endswith("wall") and wall_row[1] == format_interval(wall) and "4 rounds" in wall_row[3]
    assert cpu_row[0].endswith("CPU") and cpu_row[1] == format_interval(cpu) and "9.3 s vs 8.2 s CPU" in cpu_row[3]
