"""The csv and jsonl readers: discovery, lenient typing, globs, S3, incremental state."""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dativo_plugin_sdk import ColumnType, ConfigurationError, State, ValidationError
from dativo_runtime.connectors import CsvReader, JsonlReader


def write(path: Path, text: str, mtime: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, ns=(mtime, mtime))
    return path


def read_all(reader: Any, state: State | None = None) -> pa.Table:
    batches = list(reader.extract(state))
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    return pa.Table.from_batches(batches) if batches else pa.table({})


CSV = (
    "id,name,amount,at\n1,a,1.5,2024-01-01T00:00:00Z\n2,b,,2024-01-02T00:00:00Z\n3,c,3,2024-01-03T00:00:00Z\n"
)


def test_csv_discover_infers_header_and_types(tmp_path: Path) -> None:
    reader = CsvReader({"path": str(write(tmp_path / "orders.csv", CSV))})
    stream = reader.discover().objects[0]
    assert stream.name == "orders"
    assert [(c.name, c.type) for c in stream.schema] == [
        ("id", ColumnType.INTEGER),
        ("name", ColumnType.STRING),
        ("amount", ColumnType.FLOAT),
        ("at", ColumnType.TIMESTAMP),
    ]
    assert reader.check_connection().success


def test_csv_extract_types_and_nulls(tmp_path: Path) -> None:
    table = read_all(CsvReader({"path": str(write(tmp_path / "o.csv", CSV))}))
    assert table.column("id").to_pylist() == [1, 2, 3]
    assert table.column("amount").to_pylist() == [1.5, None, 3.0]


def test_csv_streams_in_blocks_and_keeps_bad_values_as_text(tmp_path: Path) -> None:
    lines = ["id,amount"] + [f"{i},{i}.5" for i in range(5000)] + ["5000,oops"]
    reader = CsvReader(
        {"path": str(write(tmp_path / "big.csv", "\n".join(lines) + "\n")), "block_size": "16k"}
    )
    batches = list(reader.extract())
    assert len(batches) > 3
    assert batches[0].schema.field("amount").type == pa.float64()
    assert batches[-1].schema.field("amount").type == pa.string()
    assert sum(b.num_rows for b in batches) == 5001


def test_csv_glob_reads_every_matching_file_in_order(tmp_path: Path) -> None:
    write(tmp_path / "in/2024-01/a.csv", "id\n1\n")
    write(tmp_path / "in/2024-02/b.csv", "id\n2\n")
    write(tmp_path / "in/2024-02/_skip.csv", "id\n99\n")
    write(tmp_path / "in/notes.txt", "id\n100\n")
    reader = CsvReader({"path": str(tmp_path / "in/**/*.csv")})
    assert read_all(reader).column("id").to_pylist() == [1, 2]
    assert reader.discover().objects[0].name == "in"


def test_csv_gzip_and_options(tmp_path: Path) -> None:
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(b"1;a\n2;b\n"))
    reader = CsvReader({"path": str(path), "delimiter": ";", "has_header": False, "column_names": ["n", "s"]})
    assert read_all(reader).to_pydict() == {"n": [1, 2], "s": ["a", "b"]}


def test_csv_malformed_rows_fail_or_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "bad.csv", "a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(ValidationError, match="not valid CSV"):
        read_all(CsvReader({"path": str(path)}))
    reader = CsvReader({"path": str(path), "invalid_rows": "skip"})
    with caplog.at_level(logging.WARNING, logger="dativo.files"):
        assert read_all(reader).column("a").to_pylist() == [1, 6]
    assert reader.skipped_rows == 1
    # Nothing silent: the run's log says how many rows of which file were dropped.
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: skipped 1 row with the wrong number of fields (invalid_rows: skip)"
    ]


def test_csv_column_names_rename_the_header_of_a_file_that_has_one(tmp_path: Path) -> None:
    path = write(tmp_path / "named.csv", "a,b\n1,x\n2,y\n")
    renamed = CsvReader({"path": str(path), "column_names": ["n", "s"]})
    assert read_all(renamed).to_pydict() == {"n": [1, 2], "s": ["x", "y"]}
    headerless = CsvReader({"path": str(path), "has_header": False, "column_names": ["n", "s"]})
    assert read_all(headerless).to_pydict() == {"n": ["a", "1", "2"], "s": ["b", "x", "y"]}


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    reader = CsvReader({"path": str(tmp_path / "nope.csv")})
    with pytest.raises(ConfigurationError, match="does not exist"):
        list(reader.extract())
    result = reader.check_connection()
    assert not result.success
    assert result.error_code == "CONFIGURATION_ERROR"


