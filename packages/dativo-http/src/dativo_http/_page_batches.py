"""A page of JSON records -> one Arrow record batch, built column by column with the stream's schema.

Only the stream's columns are kept (keys outside the schema are dropped, as a declared
schema promises). When a value does not fit its column's type (an API that sends ``"12"``
in an integer column), the page goes to the runtime as dict records instead, restricted
to the same columns, and the runtime's validation reports exactly which records are wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import Column, ColumnType
from dativo_plugin_sdk._arrow import arrow_schema_for

__all__ = ["PageConverter"]

_CONVERSION_ERRORS = (
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
    TypeError,
    ValueError,
    OverflowError,
)
"""What building a batch from a page's records raises when a value does not fit its column."""

_CAST_FROM_TEXT = (ColumnType.TIMESTAMP, ColumnType.DATE, ColumnType.DECIMAL)


class PageConverter:
    """Converts pages of records of one stream.

    Args:
        columns: The stream's columns.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.schema = arrow_schema_for(self.columns)
        # The fast path reads the page in one C++ pass (``from_pylist``) with text where the
        # JSON holds text (timestamps, dates, decimals), then casts those columns.
        self._text_schema = pa.schema(
            [
                pa.field(f.name, pa.string()) if c.type in _CAST_FROM_TEXT else f
                for c, f in zip(self.columns, self.schema, strict=True)
            ]
        )
        self._fast = not any(c.type is ColumnType.JSON for c in self.columns)

    def convert(self, records: list[Any]) -> pa.RecordBatch | list[dict[str, Any]]:
        """Return ``records`` as a record batch, or as dicts of the schema's columns if a value does not fit.

        Args:
            records: The page's records (dicts).

        Returns:
            A ``pyarrow.RecordBatch`` of the schema, or a list of dicts.
        """
        if self._fast:
            fast = self._convert_fast(records)
            if fast is not None:
                return fast
        try:
            arrays = [self._column(column, [r.get(column.name) for r in records]) for column in self.columns]
            return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        except _CONVERSION_ERRORS:
            names = [c.name for c in self.columns]
            return [{name: r.get(name) for name in names} if isinstance(r, dict) else r for r in records]

    def _convert_fast(self, records: list[Any]) -> pa.RecordBatch | None:
        try:
            batch = pa.RecordBatch.from_pylist(records, schema=self._text_schema)
            arrays = [
                batch.column(i).cast(field.type) if column.type in _CAST_FROM_TEXT else batch.column(i)
                for i, (column, field) in enumerate(zip(self.columns, self.schema, strict=True))
            ]
            return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        except (*_CONVERSION_ERRORS, AttributeError):
            return None  # the column-by-column path, then dicts, say what does not fit

    def _column(self, column: Column, values: list[Any]) -> pa.Array[Any]:
        field = self.schema.field(column.name)
        if column.type is ColumnType.JSON:
            texts = [None if v is None else json.dumps(v, ensure_ascii=False, sort_keys=True) for v in values]
            return pa.array(texts, pa.string())
        if column.type in _CAST_FROM_TEXT and any(isinstance(v, str) for v in values):
            cast: pa.Array[Any] = pa.array(values, pa.string()).cast(field.type)
            return cast
        if column.type is ColumnType.FLOAT:
            return pa.array(values, pa.float64(), from_pandas=False)
        typed: pa.Array[Any] = pa.array(values, field.type, from_pandas=False)
        return typed
