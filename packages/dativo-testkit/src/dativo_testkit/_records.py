"""Deterministic record builders: typical valid records, edge values and invalid records."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from dativo_plugin_sdk import Column, ColumnType, Record

__all__ = [
    "ALL_TYPES_SCHEMA",
    "EDGE_VALUES",
    "WRONG_VALUES",
    "InvalidCase",
    "build_invalid_records",
    "build_record",
    "build_records",
    "edge_records",
    "invalid_cases",
    "sequential_index",
    "sequential_value",
]

ALL_TYPES_SCHEMA: tuple[Column, ...] = (
    Column("id", ColumnType.INTEGER, nullable=False, description="Record number, unique."),
    Column("name", ColumnType.STRING),
    Column("amount", ColumnType.FLOAT),
    Column("active", ColumnType.BOOLEAN),
    Column("updated_at", ColumnType.TIMESTAMP, nullable=False, description="Increases with id."),
    Column("birthday", ColumnType.DATE),
    Column("price", ColumnType.DECIMAL),
    Column("payload", ColumnType.BINARY),
    Column("attributes", ColumnType.JSON),
)
"""A schema with one column of every SDK column type; ``id`` and ``updated_at`` are required."""

BASE_TIMESTAMP = datetime(2024, 1, 1, tzinfo=timezone.utc)
BASE_DATE = date(2024, 1, 1)
_NULL_RATE = 0.1
_WORDS = ("alpha", "café", "naïve", "東京", "Zoë", "émoji 🎉", "größe", "línea", "data", "omega")

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# From text: arithmetic (even unary minus) rounds to the default 28-digit context.
_DECIMAL_MAX = Decimal("99999999999999999999999999999.999999999")
_DECIMAL_MIN = Decimal("-99999999999999999999999999999.999999999")

EDGE_VALUES: dict[ColumnType, tuple[Any, ...]] = {
    ColumnType.STRING: (
        "",
        " ",
        "café naïve",
        "日本語のテキスト",
        "emoji 🎉👍🏽",
        "nul \x00 inside",
        "line\nbreak\ttab\r",
        "quotes \" ' \\ backslash",
        "\u2028\u2029 separators",
        "x" * 1000,
    ),
    ColumnType.INTEGER: (0, 1, -1, 2**31 - 1, -(2**31), 2**53 + 1, _INT64_MAX, _INT64_MIN),
    ColumnType.FLOAT: (0.0, -0.0, 1.5, 0.1, 5e-324, 1e308, -1e308, 2.0**53),
    ColumnType.BOOLEAN: (True, False),
    ColumnType.TIMESTAMP: (
        datetime(1970, 1, 1, tzinfo=timezone.utc),
        datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=14))),
        datetime(1900, 1, 1, tzinfo=timezone(timedelta(hours=-12))),
        datetime(2200, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ),
    ColumnType.DATE: (date(1900, 1, 1), date(1970, 1, 1), date(2000, 2, 29), date(2200, 12, 31)),
    ColumnType.DECIMAL: (Decimal(0), Decimal("-0.000000001"), Decimal("1.5"), _DECIMAL_MAX, _DECIMAL_MIN),
    ColumnType.BINARY: (b"", b"\x00", bytes(range(256)), "héllo".encode()),
    ColumnType.JSON: ({}, [], "text", 0, 1.5, True, {"nested": {"list": [1, "two", None]}}, {"日本": "語"}),
}

# Values no reading of the SDK's type table accepts for the column type.
WRONG_VALUES: dict[ColumnType, tuple[Any, ...]] = {
    ColumnType.STRING: (12345, 1.5, True, ["a"]),
    ColumnType.INTEGER: ("not an integer", 1.5, True, [1]),
    ColumnType.FLOAT: ("not a float", True, [1.5]),
    ColumnType.BOOLEAN: ("not a boolean", 1, [True]),
    ColumnType.TIMESTAMP: (12345, 1.5, True, "not a timestamp"),
    ColumnType.DATE: (12345, 1.5, True, "not a date"),
    ColumnType.DECIMAL: ("not a number", True, [1]),
    ColumnType.BINARY: ("not bytes", 12345, True),
    ColumnType.JSON: ({1, 2}, object()),
}


def _typical_value(column_type: ColumnType, rng: random.Random, index: int) -> Any:
    if column_type is ColumnType.STRING:
        return f"{rng.choice(_WORDS)} {index}"
    if column_type is ColumnType.INTEGER:
        return rng.randint(-1_000_000, 1_000_000)
    if column_type is ColumnType.FLOAT:
        return round(rng.uniform(-1_000_000, 1_000_000), 3)
    if column_type is ColumnType.BOOLEAN:
        return rng.random() < 0.5
    if column_type is ColumnType.TIMESTAMP:
        return BASE_TIMESTAMP + timedelta(seconds=rng.randint(0, 10**8), microseconds=rng.randint(0, 999_999))
    if column_type is ColumnType.DATE:
        return BASE_DATE + timedelta(days=rng.randint(-20_000, 20_000))
    if column_type is ColumnType.DECIMAL:
        return Decimal(rng.randint(-(10**12), 10**12)).scaleb(-4)
    if column_type is ColumnType.BINARY:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 16)))
    return {"index": index, "tags": [rng.choice(_WORDS) for _ in range(rng.randint(0, 3))], "ok": True}


def sequential_value(column_type: ColumnType, index: int) -> Any:
    """Return the value record ``index`` holds in a column that increases with the index.

    Args:
        column_type: The column's type: integer, float, decimal, string, timestamp or date.
        index: The record's position, from 0.

    Returns:
        ``index + 1`` in the column's type; timestamps count seconds and dates days from
        2024-01-01, strings are zero-padded numbers.

    Raises:
        ValueError: For boolean, binary and json columns, which cannot increase.
    """
    if column_type is ColumnType.INTEGER:
        return index + 1
    if column_type is ColumnType.FLOAT:
        return float(index + 1)
    if column_type is ColumnType.DECIMAL:
        return Decimal(index + 1)
    if column_type is ColumnType.STRING:
        return f"{index + 1:012d}"
    if column_type is ColumnType.TIMESTAMP:
        return BASE_TIMESTAMP + timedelta(seconds=index)
    if column_type is ColumnType.DATE:
        return BASE_DATE + timedelta(days=index)
    raise ValueError(f"a {column_type.value} column cannot hold increasing values")


def sequential_index(column_type: ColumnType, value: Any) -> int:
    """Invert :func:`sequential_value`: the index of the record holding ``value``.

    ``value`` may be the JSON form kept in a ``State`` (ISO text for dates and times).

    Raises:
        ValueError: If ``value`` is not a value :func:`sequential_value` produces.
    """
    if column_type in (ColumnType.INTEGER, ColumnType.FLOAT, ColumnType.DECIMAL, ColumnType.STRING):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number) - 1
    if column_type is ColumnType.TIMESTAMP:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return int((moment - BASE_TIMESTAMP).total_seconds())
    if column_type is ColumnType.DATE:
        day = value if isinstance(value, date) else date.fromisoformat(str(value))
        return (day - BASE_DATE).days
    raise ValueError(f"a {column_type.value} column cannot hold increasing values")


def build_record(
    schema: Sequence[Column], index: int, *, seed: int = 0, sequential: Collection[str] = ()
) -> Record:
    """Build record number ``index`` of a deterministic, seeded sequence.

    The record depends only on ``seed`` and ``index``, so any slice of the sequence can be
    rebuilt on its own. Nullable columns are null in about one record in ten.

    Args:
        schema: The columns to fill.
        index: The record's position, from 0.
        seed: Seed of the sequence.
        sequential: Columns that increase with ``index`` (see :func:`sequential_value`);
            they are never null, so they serve as primary keys and cursors.

    Returns:
        One valid record for ``schema``.
    """
    rng = random.Random(f"dativo:{seed}:{index}")
    record: Record = {}
    for column in schema:
        if column.name in sequential:
            record[column.name] = sequential_value(column.type, index)
        elif column.nullable and rng.random() < _NULL_RATE:
            record[column.name] = None
        else:
            record[column.name] = _typical_value(column.type, rng, index)
    return record


def build_records(
    schema: Sequence[Column],
    count: int,
    *,
    seed: int = 0,
    start: int = 0,
    sequential: Collection[str] = (),
) -> list[Record]:
    """Build ``count`` typical valid records for ``schema``, deterministically.

    Args:
        schema: The columns to fill.
        count: How many records.
        seed: Seed of the sequence; the same seed gives the same records.
        start: Index of the first record, to continue a sequence.
        sequential: Columns that increase with the record index.

    Returns:
        The records, as dicts.

    Raises:
        ValueError: If ``count`` or ``start`` is negative.

    Example:
        >>> from dativo_testkit import ALL_TYPES_SCHEMA, build_records
        >>> records = build_records(ALL_TYPES_SCHEMA, 3, sequential=("id",))
        >>> [r["id"] for r in records]
        [1, 2, 3]
    """
    if count < 0 or start < 0:
        raise ValueError(f"count and start must be >= 0, got count={count}, start={start}")
    return [build_record(schema, i, seed=seed, sequential=sequential) for i in range(start, start + count)]


def edge_records(schema: Sequence[Column]) -> list[Record]:
    """Build valid records made of edge values for ``schema``.

    Edge values: empty and whitespace strings, non-ASCII text and emoji, NUL and line
    separators, the int64 extremes, ``-0.0`` and the float extremes, timestamps with
    offsets from -12:00 to +14:00, leap days, the largest ``decimal(38, 9)``, empty and
    all-byte binaries, nested JSON; and a null in every nullable column.

    Args:
        schema: The columns to fill.

    Returns:
        As many records as the longest list of edge values (plus one for nulls); record
        ``i`` holds edge value ``i`` (cycling) of each column. Values repeat, so a
        primary key column is not unique.
    """
    options: dict[str, tuple[Any, ...]] = {}
    for column in schema:
        values = EDGE_VALUES[column.type]
        options[column.name] = (*values, None) if column.nullable else values
    count = max((len(v) for v in options.values()), default=0)
    return [{name: values[i % len(values)] for name, values in options.items()} for i in range(count)]


@dataclass(frozen=True)
class InvalidCase:
    """One invalid record and what is wrong with it."""

    record: Record
    column: str
    problem: str


def invalid_cases(schema: Sequence[Column], *, seed: int = 0) -> list[InvalidCase]:
    """Return one invalid record per column (a wrong type) and per required column (missing)."""
    base = build_record(schema, 0, seed=seed)
    cases: list[InvalidCase] = []
    for column in schema:
        wrong = WRONG_VALUES[column.type][0]
        cases.append(
            InvalidCase(
                {**base, column.name: wrong},
                column.name,
                f"{type(wrong).__name__} in a {column.type.value} column",
            )
        )
        if not column.nullable:
            record = {k: v for k, v in base.items() if k != column.name}
            cases.append(InvalidCase(record, column.name, "required column missing"))
    return cases


def build_invalid_records(schema: Sequence[Column], *, seed: int = 0) -> list[Record]:
    """Build records that violate ``schema``: each has exactly one problem.

    One record per column holds a value of the wrong type (a string in an integer column,
    an integer in a timestamp column...), and one record per required column lacks it.

    Args:
        schema: The columns the records should have matched.
        seed: Seed for the valid values around the broken one.

    Returns:
        The invalid records.
    """
    return [case.record for case in invalid_cases(schema, seed=seed)]
