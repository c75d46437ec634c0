"""How a person sees plugin environments: builds in progress, what ``install`` did, the store, a prune."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dativo_runtime._cli._render._console import console, error_console, escaped_text

if TYPE_CHECKING:
    from dativo_runtime._engine._environments import InstallReport
    from dativo_runtime._plugins._environments import EnvironmentProgress, ProgressCallback, PruneReport

__all__ = [
    "environment_progress",
    "human_size",
    "render_environments",
    "render_install_report",
    "render_prune_report",
]


def human_size(size: int | None) -> str:
    """``1.5 MiB`` for a byte count; empty for ``None``."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop returns


def _ago(moment: str | datetime) -> str:
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    seconds = max(0.0, time.time() - when.timestamp())
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f}{unit} ago"
    return "just now"


@contextmanager
def environment_progress(enabled: bool) -> Iterator[ProgressCallback | None]:
    """A live display on stderr of the environments being built (uv's last line each); no-op when disabled.

    Yields:
        A callback taking :class:`EnvironmentProgress` events, or ``None`` when disabled.
    """
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[line]}[/dim]"),
    )
    with Progress(*columns, console=error_console(), transient=True) as progress:
        tasks: dict[str, Any] = {}

        def update(event: EnvironmentProgress) -> None:
            label = f"{event.key} ({event.origin})"
            if event.stage in ("building", "waiting"):
                verb = "building" if event.stage == "building" else "waiting for another build of"
                if event.key in tasks:
                    progress.remove_task(tasks.pop(event.key))
                tasks[event.key] = progress.add_task(f"{verb} {label}", total=None, line="")
            elif event.stage == "output" and event.key in tasks:
                progress.update(tasks[event.key], line=event.line.strip()[:100])
            elif event.stage in ("built", "failed"):
                if event.key in tasks:
                    progress.remove_task(tasks.pop(event.key))
                mark = "✓ built" if event.stage == "built" else "✗ failed to build"
                progress.console.print(Text(f"{mark} {label} in {event.elapsed_s:.1f}s"))

        yield update


def render_install_report(report: InstallReport) -> None:
    """Print one row per plugin of each job: environment key, plugin, requirements, size, built/reused."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"plugin environments in {report.store}", title_justify="left")
    for column in ("job", "role", "plugin", "environment", "requirements", "size", "status"):
        table.add_column(column, overflow="fold")
    styles = {"built": "green", "reused": "cyan", "none": "dim", "failed": "red"}
    for row in report.rows:
        spec = row.spec
        requirements = ", ".join(spec.requirements) if spec is not None else ""
        table.add_row(
            Text(row.job),
            row.role,
            Text(row.plugin),
            spec.key if spec is not None else "",
            Text(requirements if requirements else ("(none declared)" if row.status == "none" else "")),
            human_size(row.size_bytes()),
            Text(row.status, style=styles[row.status]),
        )
    console().print(table)
    for row in report.rows:
        if row.error is not None:
            error_console().print(
                escaped_text(f"error: {row.job} {row.role} {row.plugin}: {row.error.message}")
            )


def render_environments(data: dict[str, Any]) -> None:
    """Print the store's environments: key, requirements, origin, size, created, last used."""
    from rich.table import Table
    from rich.text import Text

    environments = data["environments"]
    total = sum(env["size_bytes"] for env in environments)
    table = Table(
        title=f"{len(environments)} plugin environment(s) in {data['store']}, {human_size(total)}",
        title_justify="left",
    )
    for column in ("key", "requirements", "origin", "python", "size", "created", "last used"):
        table.add_column(column, overflow="fold")
    for env in environments:
        table.add_row(
            env["env_key"],
            Text(", ".join(env["requirements"]) or "(none)"),
            Text(env["origin"]),
            env["python"],
            human_size(env["size_bytes"]),
            env["created"][:19].replace("T", " "),
            _ago(env["last_used"]),
        )
    console().print(table)


def render_prune_report(report: PruneReport) -> None:
    """Print what a prune removed (or would remove), and what it left because it is in use."""
    from rich.text import Text

    out = console()
    verb = "would remove" if report.dry_run else "removed"
    done = "to remove (dry run)" if report.dry_run else "removed"
    for env in report.removed:
        requirements = ", ".join(env.spec.requirements) or "(none)"
        out.print(Text(f"{verb} {env.key} ({requirements}), last used {_ago(env.last_used)}"))
    for key in report.in_use:
        out.print(Text(f"left {key}: in use or being built"))
    for name in report.leftovers:
        out.print(Text(f"removed leftover {name}"))
    out.print(
        Text(
            f"{len(report.removed)} environment(s) {done}, {human_size(report.freed_bytes)}; "
            f"{len(report.kept)} kept, {len(report.in_use)} in use"
        )
    )
