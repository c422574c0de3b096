"""A gate's result as a Markdown page (data/08_reporting/gates/<gate>.md): what was checked, what
failed, and the offending rows."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from pipelines.validation.suites import GateResult, Outcome


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def _examples_table(examples: list[dict[str, Any]]) -> list[str]:
    columns = list(dict.fromkeys(k for row in examples for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in examples]
    return lines


def _status(outcome: Outcome) -> str:
    if outcome.success:
        return "pass"
    return "**FAIL**" if outcome.severity == "error" else "warn"


def render_markdown(result: GateResult) -> str:
    """The report page for one gate run."""
    verdict = "FAILED" if result.errors else ("passed with warnings" if result.warnings else "passed")
    lines = [
        f"# Data quality gate `{result.gate}`: {verdict}",
        "",
        f"- after node: `{result.node}`",
        f"- checked: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}, {result.seconds:.2f} s",
        f"- expectations: {len(result.outcomes)}; failed (error): {len(result.errors)}; failed (warn): {len(result.warnings)}",
        f"- tables: " + ", ".join(f"`{name}` ({n} rows)" for name, n in result.rows.items()),
        "",
        "Suites are defined in `conf/base/gates.yml` (Great Expectations expectations; severity `error` stops the run,",
        "`warn` only reports).",
        "",
        "| status | severity | table | expectation | result | why |",
        "|---|---|---|---|---|---|",
    ]
    for o in result.outcomes:
        if o.exception:
            observed = f"not evaluated: {o.exception}"
        elif o.unexpected_count is not None:
            observed = f"{o.unexpected_count} / {o.element_count} unexpected"
        else:
            observed = f"observed {o.observed}"
        lines.append(f"| {_status(o)} | {o.severity} | `{o.table}` | `{_cell(o.signature())}` | {_cell(observed)} | {_cell(o.why)} |")
    failed = [o for o in result.outcomes if not o.success]
    if failed:
        lines += ["", "## Offending rows", ""]
        for o in failed:
            lines += [f"### {o.severity}: `{o.table}` — `{o.signature()}`", ""]
            if o.why:
                lines += [f"Why it matters: {o.why}", ""]
            if o.examples:
                lines += [*_examples_table(o.examples), ""]
            else:
                lines += [f"(no row-level examples: {('exception: ' + o.exception) if o.exception else 'observed ' + repr(o.observed)})", ""]
    return "\n".join(lines) + "\n"
