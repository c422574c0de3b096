"""Running a gate: its tables through Great Expectations 1.x suites built from conf/base/gates.yml.

A suite entry is a GE expectation by its snake-case name plus its keyword arguments, e.g.::

    - expectation: expect_column_values_to_be_between
      column: iou
      max_value: {param: perceive.iou_threshold}   # a run parameter
      severity: error                              # error (default) stops the run; warn only reports
      why: no pair of regions of one sample overlaps by IoU > 0.7

Values may reference run parameters (``{param: dotted.path}``) or the generator list
(``{generators: names}`` / ``{generators: labels}`` = 0..K). Great Expectations is imported on the
first gate only (it takes seconds) and runs in one ephemeral context per process.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.contract.schemas import gate_expectations
from pipelines.validation.tables import GateContext, GateSpec

logger = logging.getLogger(__name__)

SEVERITIES = {"error": "critical", "critical": "critical", "warn": "warning", "warning": "warning", "info": "info"}
_RESERVED = {"expectation", "severity", "why"}
_MAX_EXAMPLE_COLUMNS = 10


class GateConfigError(ValueError):
    """gates.yml names an unknown expectation, a bad argument or an unknown table."""


class GateFailure(RuntimeError):
    """A gate's error-severity expectation failed: the stage output must not reach the next stage."""

    def __init__(self, result: GateResult, report_path: str = ""):
        self.result = result
        self.report_path = report_path
        lines = [f"data quality gate {result.gate!r} failed after node {result.node!r}: "
                 f"{len(result.errors)} expectation(s) of severity error not met"]
        for outcome in result.errors[:8]:
            lines.append(f"  - {outcome.headline()}")
            for example in outcome.examples[:3]:
                lines.append(f"      e.g. {example}")
        if report_path:
            lines.append(f"report: {report_path}")
        super().__init__("\n".join(lines))


@dataclass
class Outcome:
    """One expectation's result on one table."""

    table: str
    expectation: str
    kwargs: dict[str, Any]
    severity: str  # "error" | "warn" | "info"
    success: bool
    why: str = ""
    element_count: int | None = None
    unexpected_count: int | None = None
    observed: Any = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    exception: str = ""

    def signature(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.expectation}({args})"

    def headline(self) -> str:
        if self.exception:
            detail = f"could not be evaluated: {self.exception}"
        elif self.unexpected_count is not None:
            detail = f"{self.unexpected_count} of {self.element_count} rows unexpected"
        else:
            detail = f"observed {self.observed!r}"
        why = f" [{self.why}]" if self.why else ""
        return f"table {self.table!r}: {self.signature()}: {detail}{why}"


