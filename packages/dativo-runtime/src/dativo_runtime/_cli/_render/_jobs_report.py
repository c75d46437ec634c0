"""How a person sees the jobs of ``run --job-dir``: one line per job as it ends, then a table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_runtime._cli._render._console import console, error_console, escaped_text
from dativo_runtime._cli._render._run_result import render_run
from dativo_runtime._engine._outcome import RunStatus

if TYPE_CHECKING:
    from rich.console import Console

    from dativo_runtime._batch._runner import JobOutcome, JobsReport

__all__ = ["render_outcome", "render_summary"]


def render_outcome(outcome: JobOutcome) -> None:
    """Print how one job ended: a run's whole summary when it ran here, else one line."""
    if outcome.in_process and outcome.result is not None:
        render_run(outcome.result, console())
    elif outcome.job is None:
        error_console().print(escaped_text(f"✗ {outcome.path}: {outcome.error_message}"))
    else:
        name = f"{outcome.tenant}/{outcome.job}"
        if outcome.status is RunStatus.SUCCEEDED:
            counts = outcome.summary
            console().print(
                escaped_text(
                    f"✓ {name} succeeded in {outcome.duration_s:.2f}s: read {counts.get('records_read', 0)}, "
                    f"written {counts.get('records_written', 0)}"
                )
            )
        else:
            reason = outcome.error_message or outcome.status.value
            error_console().print(
                escaped_text(f"✗ {name} {outcome.status.value} with exit code {outcome.exit_code}: {reason}")
            )


def render_summary(report: JobsReport, out: Console) -> None:
    """Print one line per job of a ``--job-dir`` run and the combined exit code."""
    from rich.table import Table

    table = Table(
        title=f"{len(report.outcomes)} job(s); exit code {int(report.exit_code)}", title_justify="left"
    )
    for column in ("job", "status", "exit", "read", "written", "invalid", "seconds", "error"):
        table.add_column(column, overflow="fold")
    for outcome in report.outcomes:
        summary = outcome.summary
        name = f"{outcome.tenant}/{outcome.job}" if outcome.job else str(outcome.path)
        style = {RunStatus.SUCCEEDED: "green", RunStatus.ABORTED: "yellow"}.get(outcome.status, "red")
        table.add_row(
            escaped_text(name),
            escaped_text(outcome.status.value, style=style),
            str(outcome.exit_code),
            str(summary.get("records_read", "")),
            str(summary.get("records_written", "")),
            str(summary.get("records_invalid", "")),
            f"{outcome.duration_s:.1f}",
            escaped_text((outcome.error_message or "")[:200]),
        )
    out.print(table)
