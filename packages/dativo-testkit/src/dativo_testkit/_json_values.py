"""Turning arbitrary values into JSON: for reports, JSON-lines files and error details."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

__all__ = ["json_default", "to_json_safe"]

_MAX_TEXT = 200


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def to_json_safe(value: Any, *, limit: int = _MAX_TEXT) -> Any:
    """Return ``value`` as plain JSON data for a human reading a report.

    Datetimes and dates become ISO 8601 text, decimals their string, bytes their
    ``repr``; long strings are shortened to ``limit`` characters.

    Args:
        value: Anything.
        limit: Longest string kept whole.

    Returns:
        Data that ``json.dumps`` accepts.
    """
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return _shorten(value, limit)
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _shorten(repr(bytes(value)), limit)
    if isinstance(value, Mapping):
        return {str(k): to_json_safe(v, limit=limit) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_safe(v, limit=limit) for v in value]
    return _shorten(repr(value), limit)


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` hook for record values: ISO dates, decimal text, hex bytes.

    Raises:
        TypeError: For values with no JSON form.
    """
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    raise TypeError(f"{type(value).__name__} has no JSON form")