@dataclass
class GateResult:
    gate: str
    node: str
    outcomes: list[Outcome]
    rows: dict[str, int]
    seconds: float

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity == "error"]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success and o.severity != "error"]

    @property
    def passed(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------------------------- Great Expectations
_GX_LOCK = threading.Lock()
_GX: dict[str, Any] = {}


def _great_expectations() -> dict[str, Any]:
    """The GE module, one ephemeral context and its pandas data source (made once per process)."""
    with _GX_LOCK:
        if not _GX:
            started = time.perf_counter()
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig
            from great_expectations.expectations.registry import get_expectation_impl

            for name in ("great_expectations", "great_expectations._docs_decorators"):
                logging.getLogger(name).setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            _GX.update(gx=gx, context=context, source=context.data_sources.add_pandas("editlens-gates"),
                       impl=get_expectation_impl, batches={})
            logger.info("Great Expectations %s ready in %.1f s", gx.__version__, time.perf_counter() - started)
        return _GX


def _batch_definition(name: str):
    gx = _great_expectations()
    if name not in gx["batches"]:
        gx["batches"][name] = gx["source"].add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    return gx["batches"][name]


# ---------------------------------------------------------------------------------------- config
def resolve_references(value: Any, ctx: GateContext) -> Any:
    """Replace ``{param: a.b}`` with the run parameter and ``{generators: names|labels}`` with the
    generator names / the label values 0..K, recursively."""
    if isinstance(value, dict):
        if set(value) == {"param"}:
            node: Any = ctx.params
            for part in str(value["param"]).split("."):
                if not isinstance(node, dict) or part not in node:
                    raise GateConfigError(f"gates.yml references parameter {value['param']!r}, which is not set")
                node = node[part]
            return node
        if set(value) == {"generators"}:
            if value["generators"] == "names":
                return list(ctx.generators)
            if value["generators"] == "labels":
                return list(range(len(ctx.generators) + 1))
            raise GateConfigError(f"{{generators: ...}} must be names or labels, got {value['generators']!r}")
        return {k: resolve_references(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, ctx) for v in value]
    return value


def _expectation(entry: dict[str, Any], where: str, ctx: GateContext, index: int = 0):
    if "expectation" not in entry:
        raise GateConfigError(f"{where}: each suite entry needs `expectation` (a Great Expectations name), got {entry}")
    name = entry["expectation"]
    severity = str(entry.get("severity", "error")).lower()
    if severity not in SEVERITIES:
        raise GateConfigError(f"{where}: severity must be error or warn, got {severity!r}")
    kwargs = resolve_references({k: v for k, v in entry.items() if k not in _RESERVED}, ctx)
    gx = _great_expectations()
    try:
        cls = gx["impl"](name)
    except Exception as exc:
        raise GateConfigError(f"{where}: unknown Great Expectations expectation {name!r}") from exc
    try:
        instance = cls(**kwargs, severity=SEVERITIES[severity], meta={"why": entry.get("why", ""), "editlens_index": index})
    except Exception as exc:
        raise GateConfigError(f"{where}: bad arguments for {name}: {exc}") from exc
    return instance, kwargs, "error" if SEVERITIES[severity] == "critical" else "warn"


def _examples(result: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    rows = result.get("partial_unexpected_index_list") or []
    if rows and isinstance(rows[0], dict):
        return [{k: _plain(v) for k, v in row.items()} for row in rows[:limit]]
    values = result.get("partial_unexpected_list") or []
    return [{"value": _plain(v)} for v in values[:limit]]


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    return value


def validate_table(gate: str, table: str, frame: pd.DataFrame, entries: list[dict[str, Any]], ctx: GateContext,
                   examples: int = 5) -> list[Outcome]:
    """Run one table's suite; every expectation gives an Outcome (GE exceptions become failures)."""
    if not entries:
        return []
    gx = _great_expectations()
    built = [_expectation(entry, f"gates.{gate}.tables.{table}[{i}]", ctx, i) for i, entry in enumerate(entries)]
    suite = gx["gx"].ExpectationSuite(name=f"{gate}.{table}")
    for instance, _, _ in built:
        suite.add_expectation(instance)
    frame = frame.reset_index(drop=True)
    batch = _batch_definition(f"{gate}.{table}").get_batch(batch_parameters={"dataframe": frame})
    # BASIC gives every count and observed value the report shows; only when an expectation
    # fails is the suite run again in SUMMARY with row ids, for the example rows (about a third
    # of a passing gate's time goes into collecting indices nobody reads).
    validation = batch.validate(suite, result_format={"result_format": "BASIC",
                                                      "partial_unexpected_count": max(examples, 1)})
    if not all(result.success for result in validation.results):
        id_columns = [str(c) for c in frame.columns[:_MAX_EXAMPLE_COLUMNS]]
        validation = batch.validate(suite, result_format={
            "result_format": "SUMMARY", "partial_unexpected_count": max(examples, 1),
            "unexpected_index_column_names": id_columns,
        })
    # GE does not return results in suite order (and ephemeral suites have no ids): match them
    # by the index we put in each expectation's meta.
    by_index = {result.expectation_config.meta.get("editlens_index"): result for result in validation.results}
    outcomes = []
    for index, ((_, kwargs, severity), entry) in enumerate(zip(built, entries)):
        result = by_index[index]
        info = result.exception_info or {}
        raised = info.get("raised_exception") if isinstance(info, dict) else False
        details = dict(result.result or {})
        outcomes.append(Outcome(
            table=table, expectation=entry["expectation"], kwargs=kwargs, severity=severity,
            success=bool(result.success) and not raised, why=entry.get("why", ""),
            element_count=details.get("element_count"), unexpected_count=details.get("unexpected_count"),
            observed=_plain(details.get("observed_value")), examples=_examples(details, examples),
            exception=str(info.get("exception_message") or "") if raised else "",
        ))
    return outcomes


def run_gate(spec: GateSpec, data: dict[str, Any], config: dict[str, Any], ctx: GateContext, node: str = "") -> GateResult:
    """Build the gate's tables from ``data`` and run its suites (``config['tables']``)."""
    started = time.perf_counter()
    suites = config.get("tables") or {}
    tables = spec.tables(data, ctx)
    unknown = sorted(set(suites) - set(tables))
    if unknown:
        raise GateConfigError(f"gates.{spec.name}: unknown table(s) {unknown}; this gate builds {sorted(tables)}")
    examples = int(config.get("examples", 5))
    outcomes: list[Outcome] = []
    # The contract's columns first (pipelines.contract.schemas), then the configured suite.
    for table in dict.fromkeys([*spec.contract, *suites]):
        entries = [*(gate_expectations(spec.contract[table]) if table in spec.contract else []),
                   *list(suites.get(table) or [])]
        outcomes += validate_table(spec.name, table, tables[table], entries, ctx, examples)
    return GateResult(spec.name, node, outcomes, {name: len(frame) for name, frame in tables.items()},
                      time.perf_counter() - started)
