"""Validation and coercion of Arrow batches in each mode."""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import Column, ValidationError
from dativo_plugin_sdk._arrow import arrow_schema_for
from dativo_runtime import BatchValidator

SCHEMA = arrow_schema_for(
    [
        Column("id", "integer", nullable=False),
        Column("amount", "float"),
        Column("at", "timestamp"),
        Column("day", "date"),
        Column("price", "decimal"),
        Column("ok", "boolean"),
        Column("meta", "json"),
    ]
)


def text_batch(**columns: list[object]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(columns)


def test_text_is_coerced_to_the_schema() -> None:
    batch = text_batch(
        id=["1", "2"],
        amount=["1.5", "2"],
        at=["2024-01-01T10:00:00Z", "2024-01-02 11:00:00"],
        day=["2024-01-01", "2024-02-29"],
        price=["9.99", "10"],
        ok=["true", "FALSE"],
        meta=['{"a": 1}', None],
    )
    result = BatchValidator(SCHEMA, "strict").validate(batch)
    assert result.invalid_count == 0
    rows = result.valid.to_pylist()
    assert rows[0]["id"] == 1
    assert rows[1]["amount"] == 2.0
    assert rows[0]["at"] == dt.datetime(2024, 1, 1, 10, tzinfo=dt.timezone.utc)
    assert rows[1]["at"] == dt.datetime(2024, 1, 2, 11, tzinfo=dt.timezone.utc)
    assert rows[1]["day"] == dt.date(2024, 2, 29)
    assert rows[0]["price"] == decimal.Decimal("9.99")
    assert [r["ok"] for r in rows] == [True, False]
    assert result.valid.schema == SCHEMA


def test_nested_values_become_json_text() -> None:
    schema = arrow_schema_for([Column("meta", "json")])
    batch = pa.RecordBatch.from_pylist([{"meta": {"b": 2, "a": [1]}}, {"meta": None}])
    result = BatchValidator(schema, "strict").validate(batch)
    assert result.valid.column(0).to_pylist() == ['{"a": [1], "b": 2}', None]


def bad_batch() -> pa.RecordBatch:
    return text_batch(id=["1", "x", None, "4"], amount=["1.0", "2.0", "3.0", "many"])


def test_strict_fails_with_counts_by_field_and_examples() -> None:
    schema = arrow_schema_for([Column("id", "integer", nullable=False), Column("amount", "float")])
    validator = BatchValidator(schema, "strict")
    with pytest.raises(ValidationError) as caught:
        validator.validate(bad_batch())
    report = caught.value.details["validation"]
    assert report["records_invalid"] == 3
    counts = {(r["field"], r["reason"]): r["count"] for r in report["by_field"]}
    assert counts == {("id", "invalid_type"): 1, ("id", "missing_required"): 1, ("amount", "invalid_type"): 1}
    assert {e["record"] for e in report["examples"]} == {1, 2, 3}
    assert "3 of 4 records are invalid" in caught.value.message
    assert "Nothing was committed" in caught.value.message


def test_warn_keeps_every_record_and_nulls_bad_values() -> None:
    schema = arrow_schema_for([Column("id", "integer", nullable=False), Column("amount", "float")])
    validator = BatchValidator(schema, "warn")
    result = validator.validate(bad_batch())
    assert result.invalid_count == 3
    assert result.valid.to_pydict() == {"id": [1, None, None, 4], "amount": [1.0, 2.0, 3.0, None]}
    assert all(f.nullable for f in result.valid.schema)
    assert validator.report.records_invalid == 3


def test_quarantine_splits_rows_and_keeps_original_text() -> None:
    schema = arrow_schema_for([Column("id", "integer", nullable=False), Column("amount", "float")])
    validator = BatchValidator(schema, "quarantine", run_id="run-1")
    result = validator.validate(bad_batch())
    assert result.valid.to_pydict() == {"id": [1], "amount": [1.0]}
    assert result.quarantine is not None
    rows = result.quarantine.to_pylist()
    assert [r["id"] for r in rows] == ["x", None, "4"]
    assert [r["amount"] for r in rows] == ["2.0", "3.0", "many"]
    assert [r["_dativo_field"] for r in rows] == ["id", "id", "amount"]
    assert "not a valid integer" in rows[0]["_dativo_reason"]
    assert "required value is missing" in rows[1]["_dativo_reason"]
    assert [r["_dativo_record"] for r in rows] == [1, 2, 3]
    assert {r["_dativo_run_id"] for r in rows} == {"run-1"}


def test_record_numbers_continue_across_batches() -> None:
    schema = arrow_schema_for([Column("id", "integer")])
    validator = BatchValidator(schema, "quarantine")
    validator.validate(text_batch(id=["1", "2"]))
    result = validator.validate(text_batch(id=["3", "bad"]))
    assert result.quarantine is not None
    assert result.quarantine.column("_dativo_record").to_pylist() == [3]


def test_extra_columns_are_dropped_and_missing_ones_are_null() -> None:
    schema = arrow_schema_for([Column("id", "integer"), Column("name", "string")])
    validator = BatchValidator(schema, "strict")
    result = validator.validate(pa.RecordBatch.from_pydict({"id": [1], "surprise": ["x"]}))
    assert result.valid.to_pydict() == {"id": [1], "name": [None]}
    assert validator.report.dropped_columns == {"surprise"}


def test_without_a_schema_the_first_batch_sets_the_types() -> None:
    validator = BatchValidator(None, "quarantine")
    validator.validate(pa.RecordBatch.from_pydict({"id": [1, 2], "note": pa.nulls(2)}))
    assert validator.schema is not None
    assert validator.schema.field("note").type == pa.string()
    result = validator.validate(pa.RecordBatch.from_pydict({"id": ["3", "oops"], "note": ["n", None]}))
    assert result.valid.to_pydict() == {"id": [3], "note": ["n"]}


def test_float_with_fraction_is_not_an_integer() -> None:
    schema = arrow_schema_for([Column("n", "integer")])
    result = BatchValidator(schema, "warn").validate(pa.RecordBatch.from_pydict({"n": [1.0, 2.5, 3.0]}))
    assert result.valid.column(0).to_pylist() == [1, None, 3]


@given(
    st.lists(
        st.one_of(
            st.integers(min_value=-(2**62), max_value=2**62).map(str),
            st.sampled_from(["x", "1.5", "", "NaN"]),
        ),
        min_size=1,
        max_size=200,
    )
)
def test_bisection_finds_exactly_the_bad_values(values: list[str]) -> None:
    schema = arrow_schema_for([Column("n", "integer")])
    validator = BatchValidator(schema, "warn")
    result = validator.validate(pa.RecordBatch.from_pydict({"n": pa.array(values, pa.string())}))
    expected_bad = [i for i, v in enumerate(values) if not v.lstrip("-").isdigit()]
    assert validator.report.records_invalid == len(expected_bad)
    column = result.valid.column(0).to_pylist()
    for index, value in enumerate(values):
        assert column[index] == (None if index in expected_bad else int(value))
