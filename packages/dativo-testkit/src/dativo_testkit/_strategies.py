"""Hypothesis strategies for SDK schemas, valid records and invalid records.

Hypothesis is imported when a strategy is first built, not when the testkit is
imported, so the pytest plugin stays cheap to load.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dativo_plugin_sdk import Column, ColumnType, Record

from ._records import EDGE_VALUES, WRONG_VALUES

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "batch_strategy",
    "invalid_record_strategy",
    "record_strategy",
    "schema_strategy",
    "value_strategy",
]

_INT64 = (-(2**63), 2**63 - 1)
_MIN_MOMENT = datetime(1900, 1, 2)
_MAX_MOMENT = datetime(2200, 12, 30)


def _base_strategy(column_type: ColumnType) -> SearchStrategy[Any]:
    from hypothesis import strategies as st

    text = st.text(st.characters(codec="utf-8"), max_size=40)
    if column_type is ColumnType.STRING:
        return text
    if column_type is ColumnType.INTEGER:
        return st.integers(*_INT64)
    if column_type is ColumnType.FLOAT:
        return st.floats(allow_nan=False, allow_infinity=False)
    if column_type is ColumnType.BOOLEAN:
        return st.booleans()
    if column_type is ColumnType.TIMESTAMP:
        offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
        return st.datetimes(min_value=_MIN_MOMENT, max_value=_MAX_MOMENT, timezones=offsets)
    if column_type is ColumnType.DATE:
        return st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
    if column_type is ColumnType.DECIMAL:
        return st.integers(0, 9).flatmap(_decimals_with_places)
    if column_type is ColumnType.BINARY:
        return st.binary(max_size=64)
    scalars = (
        st.booleans()
        | st.integers(*_INT64)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(st.characters(codec="utf-8"), max_size=20)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=10), children, max_size=4)
        ),
        max_leaves=10,
    )


def _decimals_with_places(places: int) -> SearchStrategy[Decimal]:
    from hypothesis import strategies as st

    # Built from integers and text: decimal arithmetic (and st.decimals' bounds) round in
    # the default 28-digit context, which would reach 1E+29, one digit too many.
    bound = 10 ** (29 + places) - 1
    return st.integers(-bound, bound).map(lambda unscaled: Decimal(f"{unscaled}E-{places}"))


def value_strategy(column: Column) -> SearchStrategy[Any]:
    """Generate valid values for ``column``, edge values included, ``None`` when nullable.

    Timestamps are time-zone-aware (offsets -14:00 to +14:00, years 1900-2200), decimals
    fit ``decimal(38, 9)``, integers span int64, text is any UTF-8-encodable unicode.

    Args:
        column: The column to generate values for.

    Returns:
        A hypothesis strategy.
    """
    from hypothesis import strategies as st

    strategy = st.sampled_from(EDGE_VALUES[column.type]) | _base_strategy(column.type)
    return st.none() | strategy if column.nullable else strategy


def record_strategy(schema: Sequence[Column]) -> SearchStrategy[Record]:
    """Generate valid records for ``schema`` (every column present, nulls where nullable).

    Args:
        schema: The columns.

    Returns:
        A hypothesis strategy of dict records.

    Example:
        >>> from hypothesis import given
        >>> from dativo_testkit import ALL_TYPES_SCHEMA, find_schema_violations, record_strategy
        >>> @given(record_strategy(ALL_TYPES_SCHEMA))
        ... def test_valid(record):
        ...     assert find_schema_violations([record], ALL_TYPES_SCHEMA) == []
    """
    from hypothesis import strategies as st

    return st.fixed_dictionaries({column.name: value_strategy(column) for column in schema})


def batch_strategy(
    schema: Sequence[Column], *, min_size: int = 1, max_size: int = 20
) -> SearchStrategy[list[Record]]:
    """Generate batches (lists) of valid records for ``schema``.

    Args:
        schema: The columns.
        min_size: Fewest records in a batch.
        max_size: Most records in a batch.

    Returns:
        A hypothesis strategy of lists of dict records.
    """
    from hypothesis import strategies as st

    return st.lists(record_strategy(schema), min_size=min_size, max_size=max_size)


def invalid_record_strategy(schema: Sequence[Column]) -> SearchStrategy[Record]:
    """Generate records that violate ``schema``: one wrong-typed value or one missing required column.

    Args:
        schema: The columns; must not be empty.

    Returns:
        A hypothesis strategy of dict records, each with exactly one problem.

    Raises:
        ValueError: If ``schema`` is empty.
    """
    from hypothesis import strategies as st

    if not schema:
        raise ValueError("an empty schema has no invalid records")
    breakages: list[tuple[str, SearchStrategy[Any] | None]] = [
        (c.name, st.sampled_from(WRONG_VALUES[c.type])) for c in schema
    ]
    breakages += [(c.name, None) for c in schema if not c.nullable]

    def _break(pair: tuple[Record, tuple[str, SearchStrategy[Any] | None]]) -> SearchStrategy[Record]:
        record, (name, wrong) = pair
        if wrong is None:
            return st.just({k: v for k, v in record.items() if k != name})
        return wrong.map(lambda value: {**record, name: value})

    return st.tuples(record_strategy(schema), st.sampled_from(breakages)).flatmap(_break)


def schema_strategy(*, min_columns: int = 1, max_columns: int = 8) -> SearchStrategy[tuple[Column, ...]]:
    """Generate SDK schemas: unique snake_case column names, any column type, either nullability.

    Args:
        min_columns: Fewest columns.
        max_columns: Most columns.

    Returns:
        A hypothesis strategy of column tuples.
    """
    from hypothesis import strategies as st

    column = st.builds(
        Column,
        name=st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True),
        type=st.sampled_from(list(ColumnType)),
        nullable=st.booleans(),
    )
    columns = st.lists(column, min_size=min_columns, max_size=max_columns, unique_by=lambda c: c.name)
    return columns.map(tuple)
