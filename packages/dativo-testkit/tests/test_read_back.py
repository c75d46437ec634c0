"""Reading a writer's output back: JSON-lines and Parquet folders, and value matching across forms."""

from __future__ import annotations

import base64
import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from dativo_plugin_sdk import Column, ColumnType
from dativo_testkit import (
    ALL_TYPES_SCHEMA,
    batch_strategy,
    compare_records,
    read_output_folder,
    records_to_arrow,
    values_match,
)
from dativo_testkit._json_values import json_default


def test_reads_jsonl_and_parquet_and_skips_staging(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    (tmp_path / "part-1.jsonl").write_text('{"id": 1, "s": "a\u2028b"}\n\n{"id": 2}\n', encoding="utf-8")
    (tmp_path / "nested").mkdir()
    pq.write_table(
        records_to_arrow([{"id": 3}], [Column("id", "integer")]), tmp_path / "nested" / "p.parquet"
    )
    for hidden in ("_staging", ".tmp"):
        (tmp_path / hidden).mkdir()
        (tmp_path / hidden / "x.jsonl").write_text('{"id": 99}\n')
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / "notes.txt").write_text("not data")
    records = read_output_folder(tmp_path)
    assert records == [{"id": 3}, {"id": 1, "s": "a\u2028b"}, {"id": 2}]
    assert read_output_folder(tmp_path / "missing") == []


def test_a_line_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1 is not a JSON object"):
        read_output_folder(tmp_path)


@pytest.mark.parametrize(
    ("column_type", "written", "read", "match"),
    [
        (
            ColumnType.TIMESTAMP,
            datetime(2024, 1, 1, 1, tzinfo=timezone.utc),
            "2024-01-01T02:00:00+01:00",
            True,
        ),
        (ColumnType.TIMESTAMP, datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 1), True),
        (ColumnType.TIMESTAMP, datetime(2024, 1, 1, tzinfo=timezone.utc), "2024-01-01T00:00:01Z", False),
        (ColumnType.DATE, date(2024, 2, 29), "2024-02-29", True),
        (ColumnType.DECIMAL, Decimal("1.5"), Decimal("1.500000000"), True),
        (ColumnType.DECIMAL, Decimal("1.5"), "1.5", True),
        (ColumnType.DECIMAL, Decimal("1.5"), 1.5, True),
        (ColumnType.BINARY, b"\x00\xff", "00ff", True),
        (ColumnType.BINARY, b"\x00\xff", base64.b64encode(b"\x00\xff").decode(), True),
        (ColumnType.BINARY, b"\x00\xff", "nope", False),
        (ColumnType.JSON, {"a": [1]}, '{"a": [1]}', True),
        (ColumnType.JSON, "123", 123, True),
        (ColumnType.FLOAT, 2, 2.0, True),
        (ColumnType.INTEGER, 2**53 + 1, float(2**53 + 1), False),
        (ColumnType.BOOLEAN, True, 1, False),
        (ColumnType.STRING, "", None, False),
        (ColumnType.STRING, None, None, True),
    ],
)
def test_values_match(column_type: ColumnType, written: Any, read: Any, match: bool) -> None:
    assert values_match(column_type, written, read) is match


@settings(max_examples=40, deadline=None)
@given(batch_strategy(ALL_TYPES_SCHEMA, max_size=6))
def test_records_survive_jsonl_and_arrow_forms(records: list[dict[str, Any]]) -> None:
    via_json = [json.loads(json.dumps(r, default=json_default)) for r in records]
    assert compare_records(ALL_TYPES_SCHEMA, records, via_json)
    assert compare_records(ALL_TYPES_SCHEMA, records, records_to_arrow(records, ALL_TYPES_SCHEMA).to_pylist())


def test_compare_records_reports_both_sides() -> None:
    schema = [Column("id", "integer")]
    comparison = compare_records(schema, [{"id": 1}, {"id": 2}], [{"id": 2, "extra": 0}, {"id": 3}])
    assert comparison.missing == ({"id": 1},)
    assert comparison.unexpected == ({"id": 3},)
    assert not comparison


def test_numpy_scalars_from_pandas_read_backs_match_by_value() -> None:
    np = pytest.importorskip("numpy")
    assert values_match(ColumnType.INTEGER, 5, np.int64(5))
    assert values_match(ColumnType.BOOLEAN, True, np.bool_(True))
    assert values_match(ColumnType.FLOAT, 1.5, np.float64(1.5))
    assert not values_match(ColumnType.INTEGER, 1, np.bool_(True))
