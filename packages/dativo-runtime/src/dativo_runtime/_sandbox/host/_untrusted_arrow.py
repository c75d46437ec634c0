"""Reading Arrow IPC that a sandbox worker sent: nothing in it is trusted.

A plugin runs in the worker's interpreter, so it can put any bytes on the protocol. Two
kinds of Arrow data would hurt the host, whose memory holds other tenants' data and the
run's credentials:

* **Arrays whose buffers lie.** A string column whose middle offsets point past its data
  passes ``validate()`` (the cheap check) and makes whatever reads it next (the Parquet
  writer) copy host memory into the output, or crash. Every batch is therefore validated
  in full (offsets, UTF-8, dictionary indices, child lengths) before anything reads a value.
* **Bodies that grow.** An IPC body compressed with zstd or lz4 may declare gigabytes for a
  few kilobytes; the host would allocate them. Compressed bodies are refused before pyarrow
  sees the message: the metadata of each IPC message is walked here (a few fields of its
  flatbuffer, every read bounds-checked), which also bounds the declared row counts and
  buffer extents by the frame's own size.

The worker never compresses and sends exactly one schema, any dictionaries and one record
batch per frame, so refusing anything else costs a well-behaved plugin nothing.
"""

from __future__ import annotations

import struct
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import ValidationError
from dativo_runtime._worker._protocol import ProtocolError

__all__ = ["check_column_names", "read_untrusted_batch"]

_SCHEMA, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3
_CONTINUATION = 0xFFFFFFFF
_MAX_DICTIONARIES = 1024
_ROWS_WITHOUT_BUFFERS = 1 << 20
"""Rows a batch may declare beyond what its body could hold (columns of type ``null`` have no buffers)."""


