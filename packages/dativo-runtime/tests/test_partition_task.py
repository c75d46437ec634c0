"""Partitions staged in other processes and committed by the run that planned them (the Dask path)."""

from __future__ import annotations

import concurrent.futures
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from dativo_runtime import StateStore, parse_job, run_job
from dativo_runtime._engine._partition_task import (
    PartitionRequest,
    PartitionStaged,
    can_stage_remotely,
    stage_partition,
)
from dativo_runtime.connectors._parquet import ParquetWriter

pytestmark = pytest.mark.usefixtures("forget_secrets")

PLUGINS = Path(__file__).parent / "data" / "partitioned_plugins.py"


def job(tmp_path: Path, config: dict[str, Any], **changes: Any) -> Any:
    data: dict[str, Any] = {
        "tenant": "t",
        "name": "j",
        "source": {
            "plugin": f"{PLUGINS}:RangesReader",
            "config": config,
            "incremental": {},
            "parallelism": 2,
        },
        "target": {"plugin": "parquet", "config": {"path": "out"}},
        "sandbox": {"backend": "none"},
        "state": {"uri": str(tmp_path / "state")},
        "retry": {"max_attempts": 1},
    }
    data.update(changes)
    return parse_job(data, base_dir=tmp_path)


def in_other_processes(requests: Sequence[PartitionRequest]) -> Iterator[PartitionStaged]:
    """Stage each partition in a process of a pool, as a cluster worker would (pickled both ways)."""
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        futures = [pool.submit(stage_partition, request) for request in requests]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def ids(tmp_path: Path) -> list[int]:
    dataset = ds.dataset(tmp_path / "out", format="parquet")
    if "id" not in dataset.schema.names:
        return []
    return sorted(dataset.to_table(columns=["id"]).column("id").to_pylist())


def staging(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "out" / "_dativo" / "staging").rglob("*") if p.is_file()]


def test_partitions_staged_elsewhere_are_committed_once_with_their_states(tmp_path: Path) -> None:
    spec = job(tmp_path, {"ranges": 4, "size": 10})
    result = run_job(spec, partition_runner=in_other_processes)
    assert result.succeeded, result.error
    assert ids(tmp_path) == list(range(40))
    assert len(result.files) == 4
    assert all("-p" in Path(f).name for f in result.files)
    assert staging(tmp_path) == []
    states = StateStore(str(tmp_path / "state")).load("t", "j").partition_states("default")
    assert states == {f"range-{i}": {"next": (i + 1) * 10} for i in range(4)}
    again = run_job(spec, partition_runner=in_other_processes)
    assert again.succeeded, again.error
    assert again.records_read == 0


def test_a_partition_staged_twice_is_committed_once(tmp_path: Path) -> None:
    """A worker that died after staging: the executor runs the partition again, only one copy is adopted."""

    def rerun_first(requests: Sequence[PartitionRequest]) -> Iterator[PartitionStaged]:
        stage_partition(requests[0])  # Staged by a worker that died before reporting it.
        for request in requests:
            yield stage_partition(request)

    result = run_job(job(tmp_path, {"ranges": 3, "size": 10}), partition_runner=rerun_first)
    assert result.succeeded, result.error
    assert ids(tmp_path) == list(range(30))
    assert len(result.files) == 3
    assert staging(tmp_path) == []  # The orphan copy went with the run's staging folder.


def test_one_failing_partition_commits_nothing_and_leaves_no_staged_file(tmp_path: Path) -> None:
    result = run_job(
        job(tmp_path, {"ranges": 4, "size": 10, "fail": "range-1"}), partition_runner=in_other_processes
    )
    assert not result.succeeded
    assert "range-1 broke" in (result.error_message or "")
    assert ids(tmp_path) == []
    assert staging(tmp_path) == []
    assert StateStore(str(tmp_path / "state")).load("t", "j").partitions == {}


def test_requests_pickle(tmp_path: Path) -> None:
    request = PartitionRequest(
        job=job(tmp_path, {"ranges": 1}),
        run_id="r",
        writer_run_id="w",
        tag="p0",
        stream="ids",
        columns=None,
        partition={"name": "range-0", "params": {"start": 0, "stop": 10}},
        state=None,
        ingest_date="2026-01-01",
    )
    assert pickle.loads(pickle.dumps(request)) == request


def test_only_a_parquet_target_without_quarantine_is_staged_remotely(tmp_path: Path) -> None:
    assert can_stage_remotely(job(tmp_path, {}))[0]
    quarantined = job(tmp_path, {}, validation="quarantine")
    assert can_stage_remotely(quarantined) == (False, "validation: quarantine writes a second dataset")
    plugin_target = job(tmp_path, {}, target={"plugin": f"{PLUGINS}:RangesReader", "config": {}})
    assert not can_stage_remotely(plugin_target)[0]


def test_a_writer_adopts_only_files_staged_under_its_run(tmp_path: Path) -> None:
    writer = ParquetWriter({"path": str(tmp_path / "out")})
    run = writer.begin()
    try:
        with pytest.raises(ValueError, match="was not staged under run"):
            writer.adopt(
                [{"path": "x.parquet", "staged": "../../etc/passwd", "record_count": 1, "size_bytes": 1}]
            )
        with pytest.raises(ValueError, match="was not staged under run"):
            writer.adopt(
                [
                    {
                        "path": "x.parquet",
                        "staged": f"_dativo/staging/{run}/../other",
                        "record_count": 1,
                        "size_bytes": 1,
                    }
                ]
            )
        with pytest.raises(ValueError, match="join tag"):
            ParquetWriter({"path": str(tmp_path / "out")}).join_run(run, "../x")
    finally:
        writer.abort()
