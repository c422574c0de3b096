"""Project hooks: log where the time goes, node by node."""

from __future__ import annotations

import logging
import time
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


class NodeTimingHooks:
    """Logs each node's wall time and a per-run summary, so a slow stage is visible in
    ``kedro run`` output and in the Prefect UI alike."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.timings: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any]) -> None:
        self.timings = {}

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        self.timings[node.name] = seconds
        logger.info("node %s took %.1f s", node.name, seconds)

    @hook_impl
    def after_pipeline_run(self) -> None:
        if self.timings:
            total = sum(self.timings.values())
            slowest = sorted(self.timings.items(), key=lambda kv: -kv[1])[:5]
            summary = ", ".join(f"{name} {sec:.1f}s" for name, sec in slowest)
            logger.info("pipeline nodes took %.1f s in all; slowest: %s", total, summary)