class _FlatTable:
    """One flatbuffer table, read with bounds checks (``struct.error`` on anything out of range)."""

    __slots__ = ("_buf", "_pos", "_vtable", "_vtable_size")

    def __init__(self, buf: memoryview, pos: int) -> None:
        if not 0 <= pos <= len(buf) - 4:
            raise struct.error("table outside the message")
        self._buf = buf
        self._pos = pos
        (soffset,) = struct.unpack_from("<i", buf, pos)
        self._vtable = pos - soffset
        (self._vtable_size,) = struct.unpack_from("<H", buf, self._vtable)
        if self._vtable < 0:
            raise struct.error("vtable outside the message")

    def _field(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot + 2 > self._vtable_size:
            return 0
        (offset,) = struct.unpack_from("<H", self._buf, self._vtable + slot)
        return int(offset)

    def has(self, index: int) -> bool:
        return self._field(index) != 0

    def scalar(self, index: int, fmt: str, default: int = 0) -> int:
        offset = self._field(index)
        if not offset:
            return default
        (value,) = struct.unpack_from(fmt, self._buf, self._pos + offset)
        return int(value)

    def _target(self, index: int) -> int | None:
        offset = self._field(index)
        if not offset:
            return None
        where = self._pos + offset
        (relative,) = struct.unpack_from("<I", self._buf, where)
        return where + int(relative)

    def table(self, index: int) -> _FlatTable | None:
        target = self._target(index)
        return None if target is None else _FlatTable(self._buf, target)

    def structs(self, index: int, fmt: str) -> list[tuple[Any, ...]]:
        target = self._target(index)
        if target is None:
            return []
        (count,) = struct.unpack_from("<I", self._buf, target)
        size = struct.calcsize(fmt)
        if target + 4 + count * size > len(self._buf):
            raise struct.error("vector outside the message")
        return [struct.unpack_from(fmt, self._buf, target + 4 + i * size) for i in range(count)]


def _check_batch(batch: _FlatTable, body_length: int) -> None:
    """Refuse a compressed body, and rows or buffers the body could not hold."""
    if batch.has(3):
        raise ProtocolError(
            "the batch's IPC body is compressed; the worker sends uncompressed Arrow and the host refuses "
            "compressed bodies from workers (they could declare any decompressed size)"
        )
    max_rows = 8 * body_length + _ROWS_WITHOUT_BUFFERS
    rows = batch.scalar(0, "<q")
    if not 0 <= rows <= max_rows:
        raise ProtocolError(f"the batch declares {rows} rows, more than its {body_length}-byte body can hold")
    for length, null_count in batch.structs(1, "<qq"):
        if not 0 <= length <= max_rows or not 0 <= null_count <= length:
            raise ProtocolError(f"an array of the batch declares {length} values and {null_count} nulls")
    for offset, length in batch.structs(2, "<qq"):
        if offset < 0 or length < 0 or offset + length > body_length:
            raise ProtocolError(
                f"a buffer of the batch lies outside its body (offset {offset}, length {length}, "
                f"body {body_length} bytes)"
            )


def _inspect_stream(payload: memoryview) -> None:
    """Walk the IPC messages of one frame and refuse what the host must never decode."""
    position = 0
    record_batches = dictionaries = schemas = 0
    end = len(payload)
    while position + 4 <= end:
        (size,) = struct.unpack_from("<I", payload, position)
        position += 4
        if size == _CONTINUATION:
            if position + 4 > end:
                break
            (size,) = struct.unpack_from("<I", payload, position)
            position += 4
        if size == 0:
            break  # end of stream
        if size > end - position:
            raise ProtocolError("an IPC message's metadata runs past the end of the frame")
        metadata = payload[position : position + size]
        position += size
        message = _FlatTable(metadata, struct.unpack_from("<I", metadata, 0)[0])
        header_type = message.scalar(1, "<B")
        body_length = message.scalar(3, "<q")
        if not 0 <= body_length <= end - position:
            raise ProtocolError(f"an IPC message declares a {body_length}-byte body the frame does not hold")
        position += body_length
        if header_type == _SCHEMA:
            schemas += 1
        elif header_type == _DICTIONARY_BATCH:
            dictionaries += 1
            dictionary = message.table(2)
            data = dictionary.table(1) if dictionary is not None else None
            if data is None:
                raise ProtocolError("a dictionary batch without data")
            _check_batch(data, body_length)
        elif header_type == _RECORD_BATCH:
            record_batches += 1
            batch = message.table(2)
            if batch is None:
                raise ProtocolError("a record batch message without its header")
            _check_batch(batch, body_length)
        else:
            raise ProtocolError(
                f"an IPC message of type {header_type} (only schemas and batches are accepted)"
            )
    if schemas != 1 or record_batches > 1 or dictionaries > _MAX_DICTIONARIES:
        raise ProtocolError(
            f"a data frame must hold one schema and at most one record batch (found {schemas} schema(s), "
            f"{record_batches} batch(es), {dictionaries} dictionaries)"
        )


_REFUSED_KINDS = ("is_union", "is_run_end_encoded", "is_list_view", "is_large_list_view")


def _refuse_type(data_type: pa.DataType, name: str) -> None:
    """Refuse Arrow types the host does not read from workers (extension types, unions, views)."""
    refused = isinstance(data_type, pa.BaseExtensionType) or any(
        getattr(pa.types, kind, lambda _: False)(data_type) for kind in _REFUSED_KINDS
    )
    if refused:
        raise ProtocolError(f"column {name!r} has Arrow type {data_type}, which the host does not accept")
    for index in range(data_type.num_fields):
        child = data_type.field(index)
        _refuse_type(child.type, f"{name}.{child.name}")
    if pa.types.is_dictionary(data_type):
        _refuse_type(data_type.value_type, name)


def read_untrusted_batch(payload: bytes | bytearray | memoryview) -> pa.RecordBatch:
    """Decode one data frame from a worker into a record batch that is safe to read.

    Args:
        payload: The frame: one Arrow IPC stream with a schema and at most one batch.

    Returns:
        The batch (zero rows when the stream held none), validated in full.

    Raises:
        ProtocolError: If the frame is not a well-formed, uncompressed Arrow IPC stream of
            one batch whose arrays are valid.
        ValidationError: If the batch's column names repeat.
    """
    view = memoryview(payload).cast("B")
    try:
        _inspect_stream(view)
    except struct.error as exc:
        raise ProtocolError(f"data frame holds malformed Arrow IPC metadata: {exc}") from None
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(view))
        schema = reader.schema
        for field in schema:
            _refuse_type(field.type, field.name)
        check_column_names(schema)
        batches = list(reader)
        batch = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=schema)
        batch.validate(full=True)
    except (ProtocolError, ValidationError):
        raise
    except Exception as exc:  # Whatever pyarrow makes of garbage (also UnicodeDecodeError in names).
        raise ProtocolError(
            f"data frame is not a valid Arrow IPC stream: {type(exc).__name__}: {exc}"
        ) from None
    return batch


def check_column_names(schema: pa.Schema) -> None:
    """Refuse a batch whose column names repeat (which column would a value belong to?).

    Raises:
        ValidationError: Naming the repeated columns.
    """
    names = schema.names
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValidationError(
            f"a batch has duplicate column names: {', '.join(map(repr, repeated))}; each column "
            "name may appear once in a batch",
            details={"duplicate_columns": repeated},
        )
