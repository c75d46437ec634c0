"""Which frames of a plugin's error a person or a machine sees: the plugin's own, or every one at debug level.

A plugin's error carries where it was raised in its ``details`` (see
:mod:`dativo_plugin_sdk._frames`): ``traceback``, the plugin's own frames, and
``full_traceback``, every frame with the runtime's, the SDK's and libraries' included.
The runtime shows the first everywhere (the human output, the logs, ``--json``) and the
second only when debug logging is on (``--log-level debug``); this module is that rule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from dativo_plugin_sdk._frames import format_frames

__all__ = [
    "FULL_TRACEBACK",
    "TRACEBACK",
    "frame_lines",
    "internal_frames_shown",
    "shown_frames",
    "without_internal_frames",
]

TRACEBACK = "traceback"
"""The details key of the plugin's own frames."""
FULL_TRACEBACK = "full_traceback"
"""The details key of every frame, shown only at debug level."""


def internal_frames_shown() -> bool:
    """Whether the runtime's own frames are shown: when debug logging is on (``--log-level debug``)."""
    return logging.getLogger("dativo").isEnabledFor(logging.DEBUG)


def shown_frames(details: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The frames of an error's ``details`` to show: every frame at debug level, else the plugin's.

    Args:
        details: An error's details (anything else shows nothing).

    Returns:
        The frames, innermost first (empty when the error says nothing about where).
    """
    if not isinstance(details, Mapping):
        return []
    frames = details.get(FULL_TRACEBACK) if internal_frames_shown() else None
    if not isinstance(frames, list) or not frames:
        frames = details.get(TRACEBACK)
    if not isinstance(frames, list):
        return []
    return [f for f in frames if isinstance(f, Mapping)]


def frame_lines(details: Mapping[str, Any] | None, *, indent: str = "  ") -> list[str]:
    """The ``at FILE:LINE in FUNCTION`` lines (each with its source line) of an error's details.

    Args:
        details: An error's details.
        indent: Put before each ``at`` line.

    Returns:
        The lines, innermost frame first; none when the error carries no frames.
    """
    return format_frames(shown_frames(details), indent=indent)


def without_internal_frames(data: Any) -> Any:
    """A copy of JSON data without ``full_traceback`` anywhere in it, unless debug logging is on.

    Args:
        data: A JSON document about to be printed (``--json``).

    Returns:
        ``data`` itself at debug level; otherwise a copy whose mappings have no
        ``full_traceback`` key (the plugin's own ``traceback`` stays).
    """
    if internal_frames_shown():
        return data
    return _drop(data)


def _drop(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _drop(v) for k, v in data.items() if k != FULL_TRACEBACK}
    if isinstance(data, list):
        return [_drop(v) for v in data]
    return data
