"""A stream's columns inferred from its first page, for streams that declare no schema."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from dativo_plugin_sdk import Column, ColumnType

__all__ = ["infer_columns"]


def _is_timestamp(text: str) -> bool:
    if len(text) < 16 or ("T" not in text[:11] and " " not in text[:11]):
        return False
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment.utcoffset() is not None


def _is_date(text: str) -> bool:
    if len(text) != 10:
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _type_of(values: list[Any]) -> ColumnType:
    present = [v for v in values if v is not None]
    if not present:
        return ColumnType.STRING
    if all(isinstance(v, bool) for v in present):
        return ColumnType.BOOLEAN
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return ColumnType.INTEGER
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return ColumnType.FLOAT
    if all(isinstance(v, str) for v in present):
        if all(_is_timestamp(v) for v in present):
            return ColumnType.TIMESTAMP
        if all(_is_date(v) for v in present):
            return ColumnType.DATE
        return ColumnType.STRING
    return ColumnType.JSON


def infer_columns(records: Sequence[Any], primary_key: Sequence[str] = ()) -> list[Column]:
    """Infer columns from sample records: one per key, in order of first appearance.

    Integers, floats (integers and floats mixed), booleans, ISO 8601 timestamps with an
    offset, ``YYYY-MM-DD`` dates and other text keep their type; objects, lists and mixed
    values become ``json``. Primary key columns are required; every other is nullable (a
    page does not prove that a field is never null).

    Args:
        records: Sample records (dicts; anything else is skipped).
        primary_key: The stream's primary key columns.

    Returns:
        The columns.
    """
    names: dict[str, None] = {}
    for record in records:
        if isinstance(record, dict):
            names.update(dict.fromkeys(str(k) for k in record))
    keys = set(primary_key)
    columns = []
    for name in names:
        values = [r.get(name) for r in records if isinstance(r, dict)]
        columns.append(Column(name, _type_of(values), nullable=name not in keys))
    return columns
