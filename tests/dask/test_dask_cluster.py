"""``--executor dask`` on a real cluster: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1.

Where and when each job ran is read from the TimedReader's start/end lines (its pid is the worker
process's own under the ``none`` sandbox); what was committed is read back with duckdb.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import clean_env, dativo_run_command, require_backend
from tests.dask.cluster import PLUGINS, DaskProcesses, dask_processes, events, free_port, intervals

pytestmark = pytest.mark.timeout(180)


def committed_ids(out: Path) -> list[int]:
    files = [str(p) for p in out.rglob("*.parquet") if "_dativo" not in p.parts]
    if not files:
        return []
    rows = duckdb.sql(f"select id from read_parquet({files!r}) order by id").fetchall()
    return [row[0] for row in rows]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_run(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*dativo_run_command(), "run", *args],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_jobs_run_as_tasks_on_both_workers_and_report_like_job_dir(
    tmp_path: Path, two_workers: DaskProcesses, timed_job: Callable[..., Path], run_cli: Any
) -> None:
    jobs = tmp_path / "jobs"
    for tenant, name in [("a", "one"), ("a", "two"), ("b", "one"), ("b", "two")]:
        timed_job(jobs, tenant, name, count=30, delay=0.2)
    result = run_cli(
        "run", "--job-dir", str(jobs), "--executor", "dask", "--scheduler", two_workers.address, "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["exit_code"] == 0
    assert [(j["tenant"], j["job"], j["status"], j["records_written"]) for j in report["jobs"]] == [
        ("a", "one", "succeeded", 30),
        ("a", "two", "succeeded", 30),
        ("b", "one", "succeeded", 30),
        ("b", "two", "succeeded", 30),
    ]
    for tenant, name in [("a", "one"), ("a", "two"), ("b", "one"), ("b", "two")]:
        assert committed_ids(tmp_path / "out" / f"{tenant}-{name}") == list(range(30))
    # Each job ran in a worker process, not in the client: two workers, two pids, neither the client's.
    pids = {e["pid"] for e in events(tmp_path / "events.log")}
    assert len(pids) == 2, pids

    text = run_cli("run", "--job-dir", str(jobs), "--executor", "dask", "--scheduler", two_workers.address)
    assert text.returncode == 0, text.stderr
    assert "4 job(s); exit code 0" in text.stdout


def _overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return first[0] < second[1] and second[0] < first[1]


def test_per_tenant_limit_holds_across_two_clients_of_one_cluster(
    tmp_path: Path, two_workers: DaskProcesses, timed_job: Callable[..., Path]
) -> None:
    def two_clients(tenant: str, *limit: str) -> dict[str, list[tuple[float, float]]]:
        for n in (1, 2):
            timed_job(tmp_path / f"{tenant}-client{n}", tenant, f"job{n}", count=60, delay=0.5)  # 3 s a run
        clients = [
            start_run("--job-dir", str(tmp_path / f"{tenant}-client{n}"), "--executor", "dask",
                      "--scheduler", two_workers.address, *limit, "--json", cwd=tmp_path)
            for n in (1, 2)
        ]  # fmt: skip
        for client in clients:
            out, err = client.communicate(timeout=120)
            assert client.returncode == 0, err
            assert json.loads(out)["ok"] is True
        runs = intervals(tmp_path / "events.log")
        return {job: spans for job, spans in runs.items() if job.startswith(f"{tenant}/")}

    # The control: without a limit the two clients' jobs run side by side on the two workers.
    free = two_clients("unlimited")
    assert _overlap(free["unlimited/job1"][0], free["unlimited/job2"][0]), free
    # With --per-tenant-limit 1 the tenant's semaphore on the scheduler lets one run at a time.
    limited = two_clients("limited", "--per-tenant-limit", "1")
    assert len(limited["limited/job1"]) == len(limited["limited/job2"]) == 1
    assert not _overlap(limited["limited/job1"][0], limited["limited/job2"][0]), limited


def test_a_worker_killed_mid_run_reruns_elsewhere_and_commits_exactly_once(
    tmp_path: Path, two_workers: DaskProcesses, timed_job: Callable[..., Path]
) -> None:
    jobs = tmp_path / "jobs"
    timed_job(jobs, "acme", "numbers", count=200, batch_size=10, delay=0.1)
    client = start_run("--job-dir", str(jobs), "--executor", "dask", "--scheduler", two_workers.address,
                       "--json", cwd=tmp_path)  # fmt: skip
    log = tmp_path / "events.log"
    first = wait_for(lambda: events(log), timeout=60, what="the job to start on a worker")[0]
    time.sleep(0.5)  # A few batches in: staged files, no commit.
    os.kill(first["pid"], signal.SIGKILL)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    summary = json.loads(out)["jobs"][0]
    assert summary["status"] == "succeeded"
    starts = [e for e in events(log) if e["event"] == "start"]
    assert len(starts) == 2, starts
    assert starts[1]["pid"] != first["pid"], starts
    assert committed_ids(tmp_path / "out" / "acme-numbers") == list(range(200))
    two_workers.wait_for_workers(2)  # The nanny restarted the killed worker for the next tests.


def test_the_client_killed_mid_run_leaves_nothing_half_done_and_a_rerun_completes(
    tmp_path: Path, two_workers: DaskProcesses, timed_job: Callable[..., Path], run_cli: Any
) -> None:
    jobs = tmp_path / "jobs"
    timed_job(jobs, "acme", "orphan", count=100, batch_size=10, delay=0.1)
    client = start_run("--job-dir", str(jobs), "--executor", "dask", "--scheduler", two_workers.address,
                       cwd=tmp_path)  # fmt: skip
    wait_for(lambda: events(tmp_path / "events.log"), timeout=60, what="the job to start on a worker")
    client.kill()
    client.communicate()
    out = tmp_path / "out" / "acme-orphan"
    assert committed_ids(out) in ([], list(range(100)))  # Never a part of a run.

    def rerun() -> Any:
        result = run_cli(
            "run", "--job-dir", str(jobs), "--executor", "dask", "--scheduler", two_workers.address
        )
        # 75 while the orphaned task still holds the job's lock on its worker.
        assert result.returncode in (0, 75), result.stderr
        return result.returncode == 0

    wait_for(rerun, timeout=60, what="a rerun to succeed")
    assert committed_ids(out) == list(range(100))


def test_serve_dispatches_due_runs_as_dask_tasks_with_health_and_metrics(
    tmp_path: Path, two_workers: DaskProcesses, write_job: Any
) -> None:
    jobs = tmp_path / "jobs"
    (tmp_path / "numbers.csv").write_text("id\n" + "\n".join(str(n) for n in range(5)) + "\n")
    write_job(
        f"""
        tenant: alpha
        name: every-second
        schedule: '* * * * * *'
        source: {{plugin: csv, config: {{path: {tmp_path / "numbers.csv"}}}}}
        target: {{plugin: parquet, config: {{path: {tmp_path / "out"}}}}}
        """,
        name="quick.yaml",
        folder=jobs,
    )
    port = free_port()
    server = subprocess.Popen(
        [*dativo_run_command(), "serve", "--job-dir", str(jobs), "--port", str(port), "--host", "127.0.0.1",
         "--executor", "dask", "--scheduler", two_workers.address, "--grace-period", "5"],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return response.status, response.read().decode()
        except OSError:
            return 0, ""

    try:

        def succeeded() -> bool:
            status, body = get("/api/jobs")
            if status != 200:
                return False
            runs = json.loads(body)["jobs"][0]["last_runs"]
            return any(r["status"] == "success" and r["counts"]["records_written"] == 5 for r in runs)

        wait_for(succeeded, timeout=60, what="a scheduled run to succeed on the Dask cluster")
        assert get("/healthz")[0] == 200
        ready_status, ready = get("/readyz")
        assert ready_status == 200, ready
        assert "runner" in {c["name"] for c in json.loads(ready)["checks"]}
        metrics = get("/metrics")[1]
        # The worker's own metrics (records written) came back with the task's result.
        written = [
            line for line in metrics.splitlines()
            if line.startswith("dativo_records_written_total{") and 'tenant="alpha"' in line
        ]  # fmt: skip
        assert written, metrics
        assert float(written[0].rsplit(" ", 1)[1]) >= 5
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert committed_ids(tmp_path / "out")[:5] == list(range(5))


def test_a_sandboxed_job_runs_in_bubblewrap_on_a_dask_worker(
    tmp_path: Path, two_workers: DaskProcesses, run_cli: Any
) -> None:
    require_backend("process")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "sandboxed.yaml").write_text(
        f"""
