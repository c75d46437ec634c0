"""Blocks of raw ``RECORD`` lines (Singer or Airbyte) as one Arrow batch each.

The fast path hands a whole block to ``pyarrow.json.read_json`` with an explicit schema
built from the stream's columns (C++ parsing, no Python object per record): integers,
numbers, booleans, strings and timestamps parse straight into their Arrow types, dates are
cast from text afterwards. The slow path parses line by line with :func:`json.loads`; it
serves streams with ``json`` columns (objects and arrays, kept as JSON text, which
``pyarrow.json`` cannot produce) and any block the fast path refuses (a value of the wrong
type, a malformed line). It converts leniently: a column whose values do not all fit its
type stays text, so that the run's validation judges each record (``strict`` fails the
run, ``warn`` nulls the value, ``quarantine`` sets the record aside). Both paths give the
same batch for the same lines, typed with :func:`dativo_plugin_sdk._arrow.arrow_schema_for`.

A message's record sits at ``data_path`` (``("record",)`` for Singer, ``("record", "data")``
for Airbyte); the stream name at ``stream_path``. Records of other streams are dropped.
Runs inside the sandbox: the standard library, the SDK and pyarrow only.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from dativo_plugin_sdk import Column, ColumnType, PluginError
from dativo_plugin_sdk._arrow import arrow_schema_for

__all__ = ["RecordBlockParser", "json_text", "shorten"]

_FAST_TYPES = {
    ColumnType.INTEGER: pa.int64(),
    ColumnType.FLOAT: pa.float64(),
    ColumnType.BOOLEAN: pa.bool_(),
    ColumnType.STRING: pa.string(),
    ColumnType.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    ColumnType.DATE: pa.string(),  # pyarrow.json reads no date32: cast from text after parsing.
}
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError)
_SHOWN_CHARS = 200


def shorten(line: bytes | str, limit: int = _SHOWN_CHARS) -> str:
    """A line as text for a message, cut at ``limit`` characters."""
    text = line.decode("utf-8", "backslashreplace") if isinstance(line, bytes) else line
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def json_text(value: Any) -> str | None:
    """A value as the JSON text a ``json`` column stores (the SDK's spelling: sorted keys)."""
    if value is None:
        return None
    return json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _fits(column_type: ColumnType, value: Any) -> bool:
    """Whether a JSON value has the type a column stores (``1.5`` is no integer, ``true`` no number)."""
    if isinstance(value, bool):
        return column_type == ColumnType.BOOLEAN
    if isinstance(value, int):
        return column_type in (ColumnType.INTEGER, ColumnType.FLOAT)
    if isinstance(value, float):
        return column_type == ColumnType.FLOAT
    return isinstance(value, str) and column_type == ColumnType.STRING


def _nested(path: Sequence[str], leaf: pa.DataType) -> pa.Field[Any]:
    field = pa.field(path[-1], leaf)
    for name in reversed(path[:-1]):
        field = pa.field(name, pa.struct([field]))
    return field


def _dig(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class RecordBlockParser:
    """Turns blocks of one stream's ``RECORD`` lines into Arrow batches of its columns.

    Args:
        stream: The stream whose records are kept.
        columns: Its columns (from a ``SCHEMA`` message or a catalog).
        data_path: Where a message holds the record (``("record",)``).
        stream_path: Where a message names its stream (``("stream",)``).
        describe: How messages name where a line came from (``tap 'tap-x'``).
    """

    def __init__(
        self,
        stream: str,
        columns: Sequence[Column],
        *,
        data_path: Sequence[str],
        stream_path: Sequence[str],
        describe: str = "the tap",
    ) -> None:
        self.stream = stream
        self.columns = list(columns)
        self.schema: pa.Schema = arrow_schema_for(self.columns)
        self.data_path = tuple(data_path)
        self.stream_path = tuple(stream_path)
        self.describe = describe
        self.fast_blocks = 0
        self.slow_blocks = 0
        typed = [c for c in self.columns if c.type in _FAST_TYPES]
        self._fast = len(typed) == len(self.columns) and bool(self.columns)
        self._explicit = self._explicit_schema(typed) if self._fast else None

    def _explicit_schema(self, columns: Sequence[Column]) -> pa.Schema:
        record = pa.struct([pa.field(c.name, _FAST_TYPES[c.type]) for c in columns])
        data = _nested(self.data_path, record)
        stream = _nested(self.stream_path, pa.string())
        if data.name != stream.name:
            return pa.schema([data, stream])
        # Both sit in the same top-level object (Airbyte's ``record``): merge the two structs.
        merged = pa.struct(list(data.type) + list(stream.type))
        return pa.schema([pa.field(data.name, merged)])

    def parse(self, lines: Sequence[bytes]) -> pa.RecordBatch:
        """Parse one block of raw message lines (each a ``RECORD``, ending with a newline or not).

        Args:
            lines: The lines, in the order the tap wrote them.

        Returns:
            A batch of :attr:`schema`'s columns holding the records of :attr:`stream`.

        Raises:
            PluginError: If a line is not a JSON object (its text, cut short, is in the message).
        """
        if self._fast:
            batch = self._parse_fast(lines)
            if batch is not None:
                self.fast_blocks += 1
                return batch
        self.slow_blocks += 1
        return self._parse_slow(lines)

    def _parse_fast(self, lines: Sequence[bytes]) -> pa.RecordBatch | None:
        data = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
        try:
            table = pajson.read_json(
                io.BytesIO(data),
                read_options=pajson.ReadOptions(use_threads=False, block_size=len(data) + 1),
                parse_options=pajson.ParseOptions(
                    explicit_schema=self._explicit,
                    unexpected_field_behavior="ignore",
                    newlines_in_values=False,
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None  # A value of another type, or a line that is not JSON: line by line.
        record = self._field(table, self.data_path)
        stream = self._field(table, self.stream_path)
        keep = pc.equal(stream, pa.scalar(self.stream))
        if stream.null_count or not pc.all(keep).as_py():
            record = record.filter(pc.fill_null(keep, False))
        arrays = []
        for index, column in enumerate(self.columns):
            array = record.field(index)
            if column.type == ColumnType.DATE:
                try:
                    array = pc.cast(array, pa.date32())
                except _CAST_ERRORS:
                    return None  # A date the cast refuses: the slow path keeps it as text.
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    @staticmethod
    def _field(table: pa.Table, path: Sequence[str]) -> Any:
        array: Any = table.column(path[0]).combine_chunks()
        for name in path[1:]:
            array = array.field(name)
        return array

    def _parse_slow(self, lines: Sequence[bytes]) -> pa.RecordBatch:
        records = []
        for line in lines:
            if not line.strip():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                raise PluginError(
                    f"{self.describe} wrote a line that is not JSON to stdout: {shorten(line)!r}",
                    details={"line": shorten(line), "reason": "not_json"},
                ) from None
            if _dig(message, self.stream_path) != self.stream:
                continue
            record = _dig(message, self.data_path)
            if not isinstance(record, dict):
                raise PluginError(
                    f"{self.describe} wrote a RECORD of stream {self.stream!r} whose record is a "
                    f"{type(record).__name__}, not an object: {shorten(line)!r}",
                    details={"line": shorten(line), "reason": "record_not_object"},
                )
            records.append(record)
        return self.batch_of(records)

    def batch_of(self, records: Sequence[dict[str, Any]]) -> pa.RecordBatch:
        """The batch of parsed records: typed where every value fits, else text for validation.

        Keys no column names are left out (the stream's schema does not have them).
        """
        arrays = [self._column(column, [r.get(column.name) for r in records]) for column in self.columns]
        fields = [
            field if array.type == field.type else field.with_type(array.type).with_nullable(True)
            for field, array in zip(self.schema, arrays, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _column(self, column: Column, values: list[Any]) -> pa.Array[Any]:
        target = self.schema.field(column.name).type
        if column.type == ColumnType.JSON:
            return pa.array([json_text(v) for v in values], pa.string())
        if column.type in (ColumnType.TIMESTAMP, ColumnType.DATE):
            if all(v is None or isinstance(v, str) for v in values):
                text = pa.array(values, pa.string())
                for attempt in (target, pa.timestamp("us")):
                    try:
                        cast = pc.cast(text, attempt)
                        return cast if cast.type == target else pc.cast(cast, target)
                    except _CAST_ERRORS:
                        continue
                return text
        elif all(v is None or _fits(column.type, v) for v in values):
            try:
                typed: pa.Array[Any] = pa.array(values, target)
                return typed
            except _CAST_ERRORS:
                pass
        # Some value does not fit: every value as text, for validation to judge record by record.
        return pa.array([None if v is None else _text(v) for v in values], pa.string())
