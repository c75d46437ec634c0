"""The ``iceberg`` writer's options and its writer run, driven directly (the CLI runs are in tests/)."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import Column, ColumnType, ConfigurationError
from dativo_runtime._jobs._model import parse_job
from dativo_runtime.connectors._iceberg_options import IcebergOptions
from dativo_runtime.connectors._registry import builtin_connector

pytest.importorskip("pyiceberg.catalog.sql", reason="the iceberg writer needs dativo-runtime[iceberg]")

from dativo_runtime.connectors._iceberg import IcebergWriter
from dativo_runtime.connectors._iceberg_staging import STAGING_DIR

pytestmark = pytest.mark.usefixtures("forget_secrets")

COLUMNS = [
    Column("id", ColumnType.INTEGER, nullable=False),
    Column("region", ColumnType.STRING),
]


def writer(tmp_path: Path, columns: list[Column] | None = None, **config: Any) -> IcebergWriter:
    return IcebergWriter(
        {"warehouse": str(tmp_path / "wh"), "table": "lake.orders", **config},
        COLUMNS if columns is None else columns,
    )


def rows(first: int, count: int) -> pa.RecordBatch:
    ids = list(range(first, first + count))
    return pa.RecordBatch.from_pydict(
        {"id": ids, "region": [("eu", "us")[i % 2] for i in ids]},
        schema=pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("region", pa.string())]),
    )


def data_files(tmp_path: Path) -> set[Path]:
    return set((tmp_path / "wh").rglob("data/**/*.parquet"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"table": "orders"}, "table"),
        ({"table": "lake..orders"}, "table"),
        ({"write_mode": "merge"}, "write_mode"),
        ({"partition_by": [{"column": "at", "transform": "week"}]}, "partition_by[0].transform"),
        ({"partition_by": [{"column": "id", "transform": "bucket[0]"}]}, "partition_by[0].transform"),
        ({"partition_by": [{"transform": "day"}]}, "partition_by[0]"),
        ({"partition_by": "region"}, "partition_by"),
        ({"catalog": {"type": "hive", "uri": "thrift://x"}}, "catalog.type"),
        ({"catalog": {"type": "rest"}}, "catalog.uri"),
        ({"catalog": {"type": "sql", "uri": "https://catalog.example.com"}}, "catalog.type"),
        ({"catalog": "sqlite:///c.db"}, "catalog"),
        ({"warehouse": "s3://lake/wh"}, "catalog"),
        ({"primary_key": [1]}, "primary_key"),
        ({"compression": "rar"}, "compression"),
        ({"target_file_size": "lots"}, "target_file_size"),
        ({"run_id": "a/b"}, "run_id"),
    ],
)
def test_a_bad_option_names_its_own_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        IcebergOptions.from_config({"warehouse": "/wh", "table": "lake.orders", **change})
    assert raised.value.details["field"] == field


def test_an_http_catalog_uri_means_a_rest_catalog() -> None:
    options = IcebergOptions.from_config(
        {
            "warehouse": "s3://lake/wh",
            "table": "lake.orders",
            "catalog": {"uri": "http://nessie:19120/iceberg"},
        }
    )
    assert options.catalog == {"type": "rest", "uri": "http://nessie:19120/iceberg"}


def test_options_defaults_and_partition_spellings() -> None:
    options = IcebergOptions.from_config(
        {
            "warehouse": "/srv/wh",
            "table": "lake.sales.orders",
            "partition_by": ["region", {"column": "id", "transform": "Bucket[ 16 ]"}],
        }
    )
    assert options.table == ("lake", "sales", "orders")
    assert options.catalog == {"type": "sql", "uri": "sqlite:////srv/wh/catalog.db"}
    assert [(p.column, p.transform) for p in options.partition_by] == [
        ("region", "identity"),
        ("id", "bucket[16]"),
    ]
    assert (options.write_mode, options.compression, options.target_file_size) == (
        "append",
        "zstd",
        128 * 1024**2,
    )


def test_the_job_file_resolves_the_warehouse_and_a_relative_sqlite_catalog(tmp_path: Path) -> None:
    job = parse_job(
        {
            "name": "orders",
            "source": {"plugin": "csv", "config": {"path": "orders.csv"}},
            "target": {
                "plugin": "iceberg",
                "config": {
                    "warehouse": "wh",
                    "table": "lake.orders",
                    "catalog": {"type": "sql", "uri": "sqlite:///catalogs/lake.db", "credential": "a:b"},
                },
            },
        },
        source_file=tmp_path / "jobs" / "job.yaml",
    )
    config = job.target_config()
    assert config["warehouse"] == str(tmp_path / "jobs" / "wh")
    assert config["catalog"]["uri"] == f"sqlite:///{tmp_path}/jobs/catalogs/lake.db"
    assert config["catalog"]["credential"] == "a:b"
    assert job.state_location() == str(tmp_path / "jobs" / "wh" / "_dativo" / "state")
    spec = builtin_connector("iceberg")
    assert spec is not None
    assert set(spec.run_context) == {"run_id", "primary_key"}


def test_files_roll_at_target_file_size_and_all_are_committed(tmp_path: Path) -> None:
    target = writer(tmp_path, target_file_size=1, partition_by=["region"])
    for n in range(4):
        target.write_batch(rows(n * 10, 10), n)
    summary = target.commit_files([])
    assert summary["files_committed"] == 8  # 4 batches x 2 regions, each file closed at once
    assert summary["record_count"] == 40
    table = target.catalog.load_table("lake.orders")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(40))
    assert {Path(p) for p in summary["paths"]} == data_files(tmp_path)
    snapshot = table.current_snapshot()
    assert snapshot is not None
    assert snapshot.summary is not None
    assert snapshot.summary["dativo.run-id"] == target.run_id
    target.close()


def test_batches_are_buffered_into_row_groups_of_row_group_size(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    # One data file whose row groups hold row_group_size rows, however small the batches.
    target = writer(tmp_path, row_group_size=25)
    for n in range(6):
        target.write_batch(rows(n * 10, 10), n)
    target.commit_files([])
    (only,) = data_files(tmp_path)
    meta = pq.ParquetFile(only).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [25, 25, 10]
    target.close()
    # Past max_buffer_size the buffer is written early, as a smaller row group.
    small = writer(tmp_path / "small", row_group_size=1000, max_buffer_size=1)
    for n in range(3):
        small.write_batch(rows(n * 10, 10), n)
    small.commit_files([])
    (file,) = data_files(tmp_path / "small")
    meta = pq.ParquetFile(file).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10, 10, 10]
    table = small.catalog.load_table("lake.orders")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(30))
    small.close()


def test_abort_deletes_the_staged_files_and_commits_nothing(tmp_path: Path) -> None:
    target = writer(tmp_path, partition_by=["region"])
    target.write_batch(rows(0, 10), 0)
    staged = data_files(tmp_path)
    assert len(staged) == 2
    record = json.loads((tmp_path / "wh" / STAGING_DIR / f"{target.run_id}.json").read_text())
    assert {Path(p.removeprefix("file://")) for p in record["files"]} == staged
    target.abort()
    assert data_files(tmp_path) == set()
    assert list((tmp_path / "wh" / STAGING_DIR).iterdir()) == []
    assert target.catalog.load_table("lake.orders").snapshots() == []
    target.close()


def test_a_dead_runs_files_are_deleted_by_the_next_run_and_a_committed_runs_are_kept(tmp_path: Path) -> None:
    committed = writer(tmp_path)
    committed.write_batch(rows(0, 5), 0)
    committed.commit_files([])
    kept = data_files(tmp_path)
    dead = writer(tmp_path)
    dead.write_batch(rows(5, 5), 0)
    dead._close_all()
    orphans = data_files(tmp_path) - kept
    assert orphans
    # The process "dies": its lease is released without cleaning anything up.
    assert dead._lease is not None
    dead._lease.release()
    dead._lease = None
    dead._finished = True
    # A committed run's record left behind (it died before deleting it) must not cost its files.
    (tmp_path / "wh" / STAGING_DIR / f"{committed.run_id}.json").write_text(
        json.dumps({"table": "lake.orders", "run_id": committed.run_id, "files": [str(p) for p in kept]})
    )
    following = writer(tmp_path)
    following.write_batch(rows(10, 5), 0)
    following.commit_files([])
    assert not (orphans & data_files(tmp_path))
    assert kept <= data_files(tmp_path)
    table = following.catalog.load_table("lake.orders")
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [*range(5), *range(10, 15)]
    assert list((tmp_path / "wh" / STAGING_DIR).iterdir()) == []


def test_the_commit_probe_knows_its_runs(tmp_path: Path) -> None:
    spec = builtin_connector("iceberg")
    assert spec is not None
    assert spec.commit_probe is not None
    config = {"warehouse": str(tmp_path / "wh"), "table": "lake.orders"}
    assert spec.commit_probe(str(tmp_path / "wh"), config, "never-ran") is False  # no table yet
    target = writer(tmp_path, run_id="run-1")
    target.write_batch(rows(0, 3), 0)
    target.commit_files([])
    assert spec.commit_probe(str(tmp_path / "wh"), config, "run-1") is True
    assert spec.commit_probe(str(tmp_path / "wh"), config, "run-2") is False


def test_a_required_table_column_the_stream_lacks_is_refused(tmp_path: Path) -> None:
    first = writer(tmp_path)
    first.write_batch(rows(0, 3), 0)
    first.commit_files([])
    narrower = writer(tmp_path, columns=[Column("region", ColumnType.STRING)])
    with pytest.raises(ConfigurationError, match="required column 'id'"):
        narrower.write_batch(pa.RecordBatch.from_pydict({"region": ["eu"]}), 0)
    narrower.close()
    assert len(first.catalog.load_table("lake.orders").snapshots()) == 1


def test_a_new_required_column_is_added_as_optional(tmp_path: Path) -> None:
    first = writer(tmp_path)
    first.write_batch(rows(0, 3), 0)
    first.commit_files([])
    wider_columns = [*COLUMNS, Column("channel", ColumnType.STRING, nullable=False)]
    wider = writer(tmp_path, columns=wider_columns)
    batch = rows(3, 2)
    wider.write_batch(batch.append_column("channel", pa.array(["web", "shop"])), 0)
    wider.commit_files([])
    table = wider.catalog.load_table("lake.orders")
    assert not table.schema().find_field("channel").required
    got = table.scan().to_arrow().sort_by("id").select(["id", "channel"]).to_pylist()
    assert [(r["id"], r["channel"]) for r in got] == [
        (0, None),
        (1, None),
        (2, None),
        (3, "web"),
        (4, "shop"),
    ]


def test_files_of_a_table_not_created_yet_is_an_empty_listing(tmp_path: Path) -> None:
    from dativo_runtime import committed_files

    job = parse_job(
        {
            "name": "orders",
            "source": {"plugin": "csv", "config": {"path": "orders.csv"}},
            "target": {"plugin": "iceberg", "config": {"warehouse": "wh", "table": "lake.orders"}},
        },
        source_file=tmp_path / "job.yaml",
    )
    listing = committed_files(job)
    assert (listing["runs"], listing["files"], listing["record_count"]) == ([], [], 0)
    assert listing["location"] == str(tmp_path / "wh")
    assert listing["local"] is True


PARTITIONINGS = [
    [],
    ["region"],
    [{"column": "at", "transform": "day"}],
    [{"column": "at", "transform": "hour"}, {"column": "region"}],
    [{"column": "id", "transform": "bucket[3]"}],
    [{"column": "id", "transform": "truncate[10]"}],
    [{"column": "region", "transform": "truncate[1]"}, {"column": "at", "transform": "year"}],
]
MOMENTS = st.datetimes(
    min_value=dt.datetime(1969, 12, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.timezone.utc)
)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(-(2**62), 2**62),
            st.one_of(st.none(), st.sampled_from(["eu", "us", "apac", "é/ü =%"])),
            st.one_of(st.none(), MOMENTS),
        ),
        min_size=1,
        max_size=60,
        unique_by=lambda row: row[0],
    ),
    partitioning=st.sampled_from(PARTITIONINGS),
    batches=st.integers(1, 3),
)
def test_any_rows_read_back_exactly_whatever_the_partitioning(
    rows: list[tuple[int, str | None, dt.datetime | None]], partitioning: list[Any], batches: int
) -> None:
    columns = [*COLUMNS, Column("at", ColumnType.TIMESTAMP)]
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("region", pa.string()),
            ("at", pa.timestamp("us", "UTC")),
        ]
    )
    with tempfile.TemporaryDirectory() as folder:
        target = writer(Path(folder), columns=columns, partition_by=partitioning)
        size = -(-len(rows) // batches)
        for n in range(0, len(rows), size):
            part = rows[n : n + size]
            target.write_batch(
                pa.RecordBatch.from_arrays(
                    [
                        pa.array([r[0] for r in part]),
                        pa.array([r[1] for r in part]),
                        pa.array([r[2] for r in part], schema.field("at").type),
                    ],
                    schema=schema,
                ),
                n,
            )
        target.commit_files([])
        table = target.catalog.load_table("lake.orders")
        got = table.scan().to_arrow().sort_by("id").to_pylist()
        target.close()
    assert [(r["id"], r["region"], r["at"]) for r in got] == sorted(rows)


@pytest.mark.parametrize(
    ("partition_by", "problem"),
    [
        ([{"column": "nope"}], "names column 'nope', which the stream does not have"),
        ([{"column": "region", "transform": "day"}], "transform day does not apply to column 'region'"),
    ],
)
def test_a_partition_spec_that_does_not_fit_the_stream_creates_no_table(
    tmp_path: Path, partition_by: list[Any], problem: str
) -> None:
    target = writer(tmp_path, partition_by=partition_by)
    with pytest.raises(ConfigurationError, match=problem):
        target.write_batch(rows(0, 3), 0)
    target.close()
    reader = writer(tmp_path)
    assert not reader.catalog.table_exists("lake.orders")
    reader.close()
    assert data_files(tmp_path) == set()