def test_empty_glob_reads_nothing(tmp_path: Path) -> None:
    reader = CsvReader({"path": str(tmp_path / "*.csv")})
    assert list(reader.extract()) == []
    assert reader.discover().objects[0].schema == ()


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"path": ""},
        {"path": "x", "delimiter": ",,"},
        {"path": "x", "incremental": {"strategy": "cursor"}},
    ],
)
def test_bad_csv_config(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CsvReader(config)


def test_mtime_incremental_reads_new_and_modified_files_only(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", "id\n1\n", mtime=1_000)
    write(tmp_path / "b.csv", "id\n2\n", mtime=2_000)
    config = {"path": str(tmp_path / "*.csv"), "incremental": {"strategy": "mtime"}}
    state = State()
    assert read_all(CsvReader(config), state).column("id").to_pylist() == [1, 2]
    assert state.get("mtime_ns") == 2_000
    saved = state.to_dict()
    assert read_all(CsvReader(config), State(saved)).num_rows == 0
    write(tmp_path / "c.csv", "id\n3\n", mtime=2_000)
    write(tmp_path / "a.csv", "id\n1\n4\n", mtime=3_000)
    assert read_all(CsvReader(config), State(saved)).column("id").to_pylist() == [3, 1, 4]


def test_cursor_incremental_reads_rows_past_the_last_maximum(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", "id,updated\n1,2024-01-01T00:00:00Z\n2,2024-01-03T00:00:00Z\n")
    config = {"path": str(path), "incremental": {"strategy": "cursor", "cursor_field": "updated"}}
    state = State()
    assert read_all(CsvReader(config), state).num_rows == 2
    assert state.get("cursor").startswith("2024-01-03")
    write(path, path.read_text() + "3,2024-01-02T00:00:00Z\n4,2024-01-04T00:00:00Z\n")
    assert read_all(CsvReader(config), State(state.to_dict())).column("id").to_pylist() == [4]


def test_cursor_field_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path / "e.csv", "id\n1\n")
    reader = CsvReader({"path": str(path), "incremental": {"strategy": "cursor", "cursor_field": "updated"}})
    with pytest.raises(ConfigurationError, match="cursor_field 'updated'"):
        list(reader.extract(State()))


def test_jsonl_discover_and_extract(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "tags": ["x"] if i % 2 else [], "meta": {"k": i}}) for i in range(500)]
    path = write(tmp_path / "events.jsonl", "\n".join(lines) + "\n")
    reader = JsonlReader({"path": str(path), "block_size": "4k"})
    stream = reader.discover().objects[0]
    assert stream.name == "events"
    assert stream.column("id").type == ColumnType.INTEGER
    batches = list(reader.extract())
    assert len(batches) > 2
    assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(500))


def test_jsonl_mixed_types_fall_back_to_lenient_parsing(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", '{"n": 1}\n{"n": "two"}\n\n{"n": 3}\n')
    table = read_all(JsonlReader({"path": str(path)}))
    assert table.column("n").to_pylist() == ["1", "two", "3"]


@pytest.mark.parametrize(
    ("text", "fragment"), [('{"a": 1}\n{oops\n', "line 2 is not valid JSON"), ("[1]\n", "not an object")]
)
def test_jsonl_bad_lines_name_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path / "bad.jsonl", text)
    with pytest.raises(ValidationError, match=fragment):
        read_all(JsonlReader({"path": str(path)}))


def test_readers_on_s3(s3_bucket: tuple[str, Any], moto_endpoint: str) -> None:
    bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="raw/2024/a.csv", Body=b"id,v\n1,x\n2,y\n")
    client.put_object(Bucket=bucket, Key="raw/2024/b.csv", Body=b"id,v\n3,z\n")
    client.put_object(Bucket=bucket, Key="raw/2024/c.jsonl", Body=b'{"id": 9}\n')
    client.put_object(Bucket=bucket, Key="raw/single.jsonl", Body=b'{"id": 7}\n{"id": 8}\n')
    reader = CsvReader({"path": f"s3://{bucket}/raw/2024/*.csv", "endpoint_url": moto_endpoint})
    assert reader.check_connection().success
    assert reader.discover().objects[0].column("id").type == ColumnType.INTEGER
    state = State()
    assert read_all(reader, state).column("id").to_pylist() == [1, 2, 3]
    assert read_all(CsvReader(reader.config), State(state.to_dict())).num_rows == 0
    single = JsonlReader({"path": f"s3://{bucket}/raw/single.jsonl", "endpoint_url": moto_endpoint})
    assert read_all(single).column("id").to_pylist() == [7, 8]
    missing = JsonlReader({"path": f"s3://{bucket}/raw/none.jsonl", "endpoint_url": moto_endpoint})
    with pytest.raises(ConfigurationError, match="does not exist"):
        list(missing.extract())


def test_csv_column_types_convert_straight_from_text(tmp_path: Path) -> None:
    import decimal

    path = write(tmp_path / "p.csv", "price,qty\n4.99,1\n0.10,x\n")
    reader = CsvReader({"path": str(path), "column_types": {"price": "decimal", "qty": "integer"}})
    table = read_all(reader)
    assert table.column("price").to_pylist() == [decimal.Decimal("4.99"), decimal.Decimal("0.10")]
    assert table.schema.field("qty").type == pa.string()  # "x" does not convert: kept as text for validation
    with pytest.raises(ConfigurationError, match="column_types"):
        CsvReader({"path": str(path), "column_types": {"price": "money"}})
