"""Checking records against SDK columns: dict batches by Python type, Arrow batches by Arrow type."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dativo_plugin_sdk import Batch, Column, ColumnType, is_arrow_batch
from dativo_plugin_sdk._arrow import as_arrow_table, import_pyarrow

__all__ = ["SchemaViolation", "find_schema_violations", "value_problem"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
_DECIMAL_INTEGER_DIGITS = 29  # decimal128(38, 9): 38 digits, 9 of them after the point
_DECIMAL_SCALE = 9


@dataclass(frozen=True)
class SchemaViolation:
    """One value that does not match its column.

    Attributes:
        record_index: Position of the record in its batch.
        column: The column name (empty when the record itself is not a dict).
        problem: What is wrong, e.g. ``"expected integer, got str"``.
        value: The offending value.
    """

    record_index: int
    column: str
    problem: str
    value: Any = None

    def __str__(self) -> str:
        where = f"record {self.record_index}" + (f", column {self.column!r}" if self.column else "")
        return f"{where}: {self.problem} (value {_short_repr(self.value)})"


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _timestamp_text_problem(text: str) -> str | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return "expected an ISO 8601 timestamp, got text that is not one"
    if moment.utcoffset() is None:
        return "expected a time-zone-aware timestamp, got ISO text without an offset"
    return None


def _decimal_problem(number: Decimal) -> str | None:
    if not number.is_finite():
        return "expected a finite decimal"
    _sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite, checked above
    integer_digits = max(len(digits) + exponent, 0)
    if integer_digits > _DECIMAL_INTEGER_DIGITS:
        return f"decimal has {integer_digits} digits before the point; decimal(38, 9) holds 29"
    # Digits past the 9th decimal place must be zeros; no arithmetic, which would round.
    beyond = -exponent - _DECIMAL_SCALE
    if beyond > 0 and any(digits[-beyond:]):
        return "decimal has more than 9 digits after the point; decimal(38, 9) would round it"
    return None


def value_problem(column_type: ColumnType, value: Any) -> str | None:
    """Say why a non-null Python ``value`` does not fit ``column_type``, or return ``None``.

    The rules follow the SDK's type table: ``int`` (not ``bool``) within int64 for
    integer; ``float`` or ``int`` for float; aware ``datetime`` or ISO 8601 text with an
    offset for timestamp; ``date`` or ``YYYY-MM-DD`` for date; ``Decimal``, ``int`` or
    numeric text fitting ``decimal(38, 9)`` for decimal; ``bytes`` for binary; any
    JSON-serialisable value for json.

    Args:
        column_type: The declared type.
        value: A non-null value.

    Returns:
        A short description of the problem, or ``None`` when the value fits.
    """
    kind = type(value).__name__
    if column_type is ColumnType.STRING:
        return None if isinstance(value, str) else f"expected string, got {kind}"
    if column_type is ColumnType.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected integer, got {kind}"
        return None if _INT64_MIN <= value <= _INT64_MAX else "integer outside the int64 range"
    if column_type is ColumnType.FLOAT:
        ok = isinstance(value, (float, int)) and not isinstance(value, bool)
        return None if ok else f"expected float, got {kind}"
    if column_type is ColumnType.BOOLEAN:
        return None if isinstance(value, bool) else f"expected boolean, got {kind}"
    if column_type is ColumnType.TIMESTAMP:
        if isinstance(value, datetime):
            return (
                None
                if value.utcoffset() is not None
                else "expected a time-zone-aware datetime, got a naive one"
            )
        if isinstance(value, str):
            return _timestamp_text_problem(value)
        return f"expected timestamp (aware datetime or ISO 8601 text), got {kind}"
    if column_type is ColumnType.DATE:
        if isinstance(value, datetime):
            return "expected date, got datetime"
        if isinstance(value, date):
            return None
        if isinstance(value, str):
            try:
                ok = bool(_DATE_TEXT.fullmatch(value)) and date.fromisoformat(value) is not None
            except ValueError:
                ok = False
            return None if ok else "expected a YYYY-MM-DD date, got text that is not one"
        return f"expected date, got {kind}"
    if column_type is ColumnType.DECIMAL:
        if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
            return f"expected decimal (Decimal, int or numeric text), got {kind}"
        try:
            number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        except InvalidOperation:
            return "expected decimal, got text that is not a number"
        return _decimal_problem(number)
    if column_type is ColumnType.BINARY:
        return None if isinstance(value, (bytes, bytearray)) else f"expected binary (bytes), got {kind}"
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return f"expected a JSON-serialisable value, got {kind}"
    return None


def _dict_violations(records: list[Any], schema: Sequence[Column], limit: int) -> list[SchemaViolation]:
    columns = {c.name: c for c in schema}
    found: list[SchemaViolation] = []
    for index, record in enumerate(records):
        if len(found) >= limit:
            break
        if not isinstance(record, Mapping):
            found.append(
                SchemaViolation(index, "", f"record is a {type(record).__name__}, not a dict", record)
            )
            continue
        for key in record:
            if key not in columns:
                found.append(SchemaViolation(index, str(key), "column not in the schema", record[key]))
        for column in schema:
            value = record.get(column.name)
            if value is None:
                if not column.nullable:
                    absent = "null" if column.name in record else "missing"
                    found.append(SchemaViolation(index, column.name, f"required column is {absent}", None))
                continue
            problem = value_problem(column.type, value)
            if problem is not None:
                found.append(SchemaViolation(index, column.name, problem, value))
    return found[:limit]


def _arrow_type_fits(column_type: ColumnType, arrow_type: Any) -> bool:
    pa = import_pyarrow()
    t = pa.types
    is_string = (
        t.is_string(arrow_type) or t.is_large_string(arrow_type) or _is(t, "is_string_view", arrow_type)
    )
    checks: dict[ColumnType, bool] = {
        ColumnType.STRING: is_string,
        ColumnType.INTEGER: t.is_integer(arrow_type),
        ColumnType.FLOAT: t.is_floating(arrow_type) or t.is_integer(arrow_type),
        ColumnType.BOOLEAN: t.is_boolean(arrow_type),
        ColumnType.TIMESTAMP: t.is_timestamp(arrow_type) and arrow_type.tz is not None,
        ColumnType.DATE: t.is_date(arrow_type),
        ColumnType.DECIMAL: t.is_decimal(arrow_type) or t.is_integer(arrow_type),
        ColumnType.BINARY: t.is_binary(arrow_type)
        or t.is_large_binary(arrow_type)
        or t.is_fixed_size_binary(arrow_type)
        or _is(t, "is_binary_view", arrow_type),
        ColumnType.JSON: t.is_nested(arrow_type)
        or t.is_integer(arrow_type)
        or t.is_floating(arrow_type)
        or t.is_boolean(arrow_type)
        or t.is_null(arrow_type),
    }
    return checks[column_type]


def _is(types_module: Any, predicate: str, arrow_type: Any) -> bool:
    check = getattr(types_module, predicate, None)
    return bool(check(arrow_type)) if check is not None else False


# Column types whose Python form may be text: an Arrow string column is checked value by value.
_TEXT_FORMS = (ColumnType.TIMESTAMP, ColumnType.DATE, ColumnType.DECIMAL, ColumnType.JSON)


def _arrow_violations(batch: Any, schema: Sequence[Column], limit: int) -> list[SchemaViolation]:
    pa = import_pyarrow()
    table = as_arrow_table(batch)
    columns = {c.name: c for c in schema}
    found: list[SchemaViolation] = []
    for name in table.column_names:
        if name not in columns:
            found.append(
                SchemaViolation(
                    0, name, f"column not in the schema (Arrow type {table.schema.field(name).type})"
                )
            )
    for column in schema:
        if column.name not in table.column_names:
            if not column.nullable:
                found.append(
                    SchemaViolation(0, column.name, "required column is missing from the Arrow batch")
                )
            continue
        data = table.column(column.name)
        arrow_type = data.type
        is_text = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        if column.type in _TEXT_FORMS and is_text:
            for index, value in enumerate(data.to_pylist()):
                problem = None if value is None else _text_problem(column.type, value)
                if problem is not None:
                    found.append(SchemaViolation(index, column.name, problem, value))
                    break
        elif not _arrow_type_fits(column.type, arrow_type):
            found.append(
                SchemaViolation(
                    0, column.name, f"expected {column.type.value}, got Arrow type {arrow_type}", None
                )
            )
        if not column.nullable and data.null_count:
            first_null = next(i for i, v in enumerate(data.is_null().to_pylist()) if v)
            found.append(SchemaViolation(first_null, column.name, "required column is null", None))
    return found[:limit]


def _text_problem(column_type: ColumnType, text: str) -> str | None:
    if column_type is not ColumnType.JSON:
        return value_problem(column_type, text)
    try:
        json.loads(text)
    except ValueError:
        return "expected JSON text, got text that is not JSON"
    return None


def find_schema_violations(
    batch: Batch, schema: Sequence[Column], *, limit: int = 20
) -> list[SchemaViolation]:
    """Return the values of ``batch`` that do not match ``schema``.

    A dict batch is checked value by value (see :func:`value_problem`), also for
    required columns that are missing or null and keys the schema does not have. An Arrow
    batch is checked by column type (integer types for integer, floating for float,
    string for string, timestamp with a time zone for timestamp...) and by nulls in
    required columns.

    Args:
        batch: A list of dict records or an Arrow-compatible object.
        schema: The columns the records should match.
        limit: Stop after this many violations.

    Returns:
        The violations found, at most ``limit``; empty when the batch matches.

    Raises:
        TypeError: If ``batch`` is neither a list nor an Arrow-compatible object.
        ImportError: If ``batch`` is Arrow data and pyarrow is not installed.
    """
    if isinstance(batch, list):
        return _dict_violations(batch, schema, limit)
    if is_arrow_batch(batch):
        return _arrow_violations(batch, schema, limit)
    raise TypeError(f"a batch must be a list of dict records or Arrow data, got {type(batch).__name__}")
