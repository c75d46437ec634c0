"""Turn whatever a reader yields into Arrow, once, at the edge of the plugin.

Used by the in-process backend and by the sandbox worker, so it imports only the
standard library, the SDK and pyarrow. Conversion is lenient on purpose: a value that
does not fit its column's type is kept as text (and the column becomes ``string``) so
that the host's validation can report *which* records are wrong instead of the whole
batch failing here.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import Column, ColumnType, ValidationError, is_arrow_batch

__all__ = [
    "arrow_schema_for",
    "arrow_type_for",
    "batch_to_arrow",
    "column_type_for_arrow",
]

_ARROW_TYPES: dict[ColumnType, pa.DataType] = {
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


def arrow_type_for(column_type: ColumnType | str) -> pa.DataType:
    """Return the Arrow type that stores an SDK column type (see ``ColumnType``)."""
    return _ARROW_TYPES[ColumnType(column_type)]


def arrow_schema_for(columns: Sequence[Column]) -> pa.Schema:
    """Return the Arrow schema of a list of SDK columns (``nullable`` kept; JSON marked in metadata)."""
    fields = []
    for column in columns:
        metadata = {b"dativo.type": column.type.value.encode()}
        fields.append(
            pa.field(column.name, arrow_type_for(column.type), nullable=column.nullable, metadata=metadata)
        )
    return pa.schema(fields)


def column_type_for_arrow(data_type: pa.DataType) -> ColumnType:
    """Return the SDK column type closest to an Arrow type (used by discovery of Arrow data)."""
    if pa.types.is_boolean(data_type):
        return ColumnType.BOOLEAN
    if pa.types.is_integer(data_type):
        return ColumnType.INTEGER
    if pa.types.is_floating(data_type):
        return ColumnType.FLOAT
    if pa.types.is_decimal(data_type):
        return ColumnType.DECIMAL
    if pa.types.is_timestamp(data_type):
        return ColumnType.TIMESTAMP
    if pa.types.is_date(data_type):
        return ColumnType.DATE
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return ColumnType.BINARY
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return ColumnType.STRING
    return ColumnType.JSON


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return str(value)
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _json_text(value: Any) -> Any:
    if value is None:
        return None
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def _column(values: list[Any], data_type: pa.DataType | None, is_json: bool) -> pa.Array[Any]:
    if is_json:
        return pa.array([_json_text(v) for v in values], pa.string())
    try:
        return pa.array(values, type=data_type, from_pandas=False)
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
        OverflowError,
        TypeError,
        ValueError,
    ):
        # Keep every value as text; validation in the host decides what is wrong.
        return pa.array([None if v is None else _as_text(v) for v in values], pa.string())


def _records_fast(records: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.RecordBatch | None:
    """Convert in one C++ pass (``from_pylist``) when every record fits the schema, else ``None``.

    About 40 % faster than the column-by-column conversion. It applies only when no record
    has a key outside the schema (those become extra columns for validation to report)
    and no column is JSON; any value that does not convert sends the batch to the lenient
    path. The result is what that path returns for the same records.
    """
    if any((f.metadata or {}).get(b"dativo.type") == b"json" for f in schema):
        return None
    try:
        keys = set().union(*records)
    except TypeError:  # A record that is not a mapping: the lenient path names it.
        return None
    if not keys <= set(schema.names):
        return None
    try:
        batch = pa.RecordBatch.from_pylist(list(records), schema=schema)
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
        pa.ArrowNotImplementedError,
        OverflowError,
        TypeError,
        ValueError,
        AttributeError,
    ):
        return None
    return pa.RecordBatch.from_arrays(batch.columns, names=schema.names)


def _records_to_arrow(records: Sequence[Mapping[str, Any]], schema: pa.Schema | None) -> pa.RecordBatch:
    if schema is not None and records:
        fast = _records_fast(records, schema)
        if fast is not None:
            return fast
    names: list[str] = list(schema.names) if schema is not None else []
    seen = set(names)
    for record in records:
        if not isinstance(record, Mapping):
            raise ValidationError(
                f"a batch must hold dict records; found a {type(record).__name__}",
                details={"found_type": type(record).__name__},
            )
        for key in record:
            if key not in seen:
                seen.add(key)
                names.append(str(key))
    arrays = []
    for name in names:
        values = [record.get(name) for record in records]
        field = schema.field(name) if schema is not None and name in schema.names else None
        is_json = field is not None and (field.metadata or {}).get(b"dativo.type") == b"json"
        arrays.append(_column(values, field.type if field is not None else None, is_json))
    return pa.RecordBatch.from_arrays(arrays, names=names)


def batch_to_arrow(batch: Any, schema: pa.Schema | None = None) -> pa.RecordBatch:
    """Convert one batch yielded by a reader into a single Arrow record batch.

    Dict records are converted with the stream's ``schema`` when given: in one pass when
    they all fit it, else column by column (values that do not fit become text, for the
    host to report). Arrow batches (pyarrow
    objects or anything with the Arrow PyCapsule interface) are read without copying
    and combined into one record batch.

    Args:
        batch: A list of dict records or an Arrow-compatible object.
        schema: The stream's Arrow schema, from :func:`arrow_schema_for`, if known.

    Returns:
        One ``pyarrow.RecordBatch`` (possibly with zero rows).

    Raises:
        ValidationError: If the batch is neither shape.
    """
    if isinstance(batch, pa.RecordBatch):
        return batch
    if isinstance(batch, pa.Table):
        return batch.combine_chunks().to_batches()[0] if batch.num_rows else _empty(batch.schema)
    if isinstance(batch, list):
        return _records_to_arrow(batch, schema)
    if is_arrow_batch(batch):
        if hasattr(batch, "__arrow_c_stream__"):
            table = pa.table(batch)
            return table.combine_chunks().to_batches()[0] if table.num_rows else _empty(table.schema)
        return pa.record_batch(batch)
    raise ValidationError(
        f"extract() yielded a {type(batch).__name__}; a batch must be a list of dict records or an "
        "Arrow-compatible object (pyarrow Table/RecordBatch or anything with __arrow_c_stream__)",
        details={"found_type": type(batch).__name__},
    )


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in schema], schema=schema)


def iter_arrow(batches: Iterable[Any], schema: pa.Schema | None = None) -> Iterable[pa.RecordBatch]:
    """Convert each batch of an iterable with :func:`batch_to_arrow`."""
    for batch in batches:
        yield batch_to_arrow(batch, schema)
