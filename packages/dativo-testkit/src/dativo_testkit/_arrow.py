"""Arrow forms of SDK schemas and records; pyarrow is imported only when these are called."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from dativo_plugin_sdk import Column, ColumnType, Record

if TYPE_CHECKING:
    import pyarrow

__all__ = ["arrow_schema", "as_arrow_table", "import_pyarrow", "records_to_arrow"]


def import_pyarrow() -> Any:
    """Import pyarrow, or say how to install it.

    Returns:
        The ``pyarrow`` module.

    Raises:
        ImportError: If pyarrow is missing, naming the extra that installs it.
    """
    try:
        import pyarrow
    except ImportError:
        raise ImportError(
            "this needs pyarrow, which is not installed: pip install 'dativo-testkit[arrow]'"
        ) from None
    return pyarrow


def _arrow_type(column_type: ColumnType) -> pyarrow.DataType:
    pa = import_pyarrow()
    types: dict[ColumnType, pyarrow.DataType] = {
        ColumnType.STRING: pa.string(),
        ColumnType.INTEGER: pa.int64(),
        ColumnType.FLOAT: pa.float64(),
        ColumnType.BOOLEAN: pa.bool_(),
        ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        ColumnType.DATE: pa.date32(),
        ColumnType.DECIMAL: pa.decimal128(38, 9),
        ColumnType.BINARY: pa.binary(),
        ColumnType.JSON: pa.string(),
    }
    return types[column_type]


def arrow_schema(schema: Sequence[Column]) -> pyarrow.Schema:
    """Return the Arrow schema the runtime uses for SDK columns.

    Args:
        schema: SDK columns.

    Returns:
        A ``pyarrow.Schema``: string, int64, float64, bool, ``timestamp[us, tz=UTC]``,
        date32, ``decimal128(38, 9)``, binary, and string (JSON text) for json columns.

    Raises:
        ImportError: If pyarrow is not installed.
    """
    pa = import_pyarrow()
    result: pyarrow.Schema = pa.schema(
        [pa.field(c.name, _arrow_type(c.type), nullable=c.nullable) for c in schema]
    )
    return result


def _is_json_text(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _to_arrow_value(column_type: ColumnType, value: Any) -> Any:
    if value is None:
        return None
    if column_type is ColumnType.JSON:
        return value if isinstance(value, str) and _is_json_text(value) else json.dumps(value)
    if column_type is ColumnType.TIMESTAMP and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    if column_type is ColumnType.DATE and isinstance(value, str):
        return date.fromisoformat(value)
    if column_type is ColumnType.DECIMAL and not isinstance(value, Decimal):
        return Decimal(str(value))
    if column_type is ColumnType.FLOAT and isinstance(value, int):
        return float(value)
    return value


def records_to_arrow(records: Sequence[Record], schema: Sequence[Column]) -> pyarrow.Table:
    """Convert dict records to a ``pyarrow.Table`` with :func:`arrow_schema` types.

    JSON values become JSON text (a string that already is JSON text, as Arrow batches
    carry it, is kept); ISO strings in timestamp and date columns, and numbers in decimal
    columns, are converted. A required column holding nulls is marked
    nullable in the table's schema, so malformed data can be represented too.

    Args:
        records: Records matching ``schema``.
        schema: SDK columns; keys not in it are dropped.

    Returns:
        The table.

    Raises:
        ImportError: If pyarrow is not installed.
        pyarrow.ArrowInvalid: If a value does not fit its column type.
    """
    pa = import_pyarrow()
    arrays = []
    fields = []
    for column in schema:
        values = [_to_arrow_value(column.type, record.get(column.name)) for record in records]
        arrays.append(pa.array(values, type=_arrow_type(column.type)))
        nullable = column.nullable or any(v is None for v in values)
        fields.append(pa.field(column.name, _arrow_type(column.type), nullable=nullable))
    table: pyarrow.Table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return table


def as_arrow_table(batch: Any) -> pyarrow.Table:
    """Return an Arrow-compatible batch as a ``pyarrow.Table`` (zero-copy where possible)."""
    pa = import_pyarrow()
    table: pyarrow.Table
    if isinstance(batch, pa.Table):
        table = batch
    elif isinstance(batch, pa.RecordBatch):
        table = pa.Table.from_batches([batch])
    elif hasattr(batch, "__arrow_c_stream__"):
        table = pa.table(batch)
    else:
        table = pa.Table.from_batches([pa.record_batch(batch)])
    return table