tenant: acme
name: sandboxed
source:
  plugin: {PLUGINS}:TimedReader
  config: {{log: /tmp/events.log, job: acme/sandboxed, count: 25}}
target: {{plugin: parquet, config: {{path: {tmp_path / "out"}}}}}
sandbox: {{backend: process}}
"""
    )
    result = run_cli(
        "run", "--job-dir", str(jobs), "--executor", "dask", "--scheduler", two_workers.address, "--json"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["jobs"][0]
    assert summary["sandbox"]["source"] == "process", summary["sandbox"]
    assert committed_ids(tmp_path / "out") == list(range(25))


def test_a_worker_without_a_sandbox_backend_refuses_a_sandboxed_job(
    tmp_path: Path, timed_job: Callable[..., Path], run_cli: Any
) -> None:
    # A worker whose PATH has no bwrap and whose Docker daemon is unreachable: no isolated backend.
    bare = tmp_path / "bin"
    bare.mkdir()
    for program in ("python", "python3", "dask"):
        (bare / program).symlink_to(Path(sys.executable).parent / program)
    env = {**clean_env(), "PATH": str(bare), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    jobs = tmp_path / "jobs"
    job = timed_job(jobs, "acme", "isolated", count=5)
    job.write_text(job.read_text().replace("sandbox: {backend: none}", "sandbox: {backend: auto}"))
    with dask_processes(tmp_path / "logs", workers=1, env=env) as cluster:
        result = run_cli(
            "run", "--job-dir", str(jobs), "--executor", "dask", "--scheduler", cluster.address, "--json"
        )
    summary = json.loads(result.stdout)["jobs"][0]
    assert result.returncode == 1, result.stderr
    assert summary["status"] == "failed"
    message = summary["error"]["message"]
    assert "cannot run job acme/isolated" in message, message
    assert "no sandbox backend works" in message, message
    assert "sandbox doctor" in message
    assert summary["error"]["error_code"] == "SANDBOX_ERROR"
    assert not events(tmp_path / "events.log")  # The plugin never started.


def test_the_scheduler_lost_mid_run_fails_the_job_as_retryable(
    tmp_path: Path, timed_job: Callable[..., Path]
) -> None:
    jobs = tmp_path / "jobs"
    timed_job(jobs, "acme", "stranded", count=100, batch_size=10, delay=0.3)
    with dask_processes(tmp_path / "logs", workers=1) as cluster:
        client = start_run("--job-dir", str(jobs), "--executor", "dask", "--scheduler", cluster.address,
                           "--json", cwd=tmp_path)  # fmt: skip
        wait_for(lambda: events(tmp_path / "events.log"), timeout=60, what="the job to start on the worker")
        os.killpg(cluster.processes[0].pid, signal.SIGKILL)  # The scheduler.
        out, err = client.communicate(timeout=120)
    assert client.returncode == 75, err
    summary = json.loads(out)["jobs"][0]
    assert summary["status"] == "failed"
    assert "lost the Dask task of acme/stranded" in summary["error"]["message"]
    assert committed_ids(tmp_path / "out" / "acme-stranded") in ([], list(range(100)))


RANGES = (
    Path(__file__).resolve().parents[2]
    / "packages"
    / "dativo-runtime"
    / "tests"
    / "data"
    / "partitioned_plugins.py"
)


def _ranges_job(folder: Path, out: Path, *, delay: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ranges.yaml"
    path.write_text(
        f"""
