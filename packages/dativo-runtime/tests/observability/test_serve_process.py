"""`serve` as a real process: two scheduled jobs run as child processes, then SIGTERM mid-run."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

QUICK = """\
name: quick
tenant: alpha
schedule: '* * * * * *'
fake: {sleep: 0.1, records: 5}
"""
SLOW = """\
name: slow
tenant: beta
schedule: '* * * * * *'
fake: {sleep: 120, records: 1}
"""


def _log_events(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        kind, job_id, pid, _ = line.split()
        events.append((kind, job_id, int(pid)))
    return events


@pytest.fixture
def serve_process(tmp_path, data_dir):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "quick.yaml").write_text(QUICK)
    (jobs / "slow.yaml").write_text(SLOW)
    (jobs / "unscheduled.yaml").write_text("name: manual\n")
    port_file = tmp_path / "port"
    run_log = tmp_path / "runs.log"
    stderr = (tmp_path / "serve.stderr").open("w+")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}, "FAKE_RUN_LOG": str(run_log)}
    process = subprocess.Popen(
        [
            sys.executable,
            str(data_dir / "serve_main.py"),
            str(jobs),
            str(port_file),
            str(data_dir / "fake_run_with_result.py"),
            "1.0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    try:
        yield process, port_file, run_log, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        stderr.close()


def test_serve_runs_two_jobs_and_shuts_down_cleanly_on_sigterm(serve_process, http, parse_samples, wait_for):
    process, port_file, run_log, stderr = serve_process
    wait_for(lambda: port_file.exists() or process.poll() is not None, timeout=30)
    assert process.poll() is None, "serve exited early"
    base = f"http://127.0.0.1:{int(port_file.read_text())}"

    def quick_ran_twice_and_slow_is_running() -> bool:
        jobs = {j["id"]: j for j in http(f"{base}/api/jobs").json()["jobs"]}
        return len(jobs["alpha/quick"]["last_runs"]) >= 2 and jobs["beta/slow"]["running"]

    wait_for(quick_ran_twice_and_slow_is_running, timeout=30)
    jobs = {j["id"]: j for j in http(f"{base}/api/jobs").json()["jobs"]}
    assert set(jobs) == {"alpha/quick", "beta/slow"}, "the unscheduled job is not served"
    last = jobs["alpha/quick"]["last_runs"][0]
    assert last["status"] == "success"
    assert last["counts"]["records_read"] == 5
    assert jobs["beta/slow"]["current_run"]["status"] == "running"

    assert http(f"{base}/healthz").status == 200
    assert http(f"{base}/readyz").status == 200
    samples = parse_samples(http(f"{base}/metrics").text)
    quick = frozenset({"tenant": "alpha", "dativo_job": "quick"}.items())
    runs = samples[("dativo_job_runs_total", quick | {("status", "success")})]
    assert runs >= 2
    # The child processes' own metrics were added to the server's.
    assert samples[("dativo_records_read_total", quick | {("stream", "main")})] == 5 * runs
    slow = frozenset({"tenant": "beta", "dativo_job": "slow"}.items())
    assert samples[("dativo_runs_in_progress", slow)] == 1

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0

    events = _log_events(run_log)
    by_job: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for kind, job_id, pid in events:
        by_job[job_id].append((kind, pid))
    # Every run of a job ended before the next began: never two at once.
    for job_id, sequence in by_job.items():
        for i, (kind, pid) in enumerate(sequence):
            expected = "start" if i % 2 == 0 else {"end", "aborted"}
            assert kind == expected or kind in expected, (job_id, sequence)
            if i % 2:
                assert pid == sequence[i - 1][1]
        assert len(sequence) % 2 == 0, f"{job_id} has a run that neither finished nor aborted: {sequence}"
    # The slow job was aborted cleanly by the shutdown; quick runs all finished.
    assert by_job["beta/slow"] == [
        ("start", by_job["beta/slow"][0][1]),
        ("aborted", by_job["beta/slow"][0][1]),
    ]
    assert all(kind in ("start", "end") for kind, _ in by_job["alpha/quick"])

    stderr.seek(0)
    logs = [json.loads(line) for line in stderr.read().splitlines() if line.startswith("{")]
    messages = [event["message"] for event in logs]
    assert any(m.startswith("serving 2 scheduled job(s)") for m in messages)
    assert any("aborting 1 job(s) still running: beta/slow" in m for m in messages)
    stopped = next(event for event in logs if event["message"].startswith("stopped:"))
    assert stopped["aborted"] == ["beta/slow"]
    assert stopped["abandoned"] == []
