"""Project hooks: log where the time goes, node by node; run the data quality gates between stages."""

from __future__ import annotations

import logging
import time
from typing import Any

from kedro.framework.hooks import hook_impl

from pipelines.contract.labels import run_label_space

logger = logging.getLogger(__name__)


class FilesystemHooks:
    """Registers the all-or-nothing fsspec filesystems (``pipelines.datasets.register_filesystems``)
    once the context exists and before Kedro builds the catalog, instead of on an import."""

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from pipelines.datasets import register_filesystems

        register_filesystems()


class TableSchemaHooks:
    """Checks every catalog table named in ``pipelines.contract.schemas`` against its schema when
    it is loaded and before it is saved: a wrong or missing column fails naming the table."""

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any) -> None:
        from pipelines.contract.schemas import check

        check(dataset_name, data, "loaded from the catalog")

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any) -> None:
        from pipelines.contract.schemas import check

        check(dataset_name, data, "about to be saved")


class NodeTimingHooks:
    """Logs each node's wall time and a per-run summary, so a slow stage is visible in
    ``kedro run`` output and in the Prefect UI alike."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.timings: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self.timings = {}
        # Configuration errors (unknown registry names, ratios, thresholds) fail here, before any node.
        if catalog is not None and "parameters" in catalog:
            from pipelines.config_checks import check_run

            check_run(catalog.load("parameters") or {}, pipeline)

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


class DataGateHooks:
    """Runs the data quality gate of a stage boundary right after the node that finishes it.

    ``after_node_run`` sees the node's outputs before the runner saves them, so a failing gate
    (an expectation of severity ``error``) raises ``GateFailure`` and the broken outputs never
    reach the catalog, nor the next stage. The gate writes its report through the catalog
    dataset ``gate_reports`` (data/08_reporting/gates/<gate>.md) whether it passes or not.
    Suites: the ``gates`` config (conf/<env>/gates.yml). Because Kedro runs the hook, gates run in
    `kedro run` and in the Prefect flows (one KedroSession per stage) alike.
    """

    REPORT_DATASET = "gate_reports"

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        from kedro.config import MissingConfigException

        try:
            self._config = dict((context.config_loader["gates"] or {}).get("gates") or {})
        except (KeyError, MissingConfigException):
            self._config = {}
        self._params = dict(context.params)

    @hook_impl
    def after_node_run(self, node: Any, catalog: Any, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        if not self._config or self._config.get("enabled", True) is False:
            return
        from pipelines.validation import GATES, GateContext, GateFailure, render_markdown, run_gate

        for spec in GATES.values():
            config = self._config.get(spec.name)
            if spec.after not in outputs or not config or config.get("enabled", True) is False:
                continue
            data = {**inputs, **outputs}
            missing = [name for name in spec.needs if name not in data]
            if missing:
                logger.info("gate %s skipped after %s: %s not among the node's inputs/outputs", spec.name, node.name, missing)
                continue
            generators = run_label_space(self._params) or [
                g["name"] if isinstance(g, dict) else str(g) for g in self._config.get("generators") or []]
            ctx = GateContext(params=self._params, generators=generators, options=dict(config.get("options") or {}))
            result = run_gate(spec, data, {"examples": self._config.get("examples", 5), **config}, ctx, node=node.name)
            path = self._save_report(catalog, spec.name, render_markdown(result))
            for outcome in result.warnings:
                logger.warning("gate %s (warn): %s", spec.name, outcome.headline())
            if result.errors:
                raise GateFailure(result, path)
            logger.info("gate %s passed after %s: %d expectations in %.2f s%s", spec.name, node.name,
                        len(result.outcomes), result.seconds,
                        f", {len(result.warnings)} warning(s)" if result.warnings else "")

    def _save_report(self, catalog: Any, gate: str, markdown: str) -> str:
        if self.REPORT_DATASET not in catalog:
            return ""
        catalog.save(self.REPORT_DATASET, {gate: markdown})
        dataset = catalog[self.REPORT_DATASET]
        folder = getattr(dataset, "_path", "")
        return f"{folder}/{gate}{getattr(dataset, '_filename_suffix', '')}" if folder else self.REPORT_DATASET


class QuarantineHooks:
    """When ingest or import stops (no usable image, a source that cannot be read), still write
    that run's ``ingest_issues`` and ``quarantine_report``: the items refused before the failure
    (``SourceError.issues``) and the failure itself, so the previous run's page never stays to
    mislead."""

    NODES = ("ingest_photos", "import_published")

    @hook_impl
    def on_node_error(self, error: Exception, node: Any, catalog: Any) -> None:
        if node.name not in self.NODES or catalog is None or "quarantine_report" not in catalog:
            return
        import pandas as pd

        from pipelines.ingest.nodes import ISSUE_COLUMNS, quarantine_report

        issues = pd.DataFrame(getattr(error, "issues", None) or [], columns=ISSUE_COLUMNS)
        page = quarantine_report(issues)
        try:
            catalog.save("ingest_issues", issues)
            catalog.save("quarantine_report", f"{page}\n## The run stopped\n\n{error}\n")
        except Exception as exc:  # the node's own error is the one to report
            logger.warning("could not write the quarantine page after %s failed: %s", node.name, exc)
