"""The serve HTTP port: /metrics, /healthz, /readyz and the read-only /api/jobs."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dativo_runtime import RunStatus
from dativo_runtime._serve import CallableJobRunner, ReadinessCheck, RunResult, ScheduledJob, ServeApp


def _jobs() -> list[ScheduledJob]:
    return [
        ScheduledJob(Path("/jobs/a.yaml"), "acme", "orders", "* * * * * *"),
        ScheduledJob(Path("/jobs/b.yaml"), "beta", "orders", "* * * * * *"),
        ScheduledJob(Path("/jobs/c.yaml"), "beta", "users", "0 3 * * *"),
    ]


@pytest.fixture
def app(secrets):
    ran = threading.Event()

    def run_one(path: Path) -> RunResult:
        ran.set()
        return RunResult(status=RunStatus.SUCCEEDED, records_read=4, records_written=4, batches=1)

    def state_store() -> None:
        raise ConnectionError(f"state store refused credentials {secrets[0]}")

    def sandbox() -> bool:
        return True

    def slow_target() -> None:
        time.sleep(2)

    checks = [
        sandbox,
        ReadinessCheck("state-store", state_store),
        ReadinessCheck("target", slow_target, timeout=0.2),
    ]
    server = ServeApp(
        _jobs(),
        CallableJobRunner(run_one),
        host="127.0.0.1",
        port=0,
        readiness_checks=checks,
        tick_interval=0.1,
    )
    server.start()
    server.ran = ran  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop(grace_period=5)


def test_healthz_reports_the_ticking_loop(app, http, wait_for):
    response = wait_for(lambda: (r := http(f"{app.url}/healthz")).status == 200 and r)
    body = response.json()
    assert body["status"] == "ok"
    assert body["scheduler_loop_alive"] is True
    assert body["seconds_since_tick"] < 30


def test_readyz_lists_failing_checks_without_secrets(app, http, secrets):
    response = http(f"{app.url}/readyz")
    assert response.status == 503
    body = response.json()
    assert body["ready"] is False
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["sandbox"] == {"name": "sandbox", "ok": True, "error": None}
    assert checks["state-store"]["ok"] is False
    assert checks["state-store"]["error"] == "ConnectionError: state store refused credentials ***"
    assert checks["target"] == {"name": "target", "ok": False, "error": "no answer within 0.2 s"}
    assert secrets[0] not in response.text


def test_readyz_is_ok_when_every_check_passes(http):
    server = ServeApp(
        _jobs(), CallableJobRunner(lambda p: None), host="127.0.0.1", readiness_checks=[lambda: None]
    )
    server.start()
    try:
        assert http(f"{server.url}/readyz").status == 200
    finally:
        server.stop(grace_period=5)
    assert server.scheduler.stopping


def test_api_jobs_shows_schedule_next_run_and_last_runs(app, http, wait_for):
    wait_for(lambda: http(f"{app.url}/api/jobs/acme/orders").json()["last_runs"])
    body = http(f"{app.url}/api/jobs").json()
    assert [j["id"] for j in body["jobs"]] == ["acme/orders", "beta/orders", "beta/users"]
    assert body["scheduler"]["max_parallel"] == 4
    users = next(j for j in body["jobs"] if j["id"] == "beta/users")
    assert users["schedule"] == "0 3 * * *"
    assert "T03:00:00" in users["next_run"]
    orders = http(f"{app.url}/api/jobs/acme/orders").json()
    last = orders["last_runs"][0]
    assert last["status"] == "success"
    assert last["counts"] == {
        "records_read": 4,
        "records_written": 4,
        "records_quarantined": 0,
        "bytes_written": 0,
        "batches": 1,
    }
    assert last["exit_code"] == 0
    assert http(f"{app.url}/api/jobs/users").json()["id"] == "beta/users"


def test_api_errors(app, http):
    ambiguous = http(f"{app.url}/api/jobs/orders")
    assert ambiguous.status == 409
    assert "several jobs" in ambiguous.json()["error"]
    assert http(f"{app.url}/api/jobs/nope").status == 404
    assert http(f"{app.url}/nowhere").status == 404
    assert http(f"{app.url}/api/jobs", method="POST").status == 405


def test_metrics_endpoint_parses(app, http, parse_samples, wait_for):
    app.ran.wait(10)
    wait_for(lambda: http(f"{app.url}/api/jobs/acme/orders").json()["last_runs"])
    response = http(f"{app.url}/metrics")
    assert response.status == 200
    samples = parse_samples(response.text)
    assert samples[("dativo_serve_scheduled_jobs", frozenset())] == 3
    job = frozenset({"tenant": "acme", "dativo_job": "orders"}.items())
    assert samples[("dativo_job_runs_total", job | {("status", "success")})] >= 1
    assert ("dativo_serve_next_run_timestamp_seconds", job) in samples
    assert samples[("dativo_serve_last_tick_timestamp_seconds", frozenset())] > 0
