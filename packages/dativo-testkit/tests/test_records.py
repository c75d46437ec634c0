"""Record builders, hypothesis strategies and schema validation agree with each other."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import Column, ColumnType
from dativo_testkit import (
    ALL_TYPES_SCHEMA,
    arrow_schema,
    batch_strategy,
    build_invalid_records,
    build_records,
    edge_records,
    find_schema_violations,
    invalid_record_strategy,
    records_to_arrow,
    schema_strategy,
    value_strategy,
)

SETTINGS = settings(max_examples=60, deadline=None)


def test_build_records_is_deterministic_and_sliceable() -> None:
    first = build_records(ALL_TYPES_SCHEMA, 30, seed=4, sequential=("id", "updated_at"))
    assert first == build_records(ALL_TYPES_SCHEMA, 30, seed=4, sequential=("id", "updated_at"))
    assert first[10:] == build_records(
        ALL_TYPES_SCHEMA, 20, seed=4, start=10, sequential=("id", "updated_at")
    )
    assert first != build_records(ALL_TYPES_SCHEMA, 30, seed=5, sequential=("id", "updated_at"))
    assert [r["id"] for r in first] == list(range(1, 31))
    assert find_schema_violations(first, ALL_TYPES_SCHEMA) == []
    assert any(r["name"] is None for r in build_records(ALL_TYPES_SCHEMA, 100))


def test_build_records_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="count"):
        build_records(ALL_TYPES_SCHEMA, -1)


def test_edge_records_are_valid_and_hold_the_edges() -> None:
    records = edge_records(ALL_TYPES_SCHEMA)
    assert find_schema_violations(records, ALL_TYPES_SCHEMA) == []
    ids = {r["id"] for r in records}
    assert {2**63 - 1, -(2**63)} <= ids
    names = {r["name"] for r in records}
    assert {"", None, "日本語のテキスト"} <= names
    offsets = {r["updated_at"].utcoffset() for r in records}
    assert {timedelta(hours=14), timedelta(hours=-12)} <= offsets
    assert Decimal("99999999999999999999999999999.999999999") in {r["price"] for r in records}


def test_every_built_invalid_record_has_a_violation() -> None:
    invalid = build_invalid_records(ALL_TYPES_SCHEMA)
    required = [c for c in ALL_TYPES_SCHEMA if not c.nullable]
    assert len(invalid) == len(ALL_TYPES_SCHEMA) + len(required)
    for record in invalid:
        assert len(find_schema_violations([record], ALL_TYPES_SCHEMA)) == 1, record


@SETTINGS
@given(st.data())
def test_generated_records_match_any_generated_schema(data: st.DataObject) -> None:
    schema = data.draw(schema_strategy())
    records = data.draw(batch_strategy(schema, max_size=5))
    assert find_schema_violations(records, schema) == []


@SETTINGS
@given(st.data())
def test_generated_invalid_records_always_violate_the_schema(data: st.DataObject) -> None:
    schema = data.draw(schema_strategy())
    record = data.draw(invalid_record_strategy(schema))
    assert find_schema_violations([record], schema) != []


@SETTINGS
@given(batch_strategy(ALL_TYPES_SCHEMA, max_size=8))
def test_generated_records_convert_to_arrow_and_still_validate(records: list[dict[str, Any]]) -> None:
    table = records_to_arrow(records, ALL_TYPES_SCHEMA)
    assert table.schema.equals(arrow_schema(ALL_TYPES_SCHEMA))
    assert find_schema_violations(table, ALL_TYPES_SCHEMA) == []
    assert find_schema_violations(table.to_batches()[0] if table.num_rows else table, ALL_TYPES_SCHEMA) == []


@given(value_strategy(Column("at", ColumnType.TIMESTAMP, nullable=False)))
def test_timestamps_are_aware_and_in_range(value: datetime) -> None:
    assert value.utcoffset() is not None
    assert datetime(1899, 12, 31, tzinfo=timezone.utc) < value < datetime(2201, 1, 1, tzinfo=timezone.utc)


def test_invalid_record_strategy_needs_columns() -> None:
    with pytest.raises(ValueError, match="empty"):
        invalid_record_strategy(())


@pytest.mark.parametrize(
    ("column_type", "value", "problem"),
    [
        (ColumnType.INTEGER, True, "expected integer, got bool"),
        (ColumnType.INTEGER, 2**63, "outside the int64 range"),
        (ColumnType.FLOAT, "1.5", "expected float, got str"),
        (ColumnType.TIMESTAMP, datetime(2024, 1, 1), "naive"),
        (ColumnType.TIMESTAMP, "2024-01-01T00:00:00", "without an offset"),
        (ColumnType.TIMESTAMP, "yesterday", "not one"),
        (ColumnType.DATE, datetime(2024, 1, 1, tzinfo=timezone.utc), "got datetime"),
        (ColumnType.DATE, "2024-1-1", "YYYY-MM-DD"),
        (ColumnType.DECIMAL, "1e29", "30 digits before the point"),
        (ColumnType.DECIMAL, Decimal("1.0000000001"), "more than 9 digits"),
        (ColumnType.DECIMAL, "NaN", "finite"),
        (ColumnType.BINARY, "00ff", "expected binary"),
        (ColumnType.JSON, {1, 2}, "JSON-serialisable"),
        (ColumnType.JSON, float("nan"), "JSON-serialisable"),
    ],
)
def test_value_problems_are_named(column_type: ColumnType, value: Any, problem: str) -> None:
    violations = find_schema_violations([{"c": value}], [Column("c", column_type)])
    assert len(violations) == 1
    assert problem in violations[0].problem
    assert "record 0, column 'c'" in str(violations[0])


@pytest.mark.parametrize(
    ("column_type", "value"),
    [
        (ColumnType.TIMESTAMP, "2024-01-01T00:00:00Z"),
        (ColumnType.DATE, "2024-02-29"),
        (ColumnType.DECIMAL, "12.5"),
        (ColumnType.DECIMAL, 7),
        (ColumnType.FLOAT, 3),
        (ColumnType.BINARY, bytearray(b"x")),
        (ColumnType.JSON, [1, {"a": None}]),
    ],
)
def test_accepted_alternative_forms(column_type: ColumnType, value: Any) -> None:
    assert find_schema_violations([{"c": value}], [Column("c", column_type)]) == []


def test_dict_batch_problems_missing_extra_and_not_a_dict() -> None:
    schema = [Column("id", ColumnType.INTEGER, nullable=False)]
    violations = find_schema_violations([{}, {"id": None}, {"id": 1, "x": 2}, "row"], schema)  # type: ignore[list-item]
    assert [v.problem for v in violations] == [
        "required column is missing",
        "required column is null",
        "column not in the schema",
        "record is a str, not a dict",
    ]
    assert len(find_schema_violations([{}] * 50, schema, limit=3)) == 3
    with pytest.raises(TypeError):
        find_schema_violations({"id": 1}, schema)


def test_arrow_batch_problems() -> None:
    import pyarrow as pa

    schema = [
        Column("id", ColumnType.INTEGER, nullable=False),
        Column("at", ColumnType.TIMESTAMP),
        Column("doc", ColumnType.JSON),
    ]
    table = pa.table(
        {
            "id": pa.array([1, None], pa.int64()),
            "at": pa.array([datetime(2024, 1, 1), None], pa.timestamp("us")),
            "doc": pa.array(["{}", "{not json"]),
            "extra": pa.array([1, 2]),
        }
    )
    problems = {(v.column, v.problem) for v in find_schema_violations(table, schema)}
    assert ("extra", "column not in the schema (Arrow type int64)") in problems
    assert ("at", "expected timestamp, got Arrow type timestamp[us]") in problems
    assert ("doc", "expected JSON text, got text that is not JSON") in problems
    assert ("id", "required column is null") in problems
    text_dates = pa.table({"at": pa.array(["2024-01-01T00:00:00+01:00"])})
    assert find_schema_violations(text_dates, [schema[1]]) == []


def test_arrow_schema_maps_every_type() -> None:
    names = {field.name: str(field.type) for field in arrow_schema(ALL_TYPES_SCHEMA)}
    assert names == {
        "id": "int64",
        "name": "string",
        "amount": "double",
        "active": "bool",
        "updated_at": "timestamp[us, tz=UTC]",
        "birthday": "date32[day]",
        "price": "decimal128(38, 9)",
        "payload": "binary",
        "attributes": "string",
    }


def test_records_to_arrow_converts_text_forms() -> None:
    schema = [
        Column("at", ColumnType.TIMESTAMP),
        Column("d", ColumnType.DATE),
        Column("n", ColumnType.DECIMAL),
    ]
    table = records_to_arrow([{"at": "2024-01-01T01:00:00+01:00", "d": "2024-02-29", "n": 3}], schema)
    row = table.to_pylist()[0]
    assert row["at"] == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert row["d"] == date(2024, 2, 29)
    assert row["n"] == Decimal(3)
    assert json.loads(records_to_arrow([{"j": {"a": 1}}], [Column("j", "json")]).to_pylist()[0]["j"]) == {
        "a": 1
    }
