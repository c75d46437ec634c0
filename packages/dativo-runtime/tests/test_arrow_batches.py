"""The dict-to-Arrow conversion: the one-pass fast path gives what the lenient path gives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import Column, ColumnType, ValidationError
from dativo_plugin_sdk._arrow import _records_fast, arrow_schema_for, batch_to_arrow

COLUMNS = [
    Column("id", ColumnType.INTEGER, nullable=False),
    Column("name", ColumnType.STRING),
    Column("amount", ColumnType.FLOAT),
    Column("active", ColumnType.BOOLEAN),
    Column("at", ColumnType.TIMESTAMP),
]
SCHEMA = arrow_schema_for(COLUMNS)

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=3), st.floats()),
    "name": st.one_of(st.none(), st.text(max_size=5), st.integers(0, 9)),
    "amount": st.one_of(st.none(), st.floats(allow_nan=False), st.integers(-5, 5), st.text(max_size=2)),
    "active": st.one_of(st.none(), st.booleans(), st.sampled_from(["yes", "true"])),
    "at": st.one_of(
        st.none(),
        st.datetimes(timezones=st.just(dt.timezone.utc)),
        st.text(max_size=4),
    ),
    "extra": st.integers(),
}
RECORDS = st.lists(
    st.fixed_dictionaries({}, optional=VALUES),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(RECORDS)
def test_fast_path_matches_the_lenient_path(records: list[dict[str, Any]]) -> None:
    fast = _records_fast(records, SCHEMA)
    lenient = _lenient(records)
    if fast is None:
        return
    assert fast.schema == lenient.schema
    assert fast.equals(lenient)


def _lenient(records: list[dict[str, Any]]) -> pa.RecordBatch:
    # A schema with a JSON column sends every batch down the lenient path; drop that column after.
    json_column = Column("zz_json", ColumnType.JSON)
    schema = arrow_schema_for([*COLUMNS, json_column])
    batch = batch_to_arrow(records, schema)
    keep = [i for i, name in enumerate(batch.schema.names) if name != "zz_json"]
    return pa.RecordBatch.from_arrays(
        [batch.column(i) for i in keep], names=[batch.schema.names[i] for i in keep]
    )


def test_fast_path_takes_records_that_fit() -> None:
    at = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    records = [{"id": 1, "name": "a", "amount": 1.5, "active": True, "at": at}, {"id": 2}]
    batch = _records_fast(records, SCHEMA)
    assert batch is not None
    assert batch.to_pylist() == [
        {"id": 1, "name": "a", "amount": 1.5, "active": True, "at": at},
        {"id": 2, "name": None, "amount": None, "active": None, "at": None},
    ]
    assert batch.equals(batch_to_arrow(records, SCHEMA))


def test_extra_keys_and_misfits_leave_the_fast_path() -> None:
    assert _records_fast([{"id": 1, "other": 2}], SCHEMA) is None
    assert _records_fast([{"id": "one"}], SCHEMA) is None
    assert _records_fast([[1, 2]], SCHEMA) is None  # type: ignore[list-item]
    # ...and the lenient path keeps what validation must report.
    batch = batch_to_arrow([{"id": 1, "other": 2}], SCHEMA)
    assert batch.schema.names[-1] == "other"
    assert batch_to_arrow([{"id": "one"}], SCHEMA).column(0).type == pa.string()


def test_a_record_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ValidationError, match="dict records"):
        batch_to_arrow([{"id": 1}, 5], SCHEMA)
