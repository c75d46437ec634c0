"""How a person sees ``sandbox doctor``: one line per backend, and why a probe failed."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from dativo_runtime._sandbox._doctor import BackendReport

__all__ = ["render_backends", "render_backends_json"]


def render_backends_json(reports: list[BackendReport]) -> None:
    """Print the machine, its kernel and each backend's report as one JSON document."""
    document = {
        "machine": platform.machine(),
        "kernel": platform.release(),
        "backends": [asdict(r) for r in reports],
    }
    typer.echo(json.dumps(document, indent=2))


def render_backends(reports: list[BackendReport]) -> None:
    """Print one line per backend: available or not, why, and its cold start."""
    for report in reports:
        mark = "ok " if report.available else "no "
        line = f"{mark} {report.name:8} {report.detail}"
        if report.cold_start_s is not None:
            line += f" | cold start {report.cold_start_s:.3f} s, probe run {report.probe_s:.3f} s"
        typer.echo(line)
        if report.error:
            typer.echo(f"    probe failed: {report.error}")
