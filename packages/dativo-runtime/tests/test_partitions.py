"""Partitioned streams: one commit for every partition, state per partition, re-partitioning between runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from prometheus_client import generate_latest

from dativo_plugin_sdk import check_compatibility
from dativo_runtime import JobState, StateStore, parse_job, run_job
from dativo_runtime._engine._attempt import ProgressEvent
from dativo_runtime._jobs._sections import SourceSpec
from dativo_runtime._observability._metrics import RunMetrics

pytestmark = pytest.mark.usefixtures("forget_secrets")

PLUGINS = Path(__file__).parent / "data" / "partitioned_plugins.py"
FAST_RETRY = {"max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.02}


def job(tmp_path: Path, config: dict[str, Any] | None = None, **source: Any) -> Any:
    data: dict[str, Any] = {
        "tenant": "t",
        "name": "j",
        "source": {
            "plugin": f"{PLUGINS}:RangesReader",
            "config": config or {},
            "incremental": {},
            **source,
        },
        "target": {"plugin": "parquet", "config": {"path": "out"}},
        "retry": FAST_RETRY,
        "sandbox": {"backend": "none"},
        "state": {"uri": str(tmp_path / "state")},
    }
    return parse_job(data, base_dir=tmp_path)


def ids(tmp_path: Path) -> list[int]:
    root = tmp_path / "out"
    if not root.exists():
        return []
    dataset = ds.dataset(root, format="parquet")
    if "id" not in dataset.schema.names:
        return []  # No committed file.
    return sorted(dataset.to_table(columns=["id"]).column("id").to_pylist())


def saved(tmp_path: Path) -> JobState:
    return StateStore(str(tmp_path / "state")).load("t", "j")


def test_every_partition_in_one_commit_with_each_partitions_state(tmp_path: Path) -> None:
    result = run_job(job(tmp_path, {"ranges": 4, "size": 10}, parallelism=2))
    assert result.succeeded, result.error
    assert ids(tmp_path) == list(range(40))
    assert result.manifest is not None  # One run manifest: one commit for all partitions.
    assert [(p["name"], p["records_read"], p["complete"]) for p in result.partitions or []] == [
        (f"range-{i}", 10, True) for i in range(4)
    ]
    state = saved(tmp_path)
    assert state.partition_states("default") == {f"range-{i}": {"next": (i + 1) * 10} for i in range(4)}
    assert state.streams == {}
    assert result.to_dict()["partitions"][0]["state"] == {"next": 10}


def test_each_partition_resumes_from_its_own_state(tmp_path: Path) -> None:
    assert run_job(job(tmp_path, {"ranges": 3, "size": 10}, parallelism=3)).succeeded
    again = run_job(job(tmp_path, {"ranges": 3, "size": 10}, parallelism=3))
    assert again.succeeded, again.error
    assert again.records_read == 0
    assert ids(tmp_path) == list(range(30))


def test_repartitioning_between_runs_neither_loses_nor_duplicates(tmp_path: Path) -> None:
    # Run 1 reads ranges 0 and 1; run 2 lists 1 and 2 (0 gone, 2 new); run 3 lists 0..3.
    assert run_job(job(tmp_path, {"names": [0, 1], "size": 10})).succeeded
    second = run_job(job(tmp_path, {"names": [1, 2], "size": 10}, parallelism=2))
    assert second.succeeded, second.error
    assert [(p["name"], p["records_read"]) for p in second.partitions or []] == [
        ("range-1", 0),
        ("range-2", 10),
    ]
    # range-0 is not listed, and its state is kept: it resumes when it comes back.
    assert saved(tmp_path).partition_states("default")["range-0"] == {"next": 10}
    third = run_job(job(tmp_path, {"names": [0, 1, 2, 3], "size": 10}, parallelism=2))
    assert third.succeeded, third.error
    assert third.records_read == 10
    assert ids(tmp_path) == list(range(40))


def test_partitions_sees_every_committed_partition_state(tmp_path: Path) -> None:
    assert run_job(job(tmp_path, {"names": [0, 1], "size": 10})).succeeded
    assert run_job(job(tmp_path, {"names": [2], "size": 10})).succeeded
    # A reader that re-splits reads partition_states in partitions(): the mock puts what it saw in params.
    spec = job(tmp_path, {"names": [3], "size": 10})
    from dativo_runtime._engine._sessions import open_reader_session

    reader, _ = open_reader_session(spec)
    try:
        listed = reader.partitions(saved(tmp_path).partition_states("default"))
    finally:
        reader.close()
    assert listed[0].params["seen"] == ["range-0", "range-1", "range-2"]


def test_a_partition_without_state_starts_from_the_streams_unpartitioned_state(tmp_path: Path) -> None:
    # A reader that starts partitioning keeps its place: the old stream state seeds each partition.
    StateStore(str(tmp_path / "state")).save("t", "j", JobState(streams={"default": {"next": 5}}))
    result = run_job(job(tmp_path, {"ranges": 2, "size": 10}))
    assert result.succeeded, result.error
    # range-0 resumes at 5; range-1 (10..19) starts at 5 too, which is before its start: all of it.
    assert [p["records_read"] for p in result.partitions or []] == [5, 10]
    assert ids(tmp_path) == list(range(5, 20))


def test_one_failing_partition_fails_the_run_and_commits_nothing(tmp_path: Path) -> None:
    result = run_job(job(tmp_path, {"ranges": 4, "size": 10, "fail": "range-2"}, parallelism=2))
    assert not result.succeeded
    assert result.exit_code == 1
    assert "range-2 broke" in (result.error_message or "")
    assert ids(tmp_path) == []
    assert saved(tmp_path).partitions == {}


def test_a_retryable_partition_failure_retries_the_run(tmp_path: Path) -> None:
    marker = tmp_path / "flaky"
    waits: list[float] = []
    result = run_job(
        job(
            tmp_path,
            {"ranges": 3, "size": 10, "flaky": "range-1", "flaky_marker": str(marker)},
            parallelism=2,
        ),
        sleep=waits.append,
    )
    assert result.succeeded, result.error
    assert result.attempts == 2
    assert len(waits) == 1
    assert ids(tmp_path) == list(range(30))


def test_partitions_run_at_once_up_to_parallelism(tmp_path: Path) -> None:
    config = {"ranges": 4, "size": 10, "delay_s": 0.05, "trace": True}
    result = run_job(job(tmp_path, config, parallelism=2))
    assert result.succeeded, result.error
    table = ds.dataset(tmp_path / "out", format="parquet").to_table().to_pylist()
    spans = {}
    for row in table:
        low, high = spans.get(row["partition"], (row["at"], row["at"]))
        spans[row["partition"]] = (min(low, row["at"]), max(high, row["at"]))
    # range-0 and range-1 overlap in time (two at once); never more than two at once.
    (a0, a1), (b0, b1) = spans["range-0"], spans["range-1"]
    assert a0 < b1
    assert b0 < a1
    for moment, _ in spans.values():
        assert sum(1 for low, high in spans.values() if low <= moment <= high) <= 2


def test_progress_reports_partitions_done(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    assert run_job(job(tmp_path, {"ranges": 3, "size": 10}), on_progress=events.append).succeeded
    assert events[-1].partitions_total == 3
    assert events[-1].partitions_done == 3
    assert events[-1].records_read == 30


def test_metrics_count_records_per_partition(tmp_path: Path) -> None:
    metrics = RunMetrics()
    assert run_job(job(tmp_path, {"ranges": 2, "size": 10}), metrics=metrics).succeeded
    text = generate_latest(metrics.registry).decode()
    assert (
        'dativo_partition_records_read_total{dativo_job="j",partition="range-1",stream="ids",tenant="t"} 10.0'
        in text
    )
    assert 'dativo_partitions_extracted_total{dativo_job="j",stream="ids",tenant="t"} 2.0' in text
    assert 'dativo_partitions_in_progress{dativo_job="j",tenant="t"} 0.0' in text


def test_csv_reads_each_file_as_a_partition_and_resumes_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(3):
        (folder / f"f{n}.csv").write_text("id\n" + "".join(f"{n * 100 + i}\n" for i in range(4)))
    spec = parse_job(
        {
            "tenant": "t",
            "name": "j",
            "source": {"plugin": "csv", "config": {"path": "in/"}, "incremental": {}, "parallelism": 2},
            "target": {"plugin": "parquet", "config": {"path": "out"}},
            "state": {"uri": str(tmp_path / "state")},
        },
        base_dir=tmp_path,
    )
    first = run_job(spec)
    assert first.succeeded, first.error
    assert [p["name"] for p in first.partitions or []] == ["f0.csv", "f1.csv", "f2.csv"]
    assert len(ids(tmp_path)) == 12
    (folder / "f3.csv").write_text("id\n300\n")
    second = run_job(spec)
    assert second.succeeded, second.error
    assert {p["name"]: p["records_read"] for p in second.partitions or []} == {
        "f0.csv": 0,
        "f1.csv": 0,
        "f2.csv": 0,
        "f3.csv": 1,
    }
    # A rewritten file is its own partition's change: only it is read again.
    stat = (folder / "f1.csv").stat()
    (folder / "f1.csv").write_text("id\n500\n")
    os.utime(folder / "f1.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    third = run_job(spec)
    assert third.succeeded, third.error
    assert third.records_read == 1
    assert sorted(ids(tmp_path)) == sorted([*range(4), *range(100, 104), *range(200, 204), 300, 500])


def test_csv_state_from_an_unpartitioned_run_carries_over(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(2):
        (folder / f"f{n}.csv").write_text("id\n1\n2\n")
    files = sorted(folder.iterdir())
    high = max(f.stat().st_mtime_ns for f in files)
    legacy = {"mtime_ns": high, "paths_at_mtime": [str(f) for f in files if f.stat().st_mtime_ns == high]}
    older = [f for f in files if f.stat().st_mtime_ns < high]
    StateStore(str(tmp_path / "state")).save("t", "j", JobState(streams={"default": legacy}))
    spec = parse_job(
        {
            "tenant": "t",
            "name": "j",
            "source": {"plugin": "csv", "config": {"path": "in/"}, "incremental": {}},
            "target": {"plugin": "parquet", "config": {"path": "out"}},
            "state": {"uri": str(tmp_path / "state")},
        },
        base_dir=tmp_path,
    )
    result = run_job(spec)
    assert result.succeeded, result.error
    assert result.records_read == 0, (older, result.partitions)


@pytest.mark.parametrize("value", [0, -1, True, "many", 1.5])
def test_parallelism_must_be_a_positive_integer_or_auto(value: Any) -> None:
    with pytest.raises(ValueError, match="parallelism"):
        SourceSpec(plugin="csv", parallelism=value)


def test_parallelism_auto_is_the_usable_cores() -> None:
    assert SourceSpec(plugin="csv", parallelism="auto").partitions_at_once() == len(os.sched_getaffinity(0))


class _UsesPartitions:
    __version__ = "1.0.0"
    requires_sdk = ">=1.1,<2"


def test_a_plugin_using_partitions_is_refused_by_an_sdk_1_0_runtime() -> None:
    from dativo_plugin_sdk import PluginVersionError

    with pytest.raises(PluginVersionError, match=r">=1.1"):
        check_compatibility(_UsesPartitions, sdk_version="1.0.3")


def test_state_file_round_trips_partitions(tmp_path: Path) -> None:
    state = JobState(streams={"s": {"a": 1}}, partitions={"s": {"p": {"next": 3}}}, run_id="r")
    data = json.loads(json.dumps(state.to_dict()))
    again = JobState.from_dict(data)
    assert again.partitions == {"s": {"p": {"next": 3}}}
    assert again.state_of_partition("s", "p") == {"next": 3}
    assert again.state_of_partition("s", "q") == {"a": 1}


def test_jsonl_reads_each_file_as_a_partition(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(3):
        (folder / f"f{n}.jsonl").write_text("".join(json.dumps({"id": n * 10 + i}) + "\n" for i in range(5)))
    spec = parse_job(
        {
            "tenant": "t",
            "name": "j",
            "source": {"plugin": "jsonl", "config": {"path": "in/*.jsonl"}, "parallelism": "auto"},
            "target": {"plugin": "parquet", "config": {"path": "out"}},
        },
        base_dir=tmp_path,
    )
    result = run_job(spec)
    assert result.succeeded, result.error
    assert [(p["name"], p["records_read"]) for p in result.partitions or []] == [
        ("f0.jsonl", 5),
        ("f1.jsonl", 5),
        ("f2.jsonl", 5),
    ]
    assert ids(tmp_path) == sorted(n * 10 + i for n in range(3) for i in range(5))


def test_a_single_file_path_is_read_whole(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id\n1\n2\n")
    spec = parse_job(
        {
            "tenant": "t",
            "name": "j",
            "source": {"plugin": "csv", "config": {"path": "in.csv"}, "parallelism": 4},
            "target": {"plugin": "parquet", "config": {"path": "out"}},
        },
        base_dir=tmp_path,
    )
    result = run_job(spec)
    assert result.succeeded, result.error
    assert result.partitions is None
    assert ids(tmp_path) == [1, 2]


def test_the_run_summary_shows_the_partitions(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dativo_runtime._cli._app import app

    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(2):
        (folder / f"f{n}.csv").write_text("id\n" + "".join(f"{n * 100 + i}\n" for i in range(3)))
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "name: j\nsource: {plugin: csv, parallelism: 2, config: {path: in/}}\n"
        "target: {plugin: parquet, config: {path: out}}\n"
    )
    shown = CliRunner().invoke(app, ["run", "--config", str(job_file), "--no-progress"])
    assert shown.exit_code == 0, shown.output
    assert "partitions" in shown.stdout
    assert "2 of 2 read to the end (f0.csv 3, f1.csv 3)" in shown.stdout
    document = json.loads(CliRunner().invoke(app, ["run", "--config", str(job_file), "--json"]).stdout)
    assert [p["name"] for p in document["partitions"]] == ["f0.csv", "f1.csv"]
