"""Data quality gates between stages: Great Expectations 1.x suites (conf/base/gates.yml) run on
tables built from each stage's outputs, by ``pipelines.hooks.DataGateHooks`` after the node that
finishes a stage, in `kedro run` and in the Prefect flows alike (both run Kedro sessions)."""

from .report import render_markdown
from .suites import GateConfigError, GateFailure, GateResult, Outcome, resolve_references, run_gate
from .tables import GATES, GateContext, GateSpec

__all__ = [
    "GATES",
    "GateConfigError",
    "GateContext",
    "GateFailure",
    "GateResult",
    "GateSpec",
    "Outcome",
    "render_markdown",
    "resolve_references",
    "run_gate",
]
