"""Dotted paths into a decoded JSON body: ``meta.next_cursor``, ``data``, ``""`` for the body itself."""

from __future__ import annotations

from typing import Any

__all__ = ["value_at"]

_MISSING = object()


def value_at(document: Any, path: str) -> Any:
    """Return the value at ``path`` in ``document``, or ``None`` where a step is missing.

    Each dot-separated step is a key of an object or, when it is a number, an index of
    a list; the empty path is the document itself.

    Args:
        document: A decoded JSON value.
        path: The dotted path (``meta.next_cursor``, ``results.0.id``, ``""``).

    Returns:
        The value found, or ``None``.
    """
    current = document
    for step in path.split(".") if path else ():
        if isinstance(current, dict):
            current = current.get(step, _MISSING)
        elif isinstance(current, list) and step.lstrip("-").isdigit():
            index = int(step)
            current = current[index] if -len(current) <= index < len(current) else _MISSING
        else:
            current = _MISSING
        if current is _MISSING:
            return None
    return current
