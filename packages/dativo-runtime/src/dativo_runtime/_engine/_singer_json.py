"""Arrow to Singer: the JSON Schema of an Arrow schema, and a batch as ``RECORD`` lines.

``dativo-run singer-tap`` writes what a Dativo reader yields as Singer messages. Both halves
of the mapping live here, so a column's JSON Schema and the JSON its values are written as
never disagree:

====================================  ==================================================
Arrow type (SDK column type)          JSON Schema / value written
====================================  ==================================================
bool (boolean)                        ``boolean``
int8..uint64 (integer)                ``integer``
float16..float64 (float)              ``number``; NaN and infinities as ``null`` (so
                                      a float field is always ``["null", "number"]``)
decimal128/256 (decimal)              ``number``, written with every digit (``1.500000000``)
string (string)                       ``string``
string with ``dativo.type: json``     any JSON value, written parsed (not as text)
binary (binary)                       ``string`` with ``contentEncoding: base64``
timestamp (timestamp)                 ``string``, ``format: date-time``: RFC 3339 in UTC
                                      (``2024-05-01T12:00:00.000000Z``); a timestamp
                                      without a time zone is written without an offset
date32/date64 (date)                  ``string``, ``format: date``
time32/time64                         ``string``, ``format: time``
list, struct, map                     ``array`` / ``object`` of the above (a decimal
                                      inside one is written as a float)
dictionary                            its values' type
anything else                         ``string`` (the value's text)
====================================  ==================================================

A nullable field's type is ``["null", X]``; a required one is ``X`` and listed in
``required``.

:class:`RecordEncoder` builds each line in Arrow (``pyarrow.compute``): every column
becomes an array of JSON fragments, and one ``binary_join_element_wise`` call joins them
into ``{"type":"RECORD",...}\\n`` lines whose bytes go to the output without a copy. No
Python code runs per value for flat columns of the types above; strings are escaped with
vectorised replacements (a string column with other control characters, binary, json and
nested columns are encoded per value with the standard library).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["RecordEncoder", "json_schema_for", "json_schema_for_field", "rfc3339"]

_TYPE_KEY = b"dativo.type"
_JSON_MARK = b"json"
_ANY_JSON = ["object", "array", "string", "number", "boolean", "null"]
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_CONTROL_BUT_COMMON = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_ROWS_PER_CHUNK = 65_536
"""Rows joined in one call: bounds the size of one joined array (and its 2 GiB offsets)."""

# The stubs type it for scalars or arrays alone; it takes both, mixed.
_JOIN: Any = pc.binary_join_element_wise
_Fragments = Callable[["pa.Array[Any]"], "pa.Array[Any]"]


def rfc3339(moment: dt.datetime) -> str:
    """Write a moment as Singer's ``time_extracted`` wants it: RFC 3339 in UTC, ``Z`` suffix."""
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _is_json_field(field: pa.Field[Any]) -> bool:
    return (field.metadata or {}).get(_TYPE_KEY) == _JSON_MARK


def _is_binary(data_type: pa.DataType) -> bool:
    types = pa.types
    return bool(
        types.is_binary(data_type)
        or types.is_large_binary(data_type)
        or types.is_fixed_size_binary(data_type)
    )


def _value_schema(data_type: pa.DataType, *, is_json: bool = False) -> dict[str, Any]:
    """The JSON Schema of one value of ``data_type``, without its nullability."""
    types = pa.types
    if is_json:
        return {"type": list(_ANY_JSON)}
    if types.is_dictionary(data_type):
        return _value_schema(data_type.value_type)
    if types.is_boolean(data_type):
        return {"type": "boolean"}
    if types.is_integer(data_type):
        return {"type": "integer"}
    if types.is_floating(data_type) or types.is_decimal(data_type):
        return {"type": "number"}
    if types.is_timestamp(data_type):
        return {"type": "string", "format": "date-time"}
    if types.is_date(data_type):
        return {"type": "string", "format": "date"}
    if types.is_time(data_type):
        return {"type": "string", "format": "time"}
    if _is_binary(data_type):
        return {"type": "string", "contentEncoding": "base64"}
    if types.is_list(data_type) or types.is_large_list(data_type) or types.is_fixed_size_list(data_type):
        return {"type": "array", "items": json_schema_for_field(data_type.value_field)}
    if types.is_struct(data_type):
        return json_schema_for(pa.schema(list(data_type)))
    if types.is_map(data_type):
        return {"type": "object", "additionalProperties": json_schema_for_field(data_type.item_field)}
    if types.is_null(data_type):
        return {"type": "null"}
    return {"type": "string"}


