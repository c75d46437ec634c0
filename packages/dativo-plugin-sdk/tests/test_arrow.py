"""The shared Arrow mapping: one Arrow type per column type, lenient and typed conversions."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest

from dativo_plugin_sdk import Column, ColumnType

pa = pytest.importorskip("pyarrow")

from dativo_plugin_sdk._arrow import (  # noqa: E402  (after the skip: needs pyarrow)
    arrow_schema_for,
    arrow_type_for,
    batch_to_arrow,
    column_type_for_arrow,
    records_to_arrow,
)


def test_every_column_type_round_trips_through_its_arrow_type() -> None:
    for column_type in ColumnType:
        back = column_type_for_arrow(arrow_type_for(column_type))
        assert back is (ColumnType.STRING if column_type is ColumnType.JSON else column_type)


def test_the_schema_marks_json_columns() -> None:
    schema = arrow_schema_for([Column("j", "json"), Column("s", "string", nullable=False)])
    assert schema.field("j").metadata == {b"dativo.type": b"json"}
    assert not schema.field("s").nullable


def test_a_json_string_is_a_json_string_in_both_conversions() -> None:
    columns = [Column("j", "json")]
    records = [{"j": "1"}, {"j": {"b": 1, "a": [2]}}, {"j": None}]
    lenient = batch_to_arrow(records, arrow_schema_for(columns)).column(0).to_pylist()
    typed = records_to_arrow(records, columns).column(0).to_pylist()
    assert lenient == typed == ['"1"', '{"a": [2], "b": 1}', None]
    assert [json.loads(v) if v is not None else None for v in typed] == ["1", {"a": [2], "b": 1}, None]


def test_lenient_keeps_what_does_not_fit_as_text_for_the_host_to_report() -> None:
    schema = arrow_schema_for([Column("n", "integer")])
    batch = batch_to_arrow([{"n": 1}, {"n": "two"}, {"n": 3, "extra": True}], schema)
    assert batch.schema.names == ["n", "extra"]
    assert batch.column(0).to_pylist() == ["1", "two", "3"]


def test_typed_converts_the_documented_spellings() -> None:
    columns = [Column("at", "timestamp"), Column("d", "date"), Column("p", "decimal"), Column("f", "float")]
    table = records_to_arrow(
        [{"at": "2024-01-01T01:00:00+01:00", "d": "2024-02-29", "p": 1.5, "f": 3}], columns
    )
    row = table.to_pylist()[0]
    assert row["at"] == dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    assert row["d"] == dt.date(2024, 2, 29)
    assert row["p"] == decimal.Decimal("1.5")
    assert row["f"] == 3.0


def test_typed_marks_a_required_column_holding_nulls_nullable() -> None:
    table = records_to_arrow([{"id": None}], [Column("id", "integer", nullable=False)])
    assert table.schema.field("id").nullable
