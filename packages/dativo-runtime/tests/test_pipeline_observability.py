"""What run_job reports: metrics of every run (aborted ones too), errors and retries, its spans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dativo_plugin_sdk import ConfigurationError, SandboxError
from dativo_runtime import parse_job, run_job
from dativo_runtime._engine._sessions import open_reader_session
from dativo_runtime._observability import RunMetrics, sandbox_failure_reason
from dativo_runtime._sandbox import OperatorPolicy

pytestmark = pytest.mark.usefixtures("forget_secrets")

PLUGINS = Path(__file__).parent / "data" / "plugins.py"
FAST_RETRY = {"max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.02}


def _job(tmp_path: Path, **changes: Any) -> Any:
    data: dict[str, Any] = {
        "tenant": "t",
        "name": "j",
        "source": {"plugin": f"{PLUGINS}:NumbersReader", "config": {"count": 25, "batch_size": 10}},
        "target": {"plugin": "parquet", "config": {"path": "out"}},
        "retry": FAST_RETRY,
        "sandbox": {"backend": "none"},
    }
    data.update(changes)
    return parse_job(data, base_dir=tmp_path)


def _samples(metrics: RunMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


JOB = frozenset({("tenant", "t"), ("dativo_job", "j")})
STREAM = JOB | {("stream", "numbers")}


def test_a_run_counts_records_batches_stages_and_its_outcome(tmp_path: Path) -> None:
    metrics = RunMetrics()
    result = run_job(_job(tmp_path), metrics=metrics)
    assert result.succeeded, result.error
    samples = _samples(metrics)
    assert samples[("dativo_records_read_total", STREAM)] == 25
    assert samples[("dativo_records_written_total", STREAM)] == 25
    assert samples[("dativo_batches_total", STREAM)] == 3
    assert samples[("dativo_bytes_written_total", STREAM)] == result.bytes_written > 0
    for stage in ("extract", "validate", "write", "commit"):
        assert samples[("dativo_stage_duration_seconds_count", STREAM | {("stage", stage)})] == 1
    assert samples[("dativo_job_runs_total", JOB | {("status", "success")})] == 1
    assert samples[("dativo_runs_in_progress", JOB)] == 0
    assert samples[("dativo_last_success_timestamp_seconds", JOB)] > 0
    assert not any(name == "dativo_sandbox_starts_total" for name, _ in samples), (
        "built-ins are not sandboxes"
    )


def test_retried_errors_are_counted_and_the_final_one_once(tmp_path: Path) -> None:
    metrics = RunMetrics()
    flaky = {
        "plugin": f"{PLUGINS}:FlakyReader",
        "config": {"counter_file": str(tmp_path / "n"), "failures": 5},
    }
    result = run_job(_job(tmp_path, source=flaky), metrics=metrics, sleep=lambda _: None)
    assert result.exit_code == 75
    samples = _samples(metrics)
    transient = JOB | {("error_code", "TRANSIENT_ERROR")}
    assert samples[("dativo_retries_total", transient)] == 2
    assert samples[("dativo_errors_total", transient | {("retryable", "true")})] == 3
    assert samples[("dativo_job_runs_total", JOB | {("status", "failed")})] == 1
    assert ("dativo_last_success_timestamp_seconds", JOB) not in samples


def test_an_interrupted_run_is_counted_aborted_and_commits_nothing(tmp_path: Path) -> None:
    metrics = RunMetrics()

    def interrupt(event: Any) -> None:
        if event.records_read >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_job(_job(tmp_path), metrics=metrics, on_progress=interrupt)
    samples = _samples(metrics)
    assert samples[("dativo_job_runs_total", JOB | {("status", "aborted")})] == 1
    assert samples[("dativo_runs_in_progress", JOB)] == 0
    out = tmp_path / "out"
    assert not list(out.rglob("*.parquet"))
    assert not list((out / "_dativo" / "manifests").glob("*.json"))
    assert not list((out / "_dativo" / "staging").rglob("*.staged"))


def test_limits_above_the_operators_ceiling_fail_before_any_sandbox_starts(tmp_path: Path) -> None:
    job = _job(tmp_path, sandbox={"backend": "process", "memory": "4g"})
    policy = OperatorPolicy(allowed_backends=("process",), max_memory_bytes=1 << 30)
    with pytest.raises(ConfigurationError) as refused:
        open_reader_session(job, policy=policy)
    message = refused.value.message
    assert "sandbox.memory (" in message
    assert "source.config" not in message
    assert "above the ceiling" in message


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        ({"reason": "oom"}, "oom"),
        ({"reason": "syscall_blocked"}, "syscall_blocked"),
        ({"reason": "timeout"}, "timeout"),
        ({"reason": "signal"}, "signal"),
        ({"reason": "crash"}, "other"),
        ({"reason": "startup_failed"}, "other"),
    ],
)
def test_the_backends_reasons_become_metric_reasons(details: dict[str, str], expected: str) -> None:
    # The stderr tail in a message may say anything ("zoom", "killed"): the backend's reason wins.
    error = SandboxError("plugin crashed; last stderr lines: zoom room killed", details=details)
    assert sandbox_failure_reason(error) == expected