def json_schema_for_field(field: pa.Field[Any]) -> dict[str, Any]:
    """The JSON Schema of an Arrow field: ``["null", X]`` when it is nullable.

    Args:
        field: The field; ``dativo.type: json`` metadata marks a column of JSON text.

    Returns:
        A JSON Schema (draft 7, as Singer uses it).
    """
    schema = _value_schema(field.type, is_json=_is_json_field(field))
    kind = schema.get("type")
    # NaN and infinities are written as null, so a float field may be null whatever Arrow says.
    nullable = field.nullable or pa.types.is_floating(field.type)
    if nullable and isinstance(kind, str) and kind != "null":
        schema["type"] = ["null", kind]
    return schema


def json_schema_for(schema: pa.Schema) -> dict[str, Any]:
    """The JSON Schema of records of an Arrow schema (Singer's ``SCHEMA.schema``).

    Args:
        schema: The stream's Arrow schema.

    Returns:
        ``{"type": "object", "properties": {...}}``, with ``required`` naming the
        fields that are not nullable.
    """
    result: dict[str, Any] = {
        "type": "object",
        "properties": {field.name: json_schema_for_field(field) for field in schema},
    }
    required = [field.name for field in schema if not field.nullable]
    if required:
        result["required"] = required
    return result


# One value in Python: nested, binary and json columns, and strings Arrow cannot escape -----


