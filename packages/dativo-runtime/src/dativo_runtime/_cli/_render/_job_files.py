"""How a person sees a job's committed files and its saved state."""

from __future__ import annotations

import json
from typing import Any

from dativo_runtime._cli._render._console import console, escaped_text
from dativo_runtime._secrets import REDACTOR

__all__ = ["render_committed_files", "render_state", "render_state_reset"]


def render_committed_files(data: dict[str, Any]) -> None:
    """Print where the target is, how many runs and records it holds, then each file."""
    out = console()
    out.print(
        escaped_text(
            f"{data['location']}: {len(data['runs'])} committed run(s), {data['record_count']} records"
        )
    )
    for path in data["files"]:
        out.print(escaped_text(path))


def render_state(data: dict[str, Any]) -> None:
    """Print a job's state as indented JSON, secrets masked."""
    from rich.text import Text

    console().print(Text(json.dumps(REDACTOR.redact(data), indent=2)))


def render_state_reset(job_id: str, uri: str) -> None:
    """Say that a job's state was forgotten, and where it was."""
    from rich.text import Text

    console().print(Text(f"state of {job_id} reset ({uri})"))