tenant: acme
name: ranges
source:
  plugin: {RANGES}:RangesReader
  config: {{ranges: 4, size: 20, delay_s: {delay}, trace: true}}
  incremental: {{}}
  parallelism: 2
target: {{plugin: parquet, config: {{path: {out}}}}}
sandbox: {{backend: none}}
retry: {{max_attempts: 1}}
"""
    )
    return path


def _read_ranges(out: Path) -> list[tuple[int, str, str]]:
    files = [str(p) for p in out.rglob("*.parquet") if "_dativo" not in p.parts]
    if not files:
        return []
    return duckdb.sql(f"select id, partition, worker from read_parquet({files!r}) order by id").fetchall()


def test_a_partitioned_job_spreads_its_partitions_over_the_workers_and_commits_once(
    tmp_path: Path, two_workers: DaskProcesses, run_cli: Any
) -> None:
    _ranges_job(tmp_path / "jobs", tmp_path / "out", delay=0.1)
    result = run_cli("run", "--job-dir", str(tmp_path / "jobs"), "--executor", "dask",
                     "--scheduler", two_workers.address, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["jobs"][0]
    assert summary["records_written"] == 80
    assert sorted(p["name"] for p in summary["partitions"]) == [f"range-{i}" for i in range(4)]
    rows = _read_ranges(tmp_path / "out")
    assert [row[0] for row in rows] == list(range(80))
    # Each partition was read in one process; two at once went to the two worker processes.
    by_partition = {partition: {w for _, p, w in rows if p == partition} for _, partition, _ in rows}
    assert all(len(workers) == 1 for workers in by_partition.values()), by_partition
    assert len({w for _, _, w in rows}) == 2, by_partition
    # One commit: one manifest for the whole run.
    assert len(list((tmp_path / "out" / "_dativo" / "manifests").glob("*.json"))) == 1


def test_a_worker_killed_mid_partition_restages_it_and_the_run_commits_once(
    tmp_path: Path, two_workers: DaskProcesses
) -> None:
    from distributed import Client

    _ranges_job(tmp_path / "jobs", tmp_path / "out", delay=0.25)  # 4 batches of 5 a partition: 1 s each.
    client = start_run("--job-dir", str(tmp_path / "jobs"), "--executor", "dask", "--scheduler",
                       two_workers.address, "--json", cwd=tmp_path)  # fmt: skip
    with Client(two_workers.address, timeout=30) as observer:

        def busy_worker() -> Any:
            processing = observer.processing()
            return next((address for address, keys in processing.items() if keys), None)

        address = wait_for(busy_worker, timeout=60, what="a partition task on a worker")
        time.sleep(0.5)  # Part-way through the partition.
        pid = observer.run(os.getpid, workers=[address])[address]
        os.kill(pid, signal.SIGKILL)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    assert json.loads(out)["jobs"][0]["records_written"] == 80
    assert [row[0] for row in _read_ranges(tmp_path / "out")] == list(range(80))
    two_workers.wait_for_workers(2)
