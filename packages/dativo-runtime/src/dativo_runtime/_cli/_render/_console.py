"""The consoles ``dativo-run`` prints to (secrets masked), and its one JSON document for machines."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from dativo_runtime._observability._plugin_frames import without_internal_frames
from dativo_runtime._secrets import REDACTOR, RedactingStream

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "emit_json", "error_console"]


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
    """Print one JSON document on stdout, secrets masked, the runtime's own frames only at debug level."""
    text = json.dumps(
        REDACTOR.redact(without_internal_frames(data)), indent=2, default=str, ensure_ascii=False
    )
    sys.stdout.write(REDACTOR.redact_text(text) + "\n")
    sys.stdout.flush()
