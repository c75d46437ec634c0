"""Arrow to Singer: the JSON Schema of each Arrow type, and RECORD lines read back equal to the batch."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from typing import Any

import jsonschema
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import Column
from dativo_plugin_sdk._arrow import arrow_schema_for
from dativo_runtime._engine._singer_json import RecordEncoder, json_schema_for, json_schema_for_field, rfc3339

UTC = dt.timezone.utc
TIME_EXTRACTED = "2026-12-04T10:00:00Z"


def _lines(batch: pa.RecordBatch, stream: str = "s") -> list[dict[str, Any]]:
    text = b"".join(
        bytes(chunk) for chunk in RecordEncoder(stream, batch.schema).encode(batch, TIME_EXTRACTED)
    )
    assert text.endswith(b"\n") or not batch.num_rows
    # Split on newlines only: str.splitlines would also split on U+2028, which JSON strings hold raw.
    return [json.loads(line, parse_float=decimal.Decimal) for line in text.decode().split("\n")[:-1]]


@pytest.mark.parametrize(
    ("data_type", "expected"),
    [
        (pa.bool_(), {"type": "boolean"}),
        (pa.int8(), {"type": "integer"}),
        (pa.uint64(), {"type": "integer"}),
        (pa.float32(), {"type": ["null", "number"]}),
        (pa.decimal128(38, 9), {"type": "number"}),
        (pa.string(), {"type": "string"}),
        (pa.large_string(), {"type": "string"}),
        (pa.binary(), {"type": "string", "contentEncoding": "base64"}),
        (pa.timestamp("us", "UTC"), {"type": "string", "format": "date-time"}),
        (pa.timestamp("ns"), {"type": "string", "format": "date-time"}),
        (pa.date32(), {"type": "string", "format": "date"}),
        (pa.time64("us"), {"type": "string", "format": "time"}),
        (pa.list_(pa.int64()), {"type": "array", "items": {"type": ["null", "integer"]}}),
        (
            pa.struct([pa.field("a", pa.string(), nullable=False)]),
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
        ),
        (pa.dictionary(pa.int32(), pa.string()), {"type": "string"}),
        (pa.duration("s"), {"type": "string"}),
    ],
)
def test_each_arrow_type_has_its_json_schema(data_type: pa.DataType, expected: dict[str, Any]) -> None:
    assert json_schema_for_field(pa.field("x", data_type, nullable=False)) == expected


def test_nullable_fields_are_null_or_their_type_and_required_ones_are_listed() -> None:
    columns = [
        Column("id", "integer", nullable=False),
        Column("name", "string"),
        Column("payload", "json"),
        Column("at", "timestamp"),
    ]
    assert json_schema_for(arrow_schema_for(columns)) == {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": ["null", "string"]},
            "payload": {"type": ["object", "array", "string", "number", "boolean", "null"]},
            "at": {"type": ["null", "string"], "format": "date-time"},
        },
        "required": ["id"],
    }


def test_a_record_line_is_the_singer_message_with_the_batch_time() -> None:
    batch = pa.record_batch({"id": [1, 2], "name": ["a", None]})
    assert _lines(batch, "orders") == [
        {
            "type": "RECORD",
            "stream": "orders",
            "record": {"id": 1, "name": "a"},
            "time_extracted": TIME_EXTRACTED,
        },
        {
            "type": "RECORD",
            "stream": "orders",
            "record": {"id": 2, "name": None},
            "time_extracted": TIME_EXTRACTED,
        },
    ]


def test_strings_needing_escapes_round_trip() -> None:
    values = [
        'quote " here',
        "back\\slash",
        "new\nline\r\ttab",
        "bell \x07 and nul \x00",
        "é ✓ 𝄞",
        "\u2028",
        "",
    ]
    records = _lines(pa.record_batch({"s": values}))
    assert [r["record"]["s"] for r in records] == values


def test_floats_that_json_cannot_hold_are_null() -> None:
    values = [1.5, math.nan, math.inf, -math.inf, -0.0, 1e300, None]
    got = [r["record"]["f"] for r in _lines(pa.record_batch({"f": pa.array(values, pa.float64())}))]
    assert got == [
        decimal.Decimal("1.5"),
        None,
        None,
        None,
        decimal.Decimal("-0"),
        decimal.Decimal("1e300"),
        None,
    ]


def test_float32_is_written_with_its_shortest_digits() -> None:
    got = _lines(pa.record_batch({"f": pa.array([0.1, 1.5], pa.float32())}))
    assert [r["record"]["f"] for r in got] == [decimal.Decimal("0.1"), decimal.Decimal("1.5")]


def test_decimals_keep_every_digit() -> None:
    values = [decimal.Decimal("12345678901234567890.123456789"), decimal.Decimal("-0.000000001"), None]
    got = _lines(pa.record_batch({"d": pa.array(values, pa.decimal128(38, 9))}))
    assert [r["record"]["d"] for r in got] == values


def test_timestamps_are_rfc3339_in_utc_and_naive_ones_have_no_offset() -> None:
    moment = dt.datetime(2024, 5, 1, 12, 30, 15, 250000, tzinfo=UTC)
    paris = pa.array([moment], pa.timestamp("us", "Europe/Paris"))
    batch = pa.record_batch(
        {
            "utc": pa.array([moment], pa.timestamp("us", "UTC")),
            "paris": paris,
            "seconds": pa.array([moment.replace(microsecond=0)], pa.timestamp("s", "UTC")),
            "naive": pa.array([moment.replace(tzinfo=None)], pa.timestamp("ms")),
        }
    )
    (record,) = (r["record"] for r in _lines(batch))
    assert record == {
        "utc": "2024-05-01T12:30:15.250000Z",
        "paris": "2024-05-01T12:30:15.250000Z",
        "seconds": "2024-05-01T12:30:15Z",
        "naive": "2024-05-01T12:30:15.250",
    }


def test_binary_json_and_nested_columns_are_encoded_per_value() -> None:
    schema = pa.schema(
        [
            pa.field("b", pa.binary()),
            pa.field("j", pa.string(), metadata={b"dativo.type": b"json"}),
            pa.field("l", pa.list_(pa.timestamp("us", "UTC"))),
            pa.field("st", pa.struct([pa.field("x", pa.int64()), pa.field("y", pa.decimal128(10, 2))])),
            pa.field("m", pa.map_(pa.string(), pa.int64())),
            pa.field("dict", pa.dictionary(pa.int8(), pa.string())),
        ]
    )
    moment = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    batch = pa.record_batch(
        [
            pa.array([b"\x00\xffhi", None]),
            pa.array(['{"a": [1, "x"]}', "not json"]),
            pa.array([[moment], []], pa.list_(pa.timestamp("us", "UTC"))),
            pa.array([{"x": 1, "y": decimal.Decimal("2.50")}, None], schema.field("st").type),
            pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
            pa.array(["red", "red"]).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string())),
        ],
        schema=schema,
    )
    first, second = (r["record"] for r in _lines(batch))
    assert first == {
        "b": base64.b64encode(b"\x00\xffhi").decode(),
        "j": {"a": [1, "x"]},
        "l": ["2024-01-02T03:04:05Z"],
        "st": {"x": 1, "y": decimal.Decimal("2.5")},
        "m": {"k": 1},
        "dict": "red",
    }
    assert second == {"b": None, "j": "not json", "l": [], "st": None, "m": {}, "dict": "red"}


def test_an_empty_batch_and_a_batch_without_columns() -> None:
    assert _lines(pa.record_batch({"a": pa.array([], pa.int64())})) == []
    no_columns = pa.RecordBatch.from_pydict({}).slice(0, 0)
    assert RecordEncoder("s", no_columns.schema).encode(no_columns, TIME_EXTRACTED) == []
    two_rows = pa.RecordBatch.from_struct_array(pa.array([{}, {}], pa.struct([])))
    lines = b"".join(bytes(c) for c in RecordEncoder("s", two_rows.schema).encode(two_rows, TIME_EXTRACTED))
    assert [json.loads(line)["record"] for line in lines.split(b"\n")[:-1]] == [{}, {}]


def test_a_batch_of_another_schema_is_refused() -> None:
    encoder = RecordEncoder("s", pa.schema([pa.field("a", pa.int64())]))
    with pytest.raises(ValueError, match="schema"):
        encoder.encode(pa.record_batch({"a": ["x"]}), TIME_EXTRACTED)


def test_sliced_batches_encode_only_their_rows() -> None:
    batch = pa.record_batch({"a": list(range(10)), "s": [str(i) for i in range(10)]}).slice(3, 4)
    assert [r["record"] for r in _lines(batch)] == [{"a": i, "s": str(i)} for i in range(3, 7)]


def test_rfc3339_of_time_extracted() -> None:
    assert rfc3339(dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == (
        "2024-01-01T00:00:00Z"
    )


# Any batch of the SDK's column types: its lines read back to its values, valid against its schema --

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_COLUMN_VALUES: dict[str, Any] = {
    "integer": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=True, allow_infinity=True, width=64),
    "boolean": st.booleans(),
    "string": _TEXT,
    "timestamp": st.datetimes(
        min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31), timezones=st.just(UTC)
    ),
    "date": st.dates(),
    "decimal": st.decimals(
        min_value=-(10**28), max_value=10**28, allow_nan=False, allow_infinity=False, places=9
    ),
    "binary": st.binary(max_size=8),
    "json": st.recursive(
        st.none() | st.booleans() | st.integers(-1000, 1000) | _TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
        max_leaves=6,
    ),
}


@st.composite
def _batches(draw: st.DrawFn) -> tuple[list[Column], list[dict[str, Any]]]:
    kinds = draw(st.lists(st.sampled_from(sorted(_COLUMN_VALUES)), min_size=1, max_size=5))
    columns = [Column(f"c{i}_{kind}", kind, nullable=draw(st.booleans())) for i, kind in enumerate(kinds)]
    rows = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    c.name: (_COLUMN_VALUES[c.type.value] | st.none())
                    if c.nullable
                    else _COLUMN_VALUES[c.type.value]
                    for c in columns
                }
            ),
            max_size=20,
        )
    )
    return columns, rows


def _expected(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "float":
        return None if not math.isfinite(value) else value
    if kind == "timestamp":
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    if kind == "date":
        return value.isoformat()
    if kind == "binary":
        return base64.b64encode(value).decode()
    if kind == "json":
        return json.loads(json.dumps(value))
    return value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches())
def test_any_batch_reads_back_equal_and_matches_its_schema(batch_data: Any) -> None:
    from dativo_plugin_sdk._arrow import records_to_arrow

    columns, rows = batch_data
    table = records_to_arrow(rows, columns)
    arrays = [column.combine_chunks() for column in table.columns]
    batch = pa.RecordBatch.from_arrays(arrays, schema=arrow_schema_for(columns))
    text = b"".join(bytes(c) for c in RecordEncoder("s", batch.schema).encode(batch, TIME_EXTRACTED))
    lines = text.decode().split("\n")[:-1]
    assert len(lines) == len(rows)
    validator = jsonschema.Draft7Validator(json_schema_for(batch.schema))
    for line, row in zip(lines, rows, strict=True):
        message = json.loads(line)
        assert message["type"] == "RECORD"
        assert message["time_extracted"] == TIME_EXTRACTED
        validator.validate(message["record"])
        exact = json.loads(line, parse_float=decimal.Decimal)["record"]
        for column in columns:
            kind = column.type.value
            got = exact[column.name] if kind == "decimal" else message["record"][column.name]
            want = _expected(kind, row[column.name])
            if kind == "decimal" and want is not None:
                assert decimal.Decimal(got) == want
            else:
                assert got == want, (column, row[column.name], got)
