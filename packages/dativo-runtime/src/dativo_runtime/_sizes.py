"""Byte sizes written by people: ``512m``, ``1g``, ``128MB``, ``64 KiB`` or a plain integer."""

from __future__ import annotations

import re

__all__ = ["parse_byte_size"]

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_byte_size(value: int | float | str, *, what: str = "size") -> int:
    """Return a byte count from an integer or a string such as ``512m`` or ``1.5GiB``.

    Units are binary multiples whatever the spelling: ``k``/``kb``/``kib`` is 1024 bytes,
    ``m`` 1024², ``g`` 1024³, ``t`` 1024⁴ (as Docker reads ``--memory``).

    Args:
        value: An integer number of bytes or a string with an optional unit.
        what: Name used in the error message.

    Returns:
        The size in bytes (at least 1).

    Raises:
        ValueError: If the value is not a positive size.

    Example:
        >>> parse_byte_size("512m")
        536870912
        >>> parse_byte_size("128MB") == 128 * 1024 * 1024
        True
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number of bytes or a string like '512m', got {value!r}")
    if isinstance(value, (int, float)):
        size = int(value)
    else:
        match = _SIZE.match(str(value))
        if not match:
            raise ValueError(
                f"{what} {value!r} is not a size; write bytes as an integer or a number with a unit "
                "k, m, g or t (binary multiples), e.g. '512m' or '1g'"
            )
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size < 1:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return size
