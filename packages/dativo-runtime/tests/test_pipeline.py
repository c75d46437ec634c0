"""run_job: the pipeline end to end in this process, with real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest

from dativo_plugin_sdk import DativoError
from dativo_runtime import JobState, StateStore, parse_job, run_job
from dativo_runtime._storage._state_store import PendingCommit
from dativo_runtime.connectors import ParquetDataset

pytestmark = pytest.mark.usefixtures("forget_secrets")

PLUGINS = Path(__file__).parent / "data" / "plugins.py"
FAST_RETRY = {"max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.02}


def job(tmp_path: Path, **changes: Any) -> Any:
    data: dict[str, Any] = {
        "tenant": "t",
        "name": "j",
        "source": {"plugin": "csv", "config": {"path": "in.csv"}},
        "target": {"plugin": "parquet", "config": {"path": "out"}},
        "retry": FAST_RETRY,
        "sandbox": {"backend": "none"},
    }
    data.update(changes)
    return parse_job(data, base_dir=tmp_path)


def committed(tmp_path: Path, folder: str = "out") -> list[dict[str, Any]]:
    root = tmp_path / folder
    if not root.exists():
        return []
    return ds.dataset(root, format="parquet", partitioning="hive").to_table().to_pylist()


def write_orders(tmp_path: Path, count: int = 50, bad: dict[int, str] | None = None) -> None:
    lines = ["id,amount,at"]
    for i in range(count):
        amount = (bad or {}).get(i, f"{i}.25")
        lines.append(f"{i},{amount},2024-01-{1 + i % 28:02d}T00:00:00Z")
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")


SCHEMA = [
    {"name": "id", "type": "integer", "required": True},
    {"name": "amount", "type": "float"},
    {"name": "at", "type": "timestamp"},
]


def test_csv_to_parquet_values_survive(tmp_path: Path) -> None:
    write_orders(tmp_path)
    result = run_job(job(tmp_path, schema=SCHEMA))
    assert result.succeeded, result.error
    assert (result.records_read, result.records_written, result.exit_code) == (50, 50, 0)
    rows = sorted(committed(tmp_path), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(50))
    assert rows[3]["amount"] == 3.25
    assert rows[3]["at"].isoformat() == "2024-01-04T00:00:00+00:00"
    assert result.manifest
    assert Path(result.manifest).exists()
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/out/**/*.parquet')").fetchall()[0]
    assert count == (50,)


def test_incremental_runs_read_only_new_data_and_state_follows_the_commit(tmp_path: Path) -> None:
    write_orders(tmp_path, 10)
    spec = job(
        tmp_path,
        source={"plugin": "csv", "config": {"path": "in*.csv"}, "incremental": {"strategy": "mtime"}},
    )
    first = run_job(spec)
    assert first.records_written == 10
    assert first.state is not None
    # A glob reads each file as a partition of its own, with its own state.
    assert "mtime_ns" in first.state["partitions"]["in.csv"]
    second = run_job(spec)
    assert second.succeeded
    assert second.records_read == 0
    (tmp_path / "in2.csv").write_text("id,amount,at\n100,1.0,2024-02-01T00:00:00Z\n")
    third = run_job(spec)
    assert third.records_written == 1
    assert sorted(r["id"] for r in committed(tmp_path)) == [*range(10), 100]
    saved = StateStore(spec.state_location()).load("t", "j")
    assert saved.run_id == third.run_id


def test_plugin_state_resumes_and_no_schema_means_discovered_types(tmp_path: Path) -> None:
    spec = job(
        tmp_path,
        source={
            "plugin": f"{PLUGINS}:NumbersReader",
            "config": {"count": 30, "batch_size": 7},
            "incremental": {},
        },
    )
    assert run_job(spec).records_written == 30
    assert run_job(spec).records_read == 0
    assert sorted(r["id"] for r in committed(tmp_path)) == list(range(30))


def test_retryable_failure_restarts_from_committed_state_without_duplicates(tmp_path: Path) -> None:
    waits: list[float] = []
    spec = job(
        tmp_path,
        source={
            "plugin": f"{PLUGINS}:FlakyReader",
            "config": {"counter_file": str(tmp_path / "n"), "retry_after": 0.05},
        },
    )
    result = run_job(spec, sleep=waits.append)
    assert result.succeeded, result.error
    assert result.attempts == 2
    assert waits == [0.02]  # the source's retry_after of 0.05 s, capped at max_delay
    assert sorted(r["id"] for r in committed(tmp_path)) == [1, 2, 3]
    assert not list((tmp_path / "out/_dativo/staging").glob("**/*.staged"))


def test_retry_budget_exhausted_is_exit_75_and_nothing_is_committed(tmp_path: Path) -> None:
    spec = job(
        tmp_path,
        source={
            "plugin": f"{PLUGINS}:FlakyReader",
            "config": {"counter_file": str(tmp_path / "n"), "failures": 9},
        },
    )
    result = run_job(spec, sleep=lambda _: None)
    assert (result.status, result.exit_code, result.attempts) == ("failed", 75, 3)
    assert committed(tmp_path) == []
    assert ParquetDataset_files(tmp_path) == []


def ParquetDataset_files(tmp_path: Path) -> list[str]:
    from dativo_runtime._storage._backends import LocalStorage

    return ParquetDataset(LocalStorage(tmp_path / "out")).committed_files()


def test_plugin_crash_fails_fast_with_exit_1(tmp_path: Path) -> None:
    waits: list[float] = []
    result = run_job(job(tmp_path, source={"plugin": f"{PLUGINS}:CrashingReader"}), sleep=waits.append)
    assert (result.exit_code, result.attempts, waits) == (1, 1, [])
    assert result.error is not None
    assert "boom in the plugin" in result.error.message
    assert committed(tmp_path) == []


def test_strict_mode_commits_nothing(tmp_path: Path) -> None:
    write_orders(tmp_path, 20, bad={3: "three", 7: "seven"})
    result = run_job(job(tmp_path, schema=SCHEMA))
    assert (result.status, result.exit_code) == ("failed", 65)
    assert result.records_invalid == 2
    assert result.validation["by_field"] == [{"field": "amount", "reason": "invalid_type", "count": 2}]
    assert committed(tmp_path) == []


def test_warn_mode_keeps_records_and_reports(tmp_path: Path) -> None:
    write_orders(tmp_path, 20, bad={3: "three"})
    result = run_job(job(tmp_path, schema=SCHEMA, validation="warn"))
    assert result.succeeded
    assert result.records_written == 20
    assert result.records_invalid == 1
    rows = {r["id"]: r for r in committed(tmp_path)}
    assert rows[3]["amount"] is None
    assert rows[4]["amount"] == 4.25


def test_quarantine_mode_splits_valid_and_invalid(tmp_path: Path) -> None:
    write_orders(tmp_path, 20, bad={3: "three", 9: "nine"})
    result = run_job(job(tmp_path, schema=SCHEMA, validation="quarantine"))
    assert result.succeeded
    assert (result.records_written, result.records_quarantined) == (18, 2)
    assert sorted(r["id"] for r in committed(tmp_path)) == [i for i in range(20) if i not in (3, 9)]
    quarantined = sorted(committed(tmp_path, "out_quarantine"), key=lambda r: r["_dativo_record"])
    assert [(q["id"], q["amount"], q["_dativo_field"]) for q in quarantined] == [
        ("3", "three", "amount"),
        ("9", "nine", "amount"),
    ]
    assert all("not a valid float" in q["_dativo_reason"] for q in quarantined)


def test_a_run_holding_the_lock_blocks_a_second_run(tmp_path: Path) -> None:
    write_orders(tmp_path, 5)
    spec = job(tmp_path)
    store = StateStore(spec.state_location())
    lease = store.lock("t", "j", owner="other-run")
    try:
        result = run_job(spec)
    finally:
        lease.release()
    assert result.exit_code == 75
    assert result.error is not None
    assert "already running as run other-run" in result.error.message


def test_pending_state_of_a_committed_run_is_saved_by_the_next_run(tmp_path: Path) -> None:
    spec = job(
        tmp_path, source={"plugin": f"{PLUGINS}:NumbersReader", "config": {"count": 20}, "incremental": {}}
    )
    first = run_job(spec)
    store = StateStore(spec.state_location())
    # Pretend the first run died between its commit and saving its state.
    store.save("t", "j", JobState())
    pending = PendingCommit(
        first.run_id, first.run_id, spec.target_location(), JobState({"default": {"next": 20}})
    )
    store.save_pending("t", "j", pending)
    second = run_job(spec)
    assert second.records_read == 0
    assert sorted(r["id"] for r in committed(tmp_path)) == list(range(20))
    assert store.load_pending("t", "j") is None


def test_pending_state_of_an_uncommitted_run_is_dropped(tmp_path: Path) -> None:
    spec = job(
        tmp_path, source={"plugin": f"{PLUGINS}:NumbersReader", "config": {"count": 20}, "incremental": {}}
    )
    store = StateStore(spec.state_location())
    store.save_pending(
        "t",
        "j",
        PendingCommit("r", "never-committed", spec.target_location(), JobState({"default": {"next": 20}})),
    )
    result = run_job(spec)
    assert result.records_written == 20


def test_commit_interrupted_after_the_manifest_counts_as_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = job(
        tmp_path, source={"plugin": f"{PLUGINS}:NumbersReader", "config": {"count": 20}, "incremental": {}}
    )
    original = ParquetDataset.publish

    def publish_then_fail(self: ParquetDataset, manifest: Any) -> int:
        raise DativoError("disk went away while publishing", error_code="STORAGE_ERROR", retryable=True)

    monkeypatch.setattr(ParquetDataset, "publish", publish_then_fail)
    result = run_job(spec, sleep=lambda _: None)
    assert result.succeeded, result.error
    assert committed(tmp_path) == []  # Published by the next run, not before.
    monkeypatch.setattr(ParquetDataset, "publish", original)
    again = run_job(spec)
    assert again.records_read == 0
    assert sorted(r["id"] for r in committed(tmp_path)) == list(range(20))


def test_cloud_mode_refuses_to_run_a_plugin_in_process(tmp_path: Path) -> None:
    spec = job(tmp_path, mode="cloud", source={"plugin": f"{PLUGINS}:NumbersReader", "config": {"count": 3}})
    result = run_job(spec)
    assert (result.status, result.exit_code) == ("failed", 2)
    assert result.error is not None
    assert "cloud" in result.error.message
    assert committed(tmp_path) == []


def test_result_is_json_serialisable(tmp_path: Path) -> None:
    write_orders(tmp_path, 3)
    data = run_job(job(tmp_path)).to_dict()
    assert json.loads(json.dumps(data))["status"] == "succeeded"


def test_commit_interrupted_after_the_manifest_is_never_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = job(tmp_path, source={"plugin": f"{PLUGINS}:NumbersReader", "config": {"count": 20}})

    def publish_then_fail(self: ParquetDataset, manifest: Any) -> int:
        raise DativoError("network blip while publishing", error_code="STORAGE_ERROR", retryable=True)

    monkeypatch.setattr(ParquetDataset, "publish", publish_then_fail)
    result = run_job(spec, sleep=lambda _: None)
    assert result.succeeded, result.error
    assert result.attempts == 1
    from dativo_runtime._storage._backends import LocalStorage

    assert len(ParquetDataset(LocalStorage(tmp_path / "out")).manifests()) == 1


def test_a_quarantine_configuration_error_names_its_role(tmp_path: Path) -> None:
    from dativo_plugin_sdk import ConfigurationError
    from dativo_runtime._engine._sessions import in_role as _in_role

    quarantined = job(tmp_path, schema=SCHEMA, validation="quarantine")
    error = _in_role(ConfigurationError("bad path", details={"field": "path"}), "quarantine", quarantined)
    assert "quarantine.config.path (parquet): bad path" in error.message
    assert error.details["role"] == "quarantine"
