"""How a person sees one run's :class:`RunResult`: outcome, counts, output, how to read it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_runtime._cli._render._console import error_console, escaped_lines, escaped_text
from dativo_runtime._observability._plugin_frames import frame_lines

if TYPE_CHECKING:
    from rich.console import Console

    from dativo_runtime._engine._outcome import RunResult

__all__ = ["render_run"]


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # pragma: no cover


def _read_hint(result: RunResult) -> str | None:
    if not result.output or not result.files or not result.manifest:
        return None  # Only a parquet dataset (its runs have manifests) is read this way.
    if result.output.startswith("s3://"):
        return f"pyarrow.dataset.dataset('{result.output}', format='parquet', partitioning='hive')"
    query = f"SELECT count(*) FROM read_parquet('{result.output}/**/*.parquet', hive_partitioning=true)"
    return f'duckdb -c "{query}"'


def render_run(result: RunResult, out: Console) -> None:
    """Print a run's summary: outcome, counts, where the output is, how to read it."""
    from rich.markup import escape
    from rich.table import Table

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
    if result.partitions:
        done = sum(1 for p in result.partitions if p.get("complete"))
        busiest = sorted(result.partitions, key=lambda p: -int(p.get("records_read") or 0))[:3]
        shown = ", ".join(f"{p['name']} {p.get('records_read', 0)}" for p in busiest)
        more = " …" if len(result.partitions) > len(busiest) else ""
        table.add_row(
            "partitions", escaped_text(f"{done} of {len(result.partitions)} read to the end ({shown}{more})")
        )
    if result.succeeded:
        files = f"{len(result.files)} new file(s), {_size(result.bytes_written)}"
        table.add_row("output", escaped_text(f"{result.output or result.target}  ({files})"))
        if result.manifest:
            table.add_row("manifest", escaped_text(result.manifest))
        if result.quarantine_output:
            table.add_row("quarantine", escaped_text(result.quarantine_output))
        if result.state_uri and result.state is not None:
            table.add_row("state", escaped_text(result.state_uri))
        if result.attempts > 1:
            table.add_row("attempts", str(result.attempts))
        hint = _read_hint(result)
        if hint:
            table.add_row("read it", escaped_text(hint))
        if result.records_read == 0 and result.state is not None:
            table.add_row("note", "no new records since the last committed run (incremental)")
    out.print(table)
    by_field = result.validation.get("by_field") or []
    if by_field:
        problems = Table(title="invalid values", title_justify="left")
        for column in ("field", "reason", "count"):
            problems.add_column(column)
        for row in by_field:
            problems.add_row(escaped_text(row["field"]), escaped_text(row["reason"]), str(row["count"]))
        out.print(problems)
        examples = result.validation.get("examples") or []
        if examples:
            sample = Table(title="first examples", title_justify="left")
            for column in ("record", "field", "value", "problem"):
                sample.add_column(column)
            for example in examples[:5]:
                sample.add_row(
                    escaped_text(example["record"]),
                    escaped_text(example["field"]),
                    escaped_text(repr(example["value"])),
                    escaped_text(example["message"]),
                )
            out.print(sample)
    if result.error is not None:
        lines = [f"error: {result.error.message}", *frame_lines(result.error.details)]
        error_console().print(escaped_lines(lines))
