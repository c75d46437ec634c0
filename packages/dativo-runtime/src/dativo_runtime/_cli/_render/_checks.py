"""How a person sees ``check``'s connection reports, ``validate``'s plan and ``discover``'s streams."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dativo_runtime._cli._render._console import console, escaped_lines, escaped_text
from dativo_runtime._observability._plugin_frames import frame_lines

if TYPE_CHECKING:
    from rich.console import Console

    from dativo_runtime._engine._checks import CheckReport
    from dativo_runtime._engine._validation_plan import ValidationPlan

__all__ = ["render_checks", "render_discovery", "render_validation"]


def render_checks(job_id: str, reports: list[CheckReport]) -> None:
    """Print one row per side of the job: plugin, result, message."""
    from rich.table import Table

    table = Table(title=escaped_text(f"{job_id}: connection checks"), title_justify="left")
    for column in ("side", "plugin", "result", "message"):
        table.add_column(column)
    for report in reports:
        mark = (
            escaped_text("ok", style="green")
            if report.result.success
            else escaped_text(report.result.error_code, style="red")
        )
        table.add_row(report.role, escaped_text(report.plugin), mark, escaped_text(report.result.message))
    out = console()
    out.print(table)
    for report in reports:
        _print_frames(out, f"{report.role} ({report.plugin}) failed", report.result.details)


def _print_frames(out: Console, what: str, details: Mapping[str, Any] | None) -> None:
    """Print where a plugin's error was raised, under ``what``, when its details say."""
    lines = frame_lines(details)
    if lines:
        out.print(escaped_lines([f"{what}:", *lines]))


def render_validation(job_id: str, plan: ValidationPlan) -> None:
    """Print one row per step of the plan: whether it passed and what it found."""
    from rich.table import Table

    table = Table(title=escaped_text(f"{job_id}: validation"), title_justify="left")
    for column in ("step", "ok", "details"):
        table.add_column(column)
    for step in plan.steps:
        table.add_row(
            step["step"],
            "[green]yes[/green]" if step["ok"] else "[red]no[/red]",
            escaped_text(step["message"]),
        )
    out = console()
    out.print(table)
    for step in plan.steps:
        if not step["ok"]:
            _print_frames(out, f"{step['step']} failed", step)


def render_discovery(result: dict[str, Any]) -> None:
    """Print the plugin, then one table of columns per discovered stream."""
    from rich.table import Table

    out = console()
    info = result["plugin"]
    named = info["class_name"]
    if named != info["ref"]:  # A module's class: say the reference too (a file's name is its reference).
        named = f"{named} ({info['ref']})"
    out.print(escaped_text(f"{named} {info.get('plugin_version') or ''}".rstrip()))
    for stream in result.get("objects", []):
        chosen = " (selected)" if result.get("selected_stream") == stream["name"] else ""
        title = escaped_text(f"stream {stream['name']}{chosen} [{stream['type']}]")
        table = Table(title=title, title_justify="left")
        for column in ("column", "type", "nullable"):
            table.add_column(column)
        for col in stream["schema"]:
            table.add_row(
                escaped_text(col["name"]), escaped_text(col["type"]), "yes" if col["nullable"] else "no"
            )
        out.print(table)
    if not result.get("objects"):
        out.print("no streams discovered")