def _python_value(value: Any) -> Any:
    """A Python value from ``to_pylist`` made JSON-serialisable as the table above says."""
    if isinstance(value, dict):
        return {str(k): _python_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_python_value(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dt.datetime):
        return rfc3339(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, decimal.Decimal):
        # Inside a list or struct only (a decimal column is cast in Arrow, every digit kept).
        return float(value) if value.is_finite() else None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _dump(value: Any) -> str:
    return json.dumps(_python_value(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _per_value(values: pa.Array[Any]) -> pa.Array[Any]:
    # Maps as dicts (a repeated key keeps its last value), at any depth.
    return pa.array([_dump(v) for v in values.to_pylist(maps_as_pydicts="lossy")], pa.string())


def _json_text(values: pa.Array[Any]) -> pa.Array[Any]:
    def parsed(text: str | None) -> str:
        if text is None:
            return "null"
        try:
            return _dump(json.loads(text))
        except ValueError:
            return _dump(text)  # Not JSON text after all: written as the string it is.

    return pa.array([parsed(v) for v in values.to_pylist()], pa.string())


# Vectorised fragments --------------------------------------------------------------------


def _join(*pieces: Any) -> pa.Array[Any]:
    """Concatenate strings and string arrays element-wise (a null piece makes a null line)."""
    joined: pa.Array[Any] = _JOIN(*pieces, "")
    return joined


def _quoted(text: pa.Array[Any]) -> pa.Array[Any]:
    return _join('"', text, '"')


def _strings(values: pa.Array[Any]) -> pa.Array[Any]:
    if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type):
        values = values.cast(pa.string())
    if not pc.any(pc.match_substring_regex(values, _NEEDS_ESCAPE)).as_py():
        return _quoted(values)
    if pc.any(pc.match_substring_regex(values, _CONTROL_BUT_COMMON)).as_py():
        return _per_value(values)  # Control characters only \u escapes can write.
    for old, new in _ESCAPES:
        values = pc.replace_substring(values, old, new)
    return _quoted(values)


def _floats(values: pa.Array[Any]) -> pa.Array[Any]:
    if pa.types.is_float16(values.type):
        values = values.cast(pa.float32())
    finite = pc.is_finite(values)
    if not pc.all(finite).as_py():
        values = pc.if_else(finite, values, pa.scalar(None, values.type))
    return values.cast(pa.string())


def _timestamps(values: pa.Array[Any]) -> pa.Array[Any]:
    # A zoned timestamp stores UTC instants: read as naive, they are the UTC wall time. Casting
    # the naive view is more than ten times faster than casting or formatting the zoned one.
    data_type = values.type
    wall = values.view(pa.timestamp(data_type.unit)).cast(pa.string())
    text = pc.replace_substring(wall, " ", "T", max_replacements=1)
    return _join('"', text, '"' if data_type.tz is None else 'Z"')


def _fragments_for(field: pa.Field[Any]) -> _Fragments:
    """How to turn one column into JSON fragments (``null`` for nulls added by the caller)."""
    types = pa.types
    data_type = field.type
    if _is_json_field(field):
        return _json_text
    if types.is_boolean(data_type) or types.is_integer(data_type) or types.is_decimal(data_type):
        return lambda values: values.cast(pa.string())
    if types.is_floating(data_type):
        return _floats
    if types.is_string(data_type) or types.is_large_string(data_type) or types.is_string_view(data_type):
        return _strings
    if types.is_timestamp(data_type):
        return _timestamps
    if types.is_date(data_type) or types.is_time(data_type):
        return lambda values: _quoted(values.cast(pa.string()))
    if types.is_dictionary(data_type):
        inner = _fragments_for(pa.field(field.name, data_type.value_type))
        return lambda values: inner(values.cast(data_type.value_type))
    return _per_value


class RecordEncoder:
    """Writes the rows of Arrow batches of one schema as Singer ``RECORD`` lines.

    Args:
        stream: The Singer stream name.
        schema: The batches' Arrow schema (a batch of another schema is refused).
    """

    def __init__(self, stream: str, schema: pa.Schema) -> None:
        self.stream = stream
        self.schema = schema
        self._fragments = [_fragments_for(field) for field in schema]
        self._keys = [json.dumps(name, ensure_ascii=False) + ":" for name in schema.names]
        self._prefix = '{"type":"RECORD","stream":' + json.dumps(stream, ensure_ascii=False) + ',"record":{'

    def encode(self, batch: pa.RecordBatch, time_extracted: str) -> list[memoryview]:
        """The batch's rows as ``RECORD`` lines (UTF-8 JSON, each ending in a newline).

        Args:
            batch: Rows of :attr:`schema`.
            time_extracted: The ``time_extracted`` of every row (see :func:`rfc3339`).

        Returns:
            Buffers to write in order: the lines, without a copy of the joined text.

        Raises:
            ValueError: If the batch's schema is not the encoder's.
        """
        if not batch.schema.equals(self.schema):
            raise ValueError(f"a batch of schema {batch.schema} given to the encoder of {self.schema}")
        suffix = '},"time_extracted":' + json.dumps(time_extracted) + "}\n"
        chunks = []
        for start in range(0, batch.num_rows, _ROWS_PER_CHUNK):
            chunks.append(self._lines(batch.slice(start, _ROWS_PER_CHUNK), suffix))
        return chunks

    def _lines(self, batch: pa.RecordBatch, suffix: str) -> memoryview:
        pieces: list[Any] = [self._prefix]
        for index, (key, fragments) in enumerate(zip(self._keys, self._fragments, strict=True)):
            column = batch.column(index)
            pieces.append(key if index == 0 else "," + key)
            text: Any = fragments(column)
            # The fragments' nulls, not the column's: a float column's NaN became null too.
            pieces.append(pc.fill_null(text, "null") if text.null_count else text)
        pieces.append(suffix)
        if not batch.num_columns:
            return memoryview("".join(pieces).encode() * batch.num_rows)
        lines = _join(*pieces)
        if lines.null_count:  # A fragment left null would drop its row's line: never write that.
            raise ValueError(f"a RECORD line of stream {self.stream!r} could not be built")
        return _text_of(lines)


def _text_of(lines: pa.Array[Any]) -> memoryview:
    """The bytes of a string array's values, in order, without copying them."""
    if lines.type != pa.string():
        lines = lines.cast(pa.string())
    _, offsets, data = lines.buffers()
    assert offsets is not None
    positions = memoryview(offsets).cast("B").cast("i")
    start, end = positions[lines.offset], positions[lines.offset + len(lines)]
    if data is None:
        return memoryview(b"")
    return memoryview(data)[start:end]
