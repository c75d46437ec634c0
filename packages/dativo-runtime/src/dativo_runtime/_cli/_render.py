"""How ``dativo-run`` shows results to people (rich tables) and machines (one JSON document)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dativo_runtime._secrets import REDACTOR, RedactingStream

if TYPE_CHECKING:
    from rich.console import Console

    from dativo_runtime._batch._runner import JobsReport
    from dativo_runtime._engine._pipeline import ProgressEvent, RunResult

__all__ = [
    "console",
    "emit_json",
    "error_console",
    "progress_bar",
    "render_run",
    "render_summary",
]


def _console(stream: Any) -> Console:
    # Off a terminal, rich would wrap at 80 columns and cut paths short; print long lines instead.
    from rich.console import Console

    width = None if getattr(stream, "isatty", lambda: False)() else 240
    return Console(file=RedactingStream(stream), highlight=False, soft_wrap=True, width=width)  # type: ignore[arg-type]


def console() -> Console:
    """A console on stdout that masks secrets (created per call: tests swap ``sys.stdout``)."""
    return _console(sys.stdout)


def error_console() -> Console:
    """A console on stderr that masks secrets."""
    return _console(sys.stderr)


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout, secrets masked."""
    text = json.dumps(REDACTOR.redact(data), indent=2, default=str, ensure_ascii=False)
    sys.stdout.write(REDACTOR.redact_text(text) + "\n")
    sys.stdout.flush()


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


def _read_hint(result: RunResult) -> str | None:
    if not result.output or not result.files:
        return None
    if result.output.startswith("s3://"):
        return f"pyarrow.dataset.dataset('{result.output}', format='parquet', partitioning='hive')"
    query = f"SELECT count(*) FROM read_parquet('{result.output}/**/*.parquet', hive_partitioning=true)"
    return f'duckdb -c "{query}"'


def render_run(result: RunResult, out: Console) -> None:
    """Print a run's summary: outcome, counts, where the output is, how to read it."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    name = f"{result.tenant}/{result.job}"
    if result.succeeded:
        out.print(
            f"[green]✓[/green] {escape(name)} succeeded in {result.duration_s:.2f}s (run {result.run_id})"
        )
    else:
        code = int(result.exit_code)
        out.print(f"[red]✗[/red] {escape(name)} failed with exit code {code} (run {result.run_id})")
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    counts = (
        f"read {result.records_read} · written {result.records_written} · invalid {result.records_invalid}"
        + (f" · quarantined {result.records_quarantined}" if result.records_quarantined else "")
    )
    table.add_row("records", counts)
    if result.succeeded:
        files = f"{len(result.files)} new file(s), {_size(result.bytes_written)}"
        table.add_row("output", Text(f"{result.output or result.target}  ({files})"))
        if result.manifest:
            table.add_row("manifest", Text(str(result.manifest)))
        if result.quarantine_output:
            table.add_row("quarantine", Text(str(result.quarantine_output)))
        if result.state_uri and result.state is not None:
            table.add_row("state", Text(str(result.state_uri)))
        if result.attempts > 1:
            table.add_row("attempts", str(result.attempts))
        hint = _read_hint(result)
        if hint:
            table.add_row("read it", Text(hint))
        if result.records_read == 0 and result.state is not None:
            table.add_row("note", "no new records since the last committed run (incremental)")
    out.print(table)
    by_field = result.validation.get("by_field") or []
    if by_field:
        problems = Table(title="invalid values", title_justify="left")
        for column in ("field", "reason", "count"):
            problems.add_column(column)
        for row in by_field:
            problems.add_row(str(row["field"]), str(row["reason"]), str(row["count"]))
        out.print(problems)
        examples = result.validation.get("examples") or []
        if examples:
            sample = Table(title="first examples", title_justify="left")
            for column in ("record", "field", "value", "problem"):
                sample.add_column(column)
            for example in examples[:5]:
                sample.add_row(
                    str(example["record"]),
                    str(example["field"]),
                    repr(example["value"]),
                    str(example["message"]),
                )
            out.print(sample)
    if result.error is not None:
        error_console().print(Text(f"error: {result.error.message}"))


def render_summary(report: JobsReport, out: Console) -> None:
    """Print one line per job of a ``--job-dir`` run and the combined exit code."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{len(report.outcomes)} job(s); exit code {int(report.exit_code)}", title_justify="left"
    )
    for column in ("job", "status", "exit", "read", "written", "invalid", "seconds", "error"):
        table.add_column(column, overflow="fold")
    for outcome in report.outcomes:
        summary = outcome.summary
        name = f"{outcome.tenant}/{outcome.job}" if outcome.job else str(outcome.path)
        style = {"succeeded": "green", "aborted": "yellow"}.get(outcome.status, "red")
        table.add_row(
            Text(name),
            Text(outcome.status, style=style),
            str(outcome.exit_code),
            str(summary.get("records_read", "")),
            str(summary.get("records_written", "")),
            str(summary.get("records_invalid", "")),
            f"{outcome.duration_s:.1f}",
            Text((outcome.error_message or "")[:200]),
        )
    out.print(table)


class _ConsoleStream:
    """A stream that prints log lines above a live progress bar instead of through it."""

    def __init__(self, target: Console) -> None:
        self.target = target

    def write(self, text: str) -> int:
        from rich.text import Text

        if text.strip():
            self.target.print(Text(text.rstrip("\n")), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""

    def isatty(self) -> bool:
        return True


@contextmanager
def progress_bar(enabled: bool, description: str) -> Iterator[Any]:
    """A progress bar on stderr with records, rate and elapsed time; a no-op when disabled.

    Yields:
        A callback taking :class:`ProgressEvent` objects.
    """
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    stderr_console = error_console()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("[bold]{task.fields[records]}[/bold] records"),
        TextColumn("{task.fields[rate]} rec/s"),
        TextColumn("{task.fields[invalid]} invalid"),
        TimeElapsedColumn(),
    )
    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    with Progress(*columns, console=stderr_console, transient=True) as progress:
        task = progress.add_task(description, total=None, records=0, rate="0", invalid=0)
        previous = [h.stream for h in handlers]
        for handler in handlers:
            handler.setStream(_ConsoleStream(progress.console))
        try:

            def update(event: ProgressEvent) -> None:
                rate = event.records_read / event.elapsed_s if event.elapsed_s > 0 else 0.0
                progress.update(
                    task,
                    total=event.estimate,
                    completed=event.records_read,
                    records=event.records_read,
                    rate=f"{rate:,.0f}",
                    invalid=event.records_invalid,
                )

            yield update
        finally:
            for handler, stream in zip(handlers, previous, strict=True):
                handler.setStream(stream)
