"""RunMetrics: every metric of issue 7, bounded labels, absorbing a child's metrics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest

from dativo_plugin_sdk import RateLimitError, SandboxError
from dativo_runtime._observability import (
    METRIC_LABEL_BY_REASON,
    OTHER,
    RUN_STATUSES,
    SANDBOX_FAILURE_LABELS,
    SANDBOX_FAILURE_REASONS,
    STAGES,
    RunMetrics,
    sandbox_failure_reason,
)

EXPECTED_FAMILIES = {
    "dativo_records_read": ("counter", {"tenant", "dativo_job", "stream"}),
    "dativo_records_written": ("counter", {"tenant", "dativo_job", "stream"}),
    "dativo_records_quarantined": ("counter", {"tenant", "dativo_job", "stream"}),
    "dativo_bytes_written": ("counter", {"tenant", "dativo_job", "stream"}),
    "dativo_batches": ("counter", {"tenant", "dativo_job", "stream"}),
    "dativo_stage_duration_seconds": ("histogram", {"tenant", "dativo_job", "stream", "stage", "le"}),
    "dativo_errors": ("counter", {"tenant", "dativo_job", "error_code", "retryable"}),
    "dativo_retries": ("counter", {"tenant", "dativo_job", "error_code"}),
    "dativo_sandbox_starts": ("counter", {"tenant", "dativo_job", "backend"}),
    "dativo_sandbox_failures": ("counter", {"tenant", "dativo_job", "backend", "reason"}),
    "dativo_sandbox_cold_start_seconds": ("histogram", {"backend", "le"}),
    "dativo_run_duration_seconds": ("histogram", {"tenant", "dativo_job", "le"}),
    "dativo_job_runs": ("counter", {"tenant", "dativo_job", "status"}),
    "dativo_last_success_timestamp_seconds": ("gauge", {"tenant", "dativo_job"}),
    "dativo_last_run_timestamp_seconds": ("gauge", {"tenant", "dativo_job"}),
    "dativo_runs_in_progress": ("gauge", {"tenant", "dativo_job"}),
    "dativo_runtime_info": ("gauge", {"version"}),
}


def _full_run(metrics: RunMetrics) -> None:
    job = metrics.for_job("acme", "orders")
    job.run_started()
    job.sandbox_started("process", cold_start_s=0.12)
    with job.time_stage("extract", stream="orders"):
        pass
    job.observe_stage("validate", 0.2, stream="orders")
    job.observe_stage("write", 0.3, stream="orders")
    job.observe_stage("commit", 0.05, stream="orders")
    job.batch("orders", records_read=100, records_written=98, records_quarantined=2, bytes_written=4096)
    job.batch("orders", records_read=50, records_written=50, bytes_written=2048)
    job.error(RateLimitError("slow down"))
    job.retry(RateLimitError("slow down"))
    job.sandbox_failed("process", SandboxError("worker ran out of memory", details={"reason": "oom"}))
    job.run_finished("success", 12.5, finished_at=1_700_000_000.0)


def test_every_metric_of_the_issue_is_exposed_with_its_labels(parse_samples):
    metrics = RunMetrics()
    _full_run(metrics)
    text = generate_latest(metrics.registry).decode()
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in EXPECTED_FAMILIES.items():
        assert name in families, name
        assert families[name].type == kind, name
        assert families[name].samples, name
        for sample in families[name].samples:
            if not sample.name.endswith(("_count", "_sum")):
                assert set(sample.labels) == labels, (name, sample)
    assert not any(name.endswith("_created") for name in families), "no _created series in the exposition"
    samples = parse_samples(text)
    stream = frozenset({"tenant": "acme", "dativo_job": "orders", "stream": "orders"}.items())
    job = frozenset({"tenant": "acme", "dativo_job": "orders"}.items())
    assert samples[("dativo_records_read_total", stream)] == 150
    assert samples[("dativo_records_written_total", stream)] == 148
    assert samples[("dativo_records_quarantined_total", stream)] == 2
    assert samples[("dativo_bytes_written_total", stream)] == 6144
    assert samples[("dativo_batches_total", stream)] == 2
    assert samples[("dativo_job_runs_total", job | {("status", "success")})] == 1
    assert samples[("dativo_last_success_timestamp_seconds", job)] == 1_700_000_000.0
    assert samples[("dativo_runs_in_progress", job)] == 0
    assert (
        samples[("dativo_errors_total", job | {("error_code", "RATE_LIMIT_EXCEEDED"), ("retryable", "true")})]
        == 1
    )
    assert samples[("dativo_retries_total", job | {("error_code", "RATE_LIMIT_EXCEEDED")})] == 1
    failure = job | {("backend", "process"), ("reason", "oom")}
    assert samples[("dativo_sandbox_failures_total", failure)] == 1
    for stage in STAGES:
        key = ("dativo_stage_duration_seconds_count", stream | {("stage", stage)})
        assert samples[key] == 1, stage


def test_a_failed_run_does_not_move_last_success(parse_samples):
    metrics = RunMetrics()
    job = metrics.for_job("acme", "orders")
    job.run_started()
    job.run_finished("failed", 1.0)
    samples = parse_samples(generate_latest(metrics.registry).decode())
    labels = frozenset({"tenant": "acme", "dativo_job": "orders"}.items())
    assert ("dativo_last_success_timestamp_seconds", labels) not in samples
    assert samples[("dativo_job_runs_total", labels | {("status", "failed")})] == 1
    assert samples[("dativo_last_run_timestamp_seconds", labels)] > 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda j: j.observe_stage("transform", 1.0), "stage"),
        (lambda j: j.run_finished("partial", 1.0), "run status"),
        (lambda j: j.sandbox_failed("process", "exploded"), "sandbox failure reason"),
    ],
)
def test_fixed_label_sets_refuse_other_values(call, message):
    job = RunMetrics().for_job("acme", "orders")
    with pytest.raises(ValueError, match=message):
        call(job)


def test_open_label_sets_are_capped():
    metrics = RunMetrics(max_label_values={"stream": 3, "error_code": 2})
    job = metrics.for_job("acme", "orders")
    for i in range(10):
        job.batch(f"stream-{i}", records_read=1)
        job.error(error_code=f"CODE_{i}")
    job.error(error_code="not a code!")
    streams = {
        s.labels["stream"]
        for f in metrics.registry.collect()
        if f.name == "dativo_records_read"
        for s in f.samples
    }
    assert streams == {"stream-0", "stream-1", "stream-2", OTHER}
    codes = {
        s.labels["error_code"]
        for f in metrics.registry.collect()
        if f.name == "dativo_errors"
        for s in f.samples
    }
    assert codes == {"CODE_0", "CODE_1", OTHER}
    assert (
        metrics.registry.get_sample_value(
            "dativo_records_read_total", {"tenant": "acme", "dativo_job": "orders", "stream": OTHER}
        )
        == 7
    )


@given(st.text(max_size=300))
def test_any_label_value_is_admitted_as_a_bounded_printable_string(value):
    metrics = RunMetrics()
    admitted = metrics.label("stream", value)
    assert 0 < len(admitted) <= 100
    assert not any(ord(c) < 32 or ord(c) == 127 for c in admitted)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (SandboxError("stopped", details={"reason": "timeout"}), "timeout"),
        (SandboxError("worker MemoryError: the plugin ran out of memory"), "oom"),
        (SandboxError("worker killed by seccomp (SIGSYS): blocked syscall ptrace"), "syscall_blocked"),
        (SandboxError("plugin exceeded the time limit of 30 s"), "timeout"),
        (SandboxError("worker was killed by signal 9"), "signal"),
        (SandboxError("docker daemon unreachable"), "other"),
        ({"message": "OOMKilled", "details": {}}, "oom"),
    ],
)
def test_sandbox_failures_are_classified(error, reason):
    assert sandbox_failure_reason(error) == reason
    assert reason in SANDBOX_FAILURE_LABELS


@pytest.mark.parametrize("reason", SANDBOX_FAILURE_REASONS)
def test_every_backend_reason_has_its_label_whatever_the_stderr_says(reason):
    # A disk failure whose stderr tail said "killed" was counted as reason="signal".
    error = SandboxError(
        f"plugin stopped ({reason}). Last stderr lines:\n  killed", details={"reason": reason}
    )
    assert sandbox_failure_reason(error) == METRIC_LABEL_BY_REASON[reason]


def test_a_backend_reason_string_is_counted_under_its_label():
    metrics = RunMetrics()
    job = metrics.for_job("acme", "orders")
    job.sandbox_failed("process", "disk")
    job.sandbox_failed("process", "crash")
    job.sandbox_failed("process", "oom")
    value = metrics.registry.get_sample_value
    labels = {"tenant": "acme", "dativo_job": "orders", "backend": "process"}
    assert value("dativo_sandbox_failures_total", {**labels, "reason": "other"}) == 2
    assert value("dativo_sandbox_failures_total", {**labels, "reason": "oom"}) == 1


def test_absorb_adds_a_childs_counters_and_keeps_the_parents_outcomes(parse_samples):
    child = RunMetrics()
    _full_run(child)
    parent = RunMetrics()
    own = parent.for_job("acme", "orders")
    own.batch("orders", records_read=7)
    own.run_started()
    own.run_finished("failed", 3.0)
    parent.absorb(generate_latest(child.registry).decode())
    parent.absorb(generate_latest(child.registry).decode())
    samples = parse_samples(generate_latest(parent.registry).decode())
    stream = frozenset({"tenant": "acme", "dativo_job": "orders", "stream": "orders"}.items())
    job = frozenset({"tenant": "acme", "dativo_job": "orders"}.items())
    assert samples[("dativo_records_read_total", stream)] == 7 + 150 * 2
    assert samples[("dativo_stage_duration_seconds_count", stream | {("stage", "extract")})] == 2
    assert samples[("dativo_sandbox_cold_start_seconds_count", frozenset({("backend", "process")}))] == 2
    # Outcome families come from the parent only: one failed run, never the child's success.
    assert samples[("dativo_job_runs_total", job | {("status", "failed")})] == 1
    assert ("dativo_job_runs_total", job | {("status", "success")}) not in samples
    assert ("dativo_last_success_timestamp_seconds", job) not in samples


def test_absorb_refuses_text_that_is_not_an_exposition():
    with pytest.raises(ValueError):
        RunMetrics().absorb("this is {not metrics")


def test_run_statuses_are_the_documented_ones():
    assert RUN_STATUSES == ("success", "failed", "aborted")
