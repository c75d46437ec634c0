"""One run outcome type: the fields every JSON output shows, its status words, and how it crosses a process."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime import RunResult, RunStatus
from dativo_runtime._observability import RUN_STATUSES
from dativo_runtime._serve import RunRecord, ScheduledJob, SubprocessJobRunner

RUN_JSON_FIELDS = [
    "run_id",
    "tenant",
    "job",
    "job_file",
    "status",
    "exit_code",
    "started_at",
    "finished_at",
    "duration_s",
    "attempts",
    "stream",
    "source",
    "target",
    "records_read",
    "records_written",
    "records_invalid",
    "records_quarantined",
    "files",
    "bytes_written",
    "output",
    "manifest",
    "quarantine_output",
    "state_uri",
    "state",
    "validation",
    "sandbox",
    "partitions",
    "error",
]
"""What ``run --json`` prints (and each entry of ``run --job-dir --json``), in this order."""

SERVE_RUN_FIELDS = [
    "run",
    "status",
    "scheduled_for",
    "started_at",
    "finished_at",
    "duration_s",
    "exit_code",
    "counts",
    "error",
]
"""One run in ``serve``'s ``/api/jobs`` (docs/observability.md)."""

SERVE_COUNTS = ["records_read", "records_written", "records_quarantined", "bytes_written", "batches"]


def _result() -> RunResult:
    return RunResult(
        run_id="r1",
        tenant="acme",
        job="orders",
        job_file="/jobs/orders.yaml",
        status=RunStatus.FAILED,
        exit_code=2,
        started_at="2030-01-01T00:00:00Z",
        finished_at="2030-01-01T00:00:01Z",
        duration_s=1.23456,
        attempts=1,
        stream="orders",
        source="csv",
        target="parquet",
        records_read=5,
        records_written=4,
        records_invalid=1,
        records_quarantined=1,
        files=["a.parquet"],
        bytes_written=100,
        output="/out",
        validation={"records_invalid": 1},
        sandbox={"source": "none"},
        error=ConfigurationError("bad", details={"field": "path"}),
        batches=3,
    )


def test_run_json_fields_are_pinned() -> None:
    data = _result().to_dict()
    assert list(data) == RUN_JSON_FIELDS
    assert data["status"] == "failed"
    assert data["duration_s"] == 1.235
    assert data["error"]["error_type"] == "ConfigurationError"


def test_a_result_survives_the_trip_to_a_parent_process() -> None:
    result = _result()
    again = RunResult.from_dict(result.to_record())
    assert again.to_record() == result.to_record()
    assert again.status is RunStatus.FAILED
    assert isinstance(again.error, ConfigurationError)
    assert again.counts == {
        "records_read": 5,
        "records_written": 4,
        "records_quarantined": 1,
        "bytes_written": 100,
        "batches": 3,
    }


@pytest.mark.parametrize(
    ("status", "word", "label"),
    [
        (RunStatus.SUCCEEDED, "succeeded", "success"),
        (RunStatus.FAILED, "failed", "failed"),
        (RunStatus.ABORTED, "aborted", "aborted"),
    ],
)
def test_one_status_enum_speaks_both_vocabularies(status: RunStatus, word: str, label: str) -> None:
    assert (status.value, status.label) == (word, label)
    assert status.label in RUN_STATUSES
    assert RunStatus.parse(word) is status
    assert RunStatus.parse(label) is status


def test_the_serve_api_fields_are_pinned() -> None:
    moment = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    record = RunRecord(run=1, scheduled_for=moment, started_at=moment)
    record.counts = _result().counts
    data = record.to_dict()
    assert list(data) == SERVE_RUN_FIELDS
    assert list(data["counts"]) == SERVE_COUNTS
    assert data["status"] == "running"


def test_a_child_run_hands_back_its_result_not_metrics_text(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id\n1\n2\n3\n")
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        "tenant: acme\nname: j\nsource: {plugin: csv, config: {path: in.csv}}\n"
        "target: {plugin: parquet, config: {path: out}}\nsandbox: {backend: none}\n"
    )
    runner = SubprocessJobRunner(json_summary=True, poll_interval=0.05)
    result = runner.run(ScheduledJob(job_file, "acme", "j", "@daily"), threading.Event())
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.run_id
    assert result.counts == {
        "records_read": 3,
        "records_written": 3,
        "records_quarantined": 0,
        "bytes_written": result.bytes_written,
        "batches": 1,
    }
    assert result.bytes_written > 0
    assert result.metrics_text
    assert "dativo_records_read_total" in result.metrics_text
    assert list(result.to_dict()) == RUN_JSON_FIELDS
