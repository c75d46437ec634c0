"""The parquet writer: sizes, row groups, compression, partitioning, staging, commit, recovery."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dativo_plugin_sdk import Column, ConfigurationError, ValidationError
from dativo_runtime._storage._backends import LocalStorage, S3Storage
from dativo_runtime.connectors import ManifestFile, ParquetDataset, ParquetWriter, RunManifest


def rows(start: int, count: int) -> pa.Table:
    ids = list(range(start, start + count))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "region": pa.array(["eu" if i % 3 else "us" for i in ids]),
            "payload": pa.array([f"value-{i:08d}-" + "x" * (i % 50) for i in ids]),
        }
    )


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if "_dativo" not in p.parts)


def test_commit_publishes_files_with_run_unique_names(tmp_path: Path) -> None:
    writer = ParquetWriter({"path": str(tmp_path / "out"), "run_id": "20240101T000000Z-aaaa0001"})
    entries = writer.write_batch(rows(0, 100), 0)
    assert entries
    assert entries[0]["record_count"] == 100
    assert data_files(tmp_path / "out") == []
    summary = writer.commit_files(entries)
    writer.close()
    files = data_files(tmp_path / "out")
    assert [f.name for f in files] == ["part-20240101T000000Z-aaaa0001-00000.parquet"]
    assert summary["files_committed"] == 1
    assert summary["record_count"] == 100
    manifest = json.loads((tmp_path / "out/_dativo/manifests/20240101T000000Z-aaaa0001.json").read_text())
    assert manifest["files"][0]["path"] == files[0].name
    assert not list((tmp_path / "out/_dativo/staging").iterdir())
    assert pq.read_table(files[0]).num_rows == 100


def test_target_file_size_and_row_group_size_are_honoured(tmp_path: Path) -> None:
    writer = ParquetWriter(
        {"path": str(tmp_path), "target_file_size": "64kb", "row_group_size": 1000, "compression": "none"}
    )
    for start in range(0, 20_000, 700):
        writer.write_batch(rows(start, min(700, 20_000 - start)), 0)
    writer.commit_files([])
    files = data_files(tmp_path)
    assert len(files) > 3
    total = 0
    for index, path in enumerate(files):
        meta = pq.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert max(sizes) <= 1000
        assert all(s == 1000 for s in sizes[:-1])
        total += meta.num_rows
        if index < len(files) - 1:
            assert path.stat().st_size >= 64 * 1024
            assert path.stat().st_size < 64 * 1024 + 100 * 1024
    assert total == 20_000


def test_row_groups_stay_whole_when_the_target_file_size_is_smaller_than_one(tmp_path: Path) -> None:
    writer = ParquetWriter(
        {"path": str(tmp_path), "target_file_size": "8kb", "row_group_size": 2000, "compression": "none"}
    )
    for start in range(0, 9_000, 700):
        writer.write_batch(rows(start, min(700, 9_000 - start)), 0)
    writer.commit_files([])
    groups = []
    for path in data_files(tmp_path):
        meta = pq.ParquetFile(path).metadata
        groups.append([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
    # Each file closes after its first whole row group; only the very last group is short.
    assert groups == [[2000], [2000], [2000], [2000], [1000]]


@pytest.mark.parametrize("codec", ["snappy", "zstd"])
def test_compression_codec_is_used(tmp_path: Path, codec: str) -> None:
    writer = ParquetWriter({"path": str(tmp_path), "compression": codec})
    writer.write_batch(rows(0, 50), 0)
    writer.commit_files([])
    meta = pq.ParquetFile(data_files(tmp_path)[0]).metadata
    assert meta.row_group(0).column(0).compression.lower() == codec


def test_hive_partitioning_by_column_and_ingest_date(tmp_path: Path) -> None:
    writer = ParquetWriter(
        {
            "path": str(tmp_path),
            "partition_by": ["region"],
            "partition_by_ingest_date": True,
            "ingest_date": "2024-05-01",
        }
    )
    writer.write_batch(rows(0, 300), 0)
    writer.commit_files([])
    relative = {str(p.relative_to(tmp_path).parent) for p in data_files(tmp_path)}
    assert relative == {"ingest_date=2024-05-01/region=eu", "ingest_date=2024-05-01/region=us"}
    table = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 300
    assert "region" not in pq.read_schema(data_files(tmp_path)[0]).names
    by_region = duckdb.sql(
        f"SELECT region, count(*) FROM read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true) "
        "GROUP BY region ORDER BY region"
    ).fetchall()
    assert by_region == [("eu", 200), ("us", 100)]


def test_partition_values_are_escaped_and_nulls_have_a_partition(tmp_path: Path) -> None:
    writer = ParquetWriter({"path": str(tmp_path), "partition_by": ["k"]})
    writer.write_batch(pa.table({"k": ["a/b", None, "c d"], "v": [1, 2, 3]}), 0)
    writer.commit_files([])
    folders = sorted(p.parent.name for p in data_files(tmp_path))
    assert folders == ["k=__HIVE_DEFAULT_PARTITION__", "k=a%2Fb", "k=c d"]
    back = ds.dataset(tmp_path, format="parquet", partitioning="hive").to_table().to_pydict()
    assert sorted(back["v"]) == [1, 2, 3]


def test_two_runs_never_overwrite_each_other(tmp_path: Path) -> None:
    for _ in range(2):
        writer = ParquetWriter({"path": str(tmp_path)})
        writer.write_batch(rows(0, 10), 0)
        writer.commit_files([])
    assert len(data_files(tmp_path)) == 2
    assert len(ParquetDataset(LocalStorage(tmp_path)).committed_files()) == 2


def test_abort_discards_staged_files(tmp_path: Path) -> None:
    writer = ParquetWriter({"path": str(tmp_path), "row_group_size": 10})
    writer.write_batch(rows(0, 100), 0)
    assert list((tmp_path / "_dativo/staging").rglob("*.staged"))
    writer.abort()
    writer.abort()
    assert not list((tmp_path / "_dativo/staging").rglob("*"))
    assert data_files(tmp_path) == []


def test_close_without_commit_discards(tmp_path: Path) -> None:
    with ParquetWriter({"path": str(tmp_path)}) as writer:
        writer.write_batch(rows(0, 10), 0)
    assert data_files(tmp_path) == []


def test_schema_is_enforced(tmp_path: Path) -> None:
    schema = [Column("id", "integer", nullable=False), Column("name", "string")]
    writer = ParquetWriter({"path": str(tmp_path)}, schema=schema)
    writer.write_batch([{"id": 1, "name": "a"}], 0)
    with pytest.raises(ValidationError, match="required column 'id'"):
        writer.write_batch([{"id": None, "name": "b"}], 1)
    with pytest.raises(ValidationError, match="does not have"):
        writer.write_batch([{"id": 2, "other": "x"}], 2)
    writer.abort()


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"path": "x", "compression": "lzma"},
        {"path": "x", "row_group_size": 0},
        {"path": "x", "target_file_size": "huge"},
        {"path": "x", "partition_by": "a", "partition_by_ingest_date": True, "ingest_date": "soon"},
    ],
)
def test_bad_config_is_rejected(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ParquetWriter(config)


def test_missing_partition_column_is_a_configuration_error(tmp_path: Path) -> None:
    writer = ParquetWriter({"path": str(tmp_path), "partition_by": ["nope"]})
    with pytest.raises(ConfigurationError, match="nope"):
        writer.write_batch(rows(0, 3), 0)
    writer.abort()


def _stage_dead_run(root: Path, run_id: str, *, committed: bool, published: int = 0) -> list[str]:
    """Leave what a killed run leaves: staged files, and a manifest when it had committed."""
    storage = LocalStorage(root)
    entries = []
    for index in range(3):
        name = f"part-{run_id}-{index:05d}.parquet"
        staged = f"_dativo/staging/{run_id}/{name}.staged"
        path = storage.path(staged)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [index]}), path)
        entries.append(ManifestFile(path=name, staged=staged, record_count=1, size_bytes=path.stat().st_size))
    (root / "_dativo/staging" / f"{run_id}.lease").write_text("{}")
    if committed:
        manifest = RunManifest(run_id=run_id, committed_at="2024-01-01T00:00:00Z", files=tuple(entries))
        storage.write_bytes(f"_dativo/manifests/{run_id}.json", json.dumps(manifest.to_dict()).encode())
        for entry in entries[:published]:
            storage.move(entry.staged, entry.path)
    return [e.path for e in entries]


def test_recovery_rolls_back_uncommitted_and_forward_committed_runs(tmp_path: Path) -> None:
    _stage_dead_run(tmp_path, "20240101T000000Z-dead0001", committed=False)
    names = _stage_dead_run(tmp_path, "20240101T000000Z-dead0002", committed=True, published=1)
    report = ParquetDataset(LocalStorage(tmp_path)).recover()
    assert report.rolled_back == ["20240101T000000Z-dead0001"]
    assert report.rolled_forward == ["20240101T000000Z-dead0002"]
    assert sorted(p.name for p in data_files(tmp_path)) == sorted(names)
    assert not list((tmp_path / "_dativo/staging").iterdir())
    back = ds.dataset(tmp_path, format="parquet").to_table()
    assert sorted(back.column("id").to_pylist()) == [0, 1, 2]


def test_recovery_leaves_live_runs_alone(tmp_path: Path) -> None:
    live = ParquetWriter({"path": str(tmp_path), "run_id": "20240101T000000Z-live0001"})
    live.write_batch(rows(0, 5), 0)
    report = ParquetDataset(LocalStorage(tmp_path)).recover()
    assert report.skipped_live == ["20240101T000000Z-live0001"]
    live.commit_files([])
    assert len(data_files(tmp_path)) == 1


def test_a_new_writer_recovers_before_writing(tmp_path: Path) -> None:
    _stage_dead_run(tmp_path, "20240101T000000Z-dead0003", committed=False)
    writer = ParquetWriter({"path": str(tmp_path)})
    writer.write_batch(rows(0, 5), 0)
    assert not (tmp_path / "_dativo/staging/20240101T000000Z-dead0003").exists()
    writer.commit_files([])


def test_s3_target_round_trip(s3_bucket: tuple[str, Any], moto_endpoint: str, tmp_path: Path) -> None:
    bucket, client = s3_bucket
    config = {
        "path": f"s3://{bucket}/lake/orders",
        "endpoint_url": moto_endpoint,
        "partition_by": ["region"],
        "spool_dir": str(tmp_path / "spool"),
        "row_group_size": 40,
        "target_file_size": "1k",
    }
    writer = ParquetWriter(config)
    assert writer.check_connection().success
    writer.write_batch(rows(0, 150), 0)
    staged = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=bucket, Prefix="lake/orders/_dativo/staging")["Contents"]
    ]
    assert any(k.endswith(".staged") for k in staged)
    summary = writer.commit_files([])
    assert summary["files_committed"] >= 2
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="lake/orders/")["Contents"])
    data = [k for k in keys if k.endswith(".parquet")]
    assert {k.split("/")[2] for k in data} == {"region=eu", "region=us"}
    assert not [k for k in keys if "/_dativo/staging/" in k]
    storage = S3Storage(f"s3://{bucket}/lake/orders", {"endpoint_url": moto_endpoint})
    assert len(ParquetDataset(storage).committed_files()) == summary["files_committed"] == len(data)
    assert not list((tmp_path / "spool").iterdir())


def test_ingest_date_defaults_to_today_utc(tmp_path: Path) -> None:
    writer = ParquetWriter({"path": str(tmp_path), "partition_by_ingest_date": True})
    writer.write_batch(rows(0, 1), 0)
    writer.commit_files([])
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert data_files(tmp_path)[0].parent.name == f"ingest_date={today}"


@pytest.mark.parametrize("field", ["target_file_size", "max_buffer_size"])
def test_a_bad_size_names_its_own_field(tmp_path, field):
    with pytest.raises(ConfigurationError) as raised:
        ParquetWriter({"path": str(tmp_path / "out"), field: "lots"})
    assert raised.value.details["field"] == field
    assert field in raised.value.message
