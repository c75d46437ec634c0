"""The consoles ``dativo-run`` prints to (secrets masked), and its one JSON document for machines.

Text a plugin chose (an error message, a stream or partition name, a check's message) is
printed through :func:`escaped_text` or :func:`escaped_lines`: rich keeps escape sequences
in a ``Text``, so a plugin could otherwise clear the terminal or forge a line of output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dativo_runtime._observability._logging import escape_control
from dativo_runtime._observability._plugin_frames import without_internal_frames
from dativo_runtime._secrets import REDACTOR, RedactingStream

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = ["console", "emit_json", "error_console", "escaped_lines", "escaped_text"]


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


def escaped_text(value: object, style: str = "") -> Text:
    """``str(value)`` as a rich ``Text``, its control characters shown as escapes (``\\x1b``, ``\\n``).

    Args:
        value: What to show (plugin-provided text, usually).
        style: A rich style for the whole text.

    Returns:
        The text: it can neither drive the terminal nor start a new line.
    """
    from rich.text import Text

    return Text(escape_control(str(value)), style=style)


def escaped_lines(lines: Iterable[object]) -> Text:
    """Lines as one rich ``Text``: each line's control characters shown as escapes, then joined by newlines.

    Args:
        lines: The lines (each may hold plugin-provided text).

    Returns:
        The text: as many lines as given, whatever they hold.
    """
    from rich.text import Text

    return Text("\n".join(escape_control(str(line)) for line in lines))


def emit_json(data: Any) -> None:
    """Print one JSON document on stdout, secrets masked, the runtime's own frames only at debug level."""
    text = json.dumps(
        REDACTOR.redact(without_internal_frames(data)), indent=2, default=str, ensure_ascii=False
    )
    sys.stdout.write(REDACTOR.redact_text(text) + "\n")
    sys.stdout.flush()
