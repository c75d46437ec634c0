"""The serve scheduler, driven by a fake clock: limits, no overlap, results, shutdown."""

from __future__ import annotations

import collections
import datetime
import threading
from pathlib import Path

import pytest

from dativo_plugin_sdk import ConfigurationError, DativoError
from dativo_runtime import RunStatus
from dativo_runtime._observability import RunMetrics
from dativo_runtime._serve import (
    CallableJobRunner,
    RunResult,
    ScheduledJob,
    Scheduler,
    load_scheduled_jobs,
    normalise_result,
)

T0 = datetime.datetime(2030, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> datetime.datetime:
        self.now += datetime.timedelta(seconds=seconds)
        return self.now


class GatedRunner:
    """Each run waits until its job's gate opens (or it is cancelled); records concurrency."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gates: dict[str, threading.Event] = collections.defaultdict(threading.Event)
        self.running: set[str] = set()
        self.started: list[str] = []
        self.max_total = 0
        self.max_per_tenant: collections.Counter[str] = collections.Counter()
        self.overlaps: list[str] = []
        self.finished = threading.Semaphore(0)
        self.results: dict[str, RunResult] = {}

    def run(self, job: ScheduledJob, cancel: threading.Event) -> RunResult:
        with self.lock:
            if job.job_id in self.running:
                self.overlaps.append(job.job_id)
            self.running.add(job.job_id)
            self.started.append(job.job_id)
            self.max_total = max(self.max_total, len(self.running))
            tenants = collections.Counter(j.split("/")[0] for j in self.running)
            for tenant, count in tenants.items():
                self.max_per_tenant[tenant] = max(self.max_per_tenant[tenant], count)
        gate = self.gates[job.job_id]
        while not gate.wait(0.01):
            if cancel.is_set():
                break
        with self.lock:
            self.running.discard(job.job_id)
        self.finished.release()
        if cancel.is_set() and not gate.is_set():
            return RunResult(
                status=RunStatus.ABORTED, exit_code=143, error=DativoError("aborted by shutdown")
            )
        return self.results.get(job.job_id, RunResult(status=RunStatus.SUCCEEDED, records_written=7))

    def wait_finished(self, count: int = 1) -> None:
        for _ in range(count):
            assert self.finished.acquire(timeout=10), "a run did not finish"


def _job(tenant: str, name: str, schedule: str = "* * * * * *") -> ScheduledJob:
    return ScheduledJob(Path(f"/jobs/{tenant}-{name}.yaml"), tenant, name, schedule)


def _scheduler(jobs, runner, clock, **options) -> Scheduler:
    return Scheduler(jobs, runner, metrics=RunMetrics(), clock=clock, **options)


def _wait_idle(scheduler: Scheduler, wait_for) -> None:
    wait_for(lambda: not any(scheduler.job_status(j)["running"] for j in scheduler.job_ids()), timeout=10)


def test_per_tenant_limit_holds_runs_back_until_a_slot_frees(wait_for):
    clock, runner = FakeClock(), GatedRunner()
    jobs = [_job("a", "one"), _job("a", "two"), _job("b", "three")]
    scheduler = _scheduler(jobs, runner, clock, max_per_tenant=1, max_parallel=4)
    assert scheduler.tick(clock.advance(1)) == ["a/one", "b/three"]
    assert scheduler.job_status("a/two")["pending"] is True
    runner.gates["a/one"].set()
    runner.wait_finished()
    _ = wait_for(lambda: not scheduler.job_status("a/one")["running"])
    assert scheduler.tick() == ["a/two"]
    for gate in ("a/two", "b/three"):
        runner.gates[gate].set()
    runner.wait_finished(2)
    _wait_idle(scheduler, wait_for)
    assert runner.max_per_tenant["a"] == 1
    assert runner.overlaps == []


def test_tenant_limit_overrides_and_the_global_limit():
    clock, runner = FakeClock(), GatedRunner()
    jobs = [_job("a", f"j{i}") for i in range(4)] + [_job("b", "x")]
    scheduler = _scheduler(jobs, runner, clock, max_per_tenant=1, tenant_limits={"a": 3}, max_parallel=3)
    assert scheduler.tick(clock.advance(1)) == ["a/j0", "a/j1", "a/j2"]
    assert scheduler.status()["scheduler"]["running"] == 3
    runner.gates["a/j0"].set()
    runner.wait_finished()
    for job in jobs:
        runner.gates[job.job_id].set()
    scheduler.shutdown(grace_period=10)
    assert runner.max_total == 3
    assert runner.started == ["a/j0", "a/j1", "a/j2"]


def test_a_job_never_runs_twice_at_once(parse_samples):
    clock, runner = FakeClock(), GatedRunner()
    scheduler = _scheduler([_job("a", "slow")], runner, clock)
    assert scheduler.tick(clock.advance(1)) == ["a/slow"]
    for _ in range(4):
        assert scheduler.tick(clock.advance(1)) == []
    runner.gates["a/slow"].set()
    runner.wait_finished()
    assert runner.started == ["a/slow"]
    assert runner.overlaps == []
    skipped = scheduler.metrics.registry.get_sample_value(
        "dativo_serve_skipped_runs_total", {"tenant": "a", "dativo_job": "slow", "reason": "overlap"}
    )
    assert skipped == 4
    scheduler.shutdown(grace_period=5)


def test_a_late_tick_runs_a_job_once_not_once_per_missed_occurrence():
    clock, runner = FakeClock(), GatedRunner()
    runner.gates["a/j"].set()
    scheduler = _scheduler([_job("a", "j")], runner, clock)
    assert scheduler.tick(clock.advance(3600)) == ["a/j"]
    runner.wait_finished()
    status = scheduler.job_status("a/j")
    assert status["next_run"] == (T0 + datetime.timedelta(seconds=3601)).isoformat()
    scheduler.shutdown(grace_period=5)


def test_results_and_failures_are_recorded_with_redacted_errors(wait_for, secrets, parse_samples):
    clock = FakeClock()

    def run_one(path: Path):
        if "bad" in path.name:
            raise RuntimeError(f"could not log in with {secrets[0]}")
        return {"status": "succeeded", "exit_code": 0, "records_read": 3, "records_written": 3}

    jobs = [_job("a", "good"), _job("b", "bad")]
    scheduler = _scheduler(jobs, CallableJobRunner(run_one), clock)
    scheduler.tick(clock.advance(1))
    _wait_idle(scheduler, wait_for)
    good = scheduler.job_status("a/good")["last_runs"][0]
    bad = scheduler.job_status("b/bad")["last_runs"][0]
    assert (good["status"], good["exit_code"], good["counts"]) == (
        "success",
        0,
        {"records_read": 3, "records_written": 3, "records_quarantined": 0, "bytes_written": 0, "batches": 0},
    )
    assert bad["status"] == "failed"
    assert bad["exit_code"] == 1
    assert secrets[0] not in bad["error"]
    assert bad["error"] == "RuntimeError: could not log in with ***"
    registry = scheduler.metrics.registry
    assert (
        registry.get_sample_value(
            "dativo_job_runs_total", {"tenant": "a", "dativo_job": "good", "status": "success"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "dativo_job_runs_total", {"tenant": "b", "dativo_job": "bad", "status": "failed"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "dativo_last_success_timestamp_seconds", {"tenant": "a", "dativo_job": "good"}
        )
        is not None
    )


def test_the_runners_metrics_text_is_added_to_the_servers():
    clock = FakeClock()
    child = RunMetrics()
    child.for_job("a", "j").batch("s", records_read=11)
    from prometheus_client import generate_latest

    text = generate_latest(child.registry).decode()
    scheduler = _scheduler(
        [_job("a", "j")],
        CallableJobRunner(lambda p: RunResult(status=RunStatus.SUCCEEDED, metrics_text=text)),
        clock,
    )
    scheduler.tick(clock.advance(1))
    scheduler.shutdown(grace_period=10)
    value = scheduler.metrics.registry.get_sample_value(
        "dativo_records_read_total", {"tenant": "a", "dativo_job": "j", "stream": "s"}
    )
    assert value == 11


def test_shutdown_lets_runs_finish_then_aborts_the_rest():
    clock, runner = FakeClock(), GatedRunner()
    scheduler = _scheduler([_job("a", "quick"), _job("b", "stuck")], runner, clock)
    assert scheduler.tick(clock.advance(1)) == ["a/quick", "b/stuck"]
    reports = []
    shutdown = threading.Thread(
        target=lambda: reports.append(scheduler.shutdown(grace_period=1.0, abort_grace=10))
    )
    shutdown.start()
    runner.gates["a/quick"].set()  # Finishes during the grace period; "stuck" never does.
    shutdown.join(timeout=20)
    [report] = reports
    assert report.finished == ["a/quick"]
    assert report.aborted == ["b/stuck"]
    assert report.abandoned == []
    assert scheduler.job_status("b/stuck")["last_runs"][0]["status"] == "aborted"
    assert scheduler.tick(clock.advance(5)) == [], "nothing starts after shutdown"
    assert (
        scheduler.metrics.registry.get_sample_value(
            "dativo_job_runs_total", {"tenant": "b", "dativo_job": "stuck", "status": "aborted"}
        )
        == 1
    )


def test_a_second_signal_ends_the_grace_period_at_once():
    clock, runner = FakeClock(), GatedRunner()
    scheduler = _scheduler([_job("a", "stuck")], runner, clock)
    scheduler.tick(clock.advance(1))
    abort_now = threading.Event()
    abort_now.set()
    report = scheduler.shutdown(grace_period=600, abort_grace=10, abort_now=abort_now)
    assert report.aborted == ["a/stuck"]


def test_shutdown_drops_pending_runs():
    clock, runner = FakeClock(), GatedRunner()
    scheduler = _scheduler([_job("a", "one"), _job("a", "two")], runner, clock, max_per_tenant=1)
    scheduler.tick(clock.advance(1))
    runner.gates["a/one"].set()
    report = scheduler.shutdown(grace_period=10)
    assert report.finished == ["a/one"]
    assert runner.started == ["a/one"]
    assert (
        scheduler.metrics.registry.get_sample_value(
            "dativo_serve_skipped_runs_total", {"tenant": "a", "dativo_job": "two", "reason": "shutdown"}
        )
        == 1
    )


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        _scheduler([_job("a", "j")], GatedRunner(), FakeClock(), max_per_tenant=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ("success", 0)),
        (0, ("success", 0)),
        (75, ("failed", 75)),
        ({"status": "aborted", "exit_code": 143}, ("aborted", 143)),
        ({"status": "weird", "exit_code": 2}, ("failed", 2)),
        ({"status": "success"}, ("success", 0)),
        ({"status": "succeeded"}, ("success", 0)),
        ({"status": "failed"}, ("failed", 1)),
    ],
)
def test_normalise_result(value, expected):
    result = normalise_result(value)
    assert (result.status.label, result.exit_code) == expected


def test_normalise_result_reads_a_run_result_document():
    document = RunResult(
        run_id="r1",
        tenant="a",
        job="j",
        status=RunStatus.SUCCEEDED,
        records_read=10,
        records_written=9,
        records_quarantined=1,
        bytes_written=2048,
        batches=2,
    ).to_record()
    result = normalise_result(document)
    assert result.status is RunStatus.SUCCEEDED
    assert result.counts == {
        "records_read": 10,
        "records_written": 9,
        "records_quarantined": 1,
        "bytes_written": 2048,
        "batches": 2,
    }


def test_a_runner_that_returns_a_running_result_counts_as_failed(wait_for):
    clock = FakeClock()
    scheduler = _scheduler([_job("a", "j")], CallableJobRunner(lambda p: RunResult()), clock)
    scheduler.tick(clock.advance(1))
    _wait_idle(scheduler, wait_for)
    assert scheduler.job_status("a/j")["last_runs"][0]["status"] == "failed"


# Loading job files -------------------------------------------------------------------------


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_scheduled_jobs_reads_only_jobs_with_a_schedule(tmp_path):
    _write(tmp_path, "a.yaml", "name: orders\ntenant: acme\nschedule: '*/5 * * * *'\n")
    _write(tmp_path, "b.yml", "name: users\nschedule: '@hourly'\n")
    _write(tmp_path, "c.yaml", "name: manual\n")
    _write(tmp_path, "notes.txt", "schedule: nonsense")
    jobs = load_scheduled_jobs(tmp_path)
    assert [(j.job_id, j.schedule) for j in jobs] == [
        ("acme/orders", "*/5 * * * *"),
        ("default/users", "@hourly"),
    ]
    after = jobs[0].next_after(T0)
    assert after == T0 + datetime.timedelta(minutes=5)


def test_a_sixth_cron_field_is_seconds(tmp_path):
    _write(tmp_path, "a.yaml", "name: fast\nschedule: '* * * * * */10'\n")
    [job] = load_scheduled_jobs(tmp_path)
    assert job.next_after(T0) == T0 + datetime.timedelta(seconds=10)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"a.yaml": "name: x\nschedule: 'every day'\n"}, "is not a cron expression"),
        ({"a.yaml": "name: 'bad name'\nschedule: '@daily'\n"}, "name 'bad name' is missing or invalid"),
        (
            {"a.yaml": "name: x\nschedule: '@daily'\n", "b.yaml": "name: x\nschedule: '@hourly'\n"},
            "also defined",
        ),
        ({"a.yaml": "name: x\n"}, "no job file in"),
        ({"a.yaml": "name: [x\nschedule: '@daily'\n"}, "is not valid YAML"),
        ({"a.yaml": "- a list\n"}, "must be a mapping"),
    ],
)
def test_invalid_job_folders_are_clear_errors(tmp_path, files, message):
    for name, text in files.items():
        _write(tmp_path, name, text)
    with pytest.raises(ConfigurationError, match=message):
        load_scheduled_jobs(tmp_path)


def test_a_missing_job_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="is not a folder"):
        load_scheduled_jobs(tmp_path / "nope")
