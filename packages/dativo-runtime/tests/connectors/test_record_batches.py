"""RECORD lines to Arrow: the fast path (pyarrow.json) and the slow path agree; mismatches reach validation."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import Column, PluginError, ValidationError
from dativo_plugin_sdk._arrow import arrow_schema_for
from dativo_runtime._engine._validation import BatchValidator
from dativo_runtime.connectors._record_batches import RecordBlockParser

COLUMNS = [
    Column("id", "integer", nullable=False),
    Column("name", "string"),
    Column("amount", "float"),
    Column("ok", "boolean"),
    Column("at", "timestamp"),
    Column("day", "date"),
]


def singer(columns: list[Column] = COLUMNS) -> RecordBlockParser:
    return RecordBlockParser("orders", columns, data_path=("record",), stream_path=("stream",))


def lines(*records: dict[str, Any], stream: str = "orders", compact: bool = True) -> list[bytes]:
    separators = (",", ":") if compact else (", ", ": ")
    return [
        (json.dumps({"type": "RECORD", "stream": stream, "record": r}, separators=separators) + "\n").encode()
        for r in records
    ]


def test_the_fast_path_types_a_block_without_python_objects_per_record() -> None:
    parser = singer()
    batch = parser.parse(
        lines(
            {
                "id": 1,
                "name": "a",
                "amount": 2,
                "ok": True,
                "at": "2024-05-01T10:00:00Z",
                "day": "2024-05-01",
            },
            {"id": 2, "at": "2024-05-01T12:00:00+02:00"},
        )
    )
    assert parser.fast_blocks == 1
    assert parser.slow_blocks == 0
    assert batch.schema == arrow_schema_for(COLUMNS)
    assert batch.to_pylist()[0]["amount"] == 2.0
    assert batch.column("at").to_pylist()[1] == dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone.utc)
    assert batch.column("day").to_pylist()[0] == dt.date(2024, 5, 1)


def test_records_of_other_streams_are_dropped_on_both_paths() -> None:
    block = lines({"id": 1}) + lines({"cid": "x"}, stream="customers") + lines({"id": 2})
    fast = singer().parse(block)
    assert fast.column("id").to_pylist() == [1, 2]
    slow = singer([*COLUMNS, Column("tags", "json")]).parse(block)
    assert slow.column("id").to_pylist() == [1, 2]


def test_json_columns_hold_json_text() -> None:
    parser = singer([Column("id", "integer"), Column("tags", "json"), Column("meta", "json")])
    batch = parser.parse(lines({"id": 1, "tags": ["a", 1], "meta": {"b": 1, "a": None}}, {"id": 2}))
    assert parser.slow_blocks == 1
    assert batch.column("tags").to_pylist() == ['["a", 1]', None]
    assert batch.column("meta").to_pylist() == ['{"a": null, "b": 1}', None]


def test_a_line_that_is_not_json_fails_with_the_line() -> None:
    with pytest.raises(PluginError, match=r"not JSON.*this is garbage"):
        singer().parse([b'{"type":"RECORD","stream":"orders","record":{"id":1}}\n', b"this is garbage\n"])


def test_a_record_that_is_not_an_object_fails() -> None:
    with pytest.raises(PluginError, match="not an object"):
        singer().parse([b'{"type":"RECORD","stream":"orders","record":[1,2]}\n'])


@pytest.mark.parametrize("mode", ["strict", "warn", "quarantine"])
def test_a_mismatching_record_reaches_validation_as_a_row_it_can_judge(mode: Any) -> None:
    parser = singer()
    batch = parser.parse(lines({"id": 1, "name": "a"}, {"id": "two", "name": "b"}, {"id": 3, "amount": "x"}))
    assert parser.slow_blocks == 1
    # The columns whose values do not all fit stay text; the others keep their types.
    assert batch.schema.field("id").type == pa.string()
    assert batch.schema.field("name").type == pa.string()
    validator = BatchValidator(arrow_schema_for(COLUMNS), mode)
    if mode == "strict":
        with pytest.raises(ValidationError, match="2 of 3 records are invalid"):
            validator.validate(batch)
        return
    result = validator.validate(batch)
    assert result.invalid_count == 2
    if mode == "warn":
        assert result.valid.column("id").to_pylist() == [1, None, 3]
    else:
        assert result.valid.column("id").to_pylist() == [1]
        assert result.quarantine is not None
        assert result.quarantine.column("id").to_pylist() == ["two", "3"]


_VALUES = {
    "integer": st.integers(-(2**62), 2**62),
    "float": st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-1000, 1000),
    "boolean": st.booleans(),
    "string": st.text(max_size=12),
    "timestamp": st.datetimes(
        min_value=dt.datetime(1971, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.just(dt.timezone.utc),
    ).map(lambda d: d.isoformat()),
    "date": st.dates(min_value=dt.date(1971, 1, 1), max_value=dt.date(2200, 1, 1)).map(dt.date.isoformat),
}
_RECORD = st.fixed_dictionaries(
    {}, optional={c.name: st.none() | _VALUES[c.type.value] for c in COLUMNS if c.name != "id"}
).flatmap(lambda r: st.integers(0, 10**9).map(lambda i: {"id": i, **r}))


@settings(max_examples=60, deadline=None)
@given(records=st.lists(_RECORD, min_size=1, max_size=20), compact=st.booleans())
def test_fast_and_slow_paths_agree(records: list[dict[str, Any]], compact: bool) -> None:
    block = lines(*records, compact=compact)
    parser = singer()
    fast = parser.parse(block)
    assert parser.fast_blocks == 1
    slow = parser._parse_slow(block)
    assert slow.schema == fast.schema
    assert slow.to_pylist() == fast.to_pylist()


def test_airbyte_records_parse_from_record_data() -> None:
    parser = RecordBlockParser(
        "users", [Column("id", "integer")], data_path=("record", "data"), stream_path=("record", "stream")
    )
    block = [
        b'{"type":"RECORD","record":{"stream":"users","data":{"id":1},"emitted_at":1}}\n',
        b'{"type":"RECORD","record":{"stream":"other","data":{"id":9},"emitted_at":1}}\n',
    ]
    assert parser.parse(block).column("id").to_pylist() == [1]
    assert parser.fast_blocks == 1
