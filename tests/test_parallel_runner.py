"""`dativo-run run --job-dir DIR --parallel N --per-tenant-limit K`: the parallel runner, end to end.

Concurrency is observed through the `start`/`end` markers a plugin writes, never through timing:
jobs of two tenants wait for each other's start, so they finish only when they run together.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from dativo_runtime import run_jobs


@pytest.fixture
def marker_job(tmp_path: Path, test_plugins: Path) -> Callable[..., Path]:
    """Write a job whose MarkerReader logs its start and end to ``markers.log``."""

    def write(folder: Path, file: str, tenant: str, name: str, **config: Any) -> Path:
        settings = {"log": str(tmp_path / "markers.log"), "job": f"{tenant}/{name}", **config}
        path = folder / file
        path.write_text(
            f"""
tenant: {tenant}
name: {name}
source:
  plugin: {test_plugins}:MarkerReader
  config: {json.dumps(settings)}
target:
  plugin: parquet
  config: {{path: {tmp_path / "out" / f"{tenant}-{name}"}}}
sandbox: {{backend: none}}
"""
        )
        return path

    return write


def _concurrency(log: Path) -> tuple[int, dict[str, int]]:
    """The most runs at once, in total and per tenant, replaying the markers in the order written."""
    running: set[str] = set()
    most, per_tenant = 0, {}
    for line in log.read_text().splitlines():
        event, job = line.split()
        if event == "start":
            assert job not in running, f"{job} started twice"
            running.add(job)
        else:
            running.remove(job)
        most = max(most, len(running))
        for tenant in {j.split("/")[0] for j in running}:
            at_once = sum(1 for j in running if j.startswith(f"{tenant}/"))
            per_tenant[tenant] = max(per_tenant.get(tenant, 0), at_once)
    assert not running, f"runs without an end marker: {running}"
    return most, per_tenant


def test_parallel_runs_stay_within_the_total_and_per_tenant_limits(
    tmp_path: Path, marker_job: Callable[..., Path], run_cli: Any
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    # a1 and b1 each wait for the other tenant's start: they can only finish side by side.
    marker_job(jobs, "1.yaml", "a", "a1", wait_for="b")
    marker_job(jobs, "2.yaml", "a", "a2")
    marker_job(jobs, "3.yaml", "b", "b1", wait_for="a")
    marker_job(jobs, "4.yaml", "c", "c1")
    result = run_cli("run", "--job-dir", str(jobs), "--parallel", "2", "--per-tenant-limit", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(j["tenant"], j["job"], j["status"]) for j in report["jobs"]] == [
        ("a", "a1", "succeeded"),
        ("a", "a2", "succeeded"),
        ("b", "b1", "succeeded"),
        ("c", "c1", "succeeded"),
    ]
    most, per_tenant = _concurrency(tmp_path / "markers.log")
    assert most == 2, "two jobs ran side by side, never three"
    assert per_tenant == {"a": 1, "b": 1, "c": 1}
    for name in ("a-a1", "a-a2", "b-b1", "c-c1"):
        assert ds.dataset(tmp_path / "out" / name, format="parquet").count_rows() == 3


def test_a_failing_job_does_not_stop_the_others_and_the_worst_code_wins(
    tmp_path: Path, marker_job: Callable[..., Path], run_cli: Any
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    marker_job(jobs, "1-good.yaml", "t", "good1")
    marker_job(jobs, "2-crash.yaml", "t", "crash", fail=True)
    (jobs / "3-missing.yaml").write_text(
        "name: missing\nsource: {plugin: csv, config: {path: nowhere.csv}}\n"
        "target: {plugin: parquet, config: {path: ../out/missing}}\n"
    )
    (jobs / "4-invalid.yaml").write_text("name: invalid\nsource: {plugin: csv}\n")
    marker_job(jobs, "5-good.yaml", "u", "good2")

    result = run_cli("run", "--job-dir", str(jobs), "--parallel", "2", "--json")
    assert result.returncode == 2, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["exit_code"] == 2
    assert [(j["status"], j["exit_code"]) for j in report["jobs"]] == [
        ("succeeded", 0),
        ("failed", 1),
        ("failed", 2),
        ("failed", 2),
        ("succeeded", 0),
    ]
    assert "the marker reader was told to fail" in report["jobs"][1]["error"]["message"]
    assert "nowhere.csv" in report["jobs"][2]["error"]["message"]
    assert report["jobs"][3]["job_file"].endswith("4-invalid.yaml")
    for name in ("t-good1", "u-good2"):
        assert ds.dataset(tmp_path / "out" / name, format="parquet").count_rows() == 3

    # People get one line per job as it ends, then a summary table.
    table = run_cli("run", "--job-dir", str(jobs), "--parallel", "2")
    assert table.returncode == 2
    summary = table.stdout[table.stdout.index("5 job(s); exit code 2") :]
    for name in ("t/good1", "t/crash", "default/missing", "4-invalid.yaml", "u/good2"):
        assert name in summary


def test_the_python_api_runs_jobs_in_parallel(tmp_path: Path, marker_job: Callable[..., Path]) -> None:
    first = marker_job(tmp_path, "x.yaml", "x", "one", wait_for="y")
    second = marker_job(tmp_path, "y.yaml", "y", "two", wait_for="x")
    seen = []
    report = run_jobs([first, second], parallel=2, on_outcome=lambda outcome: seen.append(outcome.job))
    assert report.exit_code == 0
    assert sorted(seen) == ["one", "two"]
    assert [o.summary["records_written"] for o in report.outcomes] == [3, 3]
    assert _concurrency(tmp_path / "markers.log")[0] == 2


def test_sigterm_aborts_every_running_job_and_commits_nothing(
    tmp_path: Path, test_plugins: Path, start_cli: Any
) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for tenant in ("p", "q"):
        (jobs / f"{tenant}.yaml").write_text(
            f"""
tenant: {tenant}
name: slow
source:
  plugin: {test_plugins}:NumbersReader
  config: {{count: 1000, batch_size: 10, delay: 0.05}}
target:
  plugin: parquet
  config: {{path: ../out/{tenant}, row_group_size: 10, target_file_size: 1}}
sandbox: {{backend: none}}
"""
        )
    process = start_cli("run", "--job-dir", str(jobs), "--parallel", "2")
    staging = [tmp_path / "out" / tenant / "_dativo" / "staging" for tenant in ("p", "q")]
    deadline = time.monotonic() + 60
    try:
        while not all(list(folder.rglob("*.staged")) for folder in staging):
            assert process.poll() is None, "the runs ended before they could be stopped"
            assert time.monotonic() < deadline, "the runs did not start staging"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 143
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    for tenant, folder in zip(("p", "q"), staging, strict=True):
        assert not list(folder.rglob("*.staged")), f"{tenant}: staged files were not discarded"
        assert not list((tmp_path / "out" / tenant / "_dativo" / "manifests").glob("*.json"))
        assert not list((tmp_path / "out" / tenant).rglob("*.parquet"))
