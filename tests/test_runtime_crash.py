"""Crash safety: ``kill -9`` a run mid-way, run again, and every record is committed exactly once."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds

COUNT = 400


def numbers_job(write_job: Any, plugins: Path) -> Path:
    return write_job(
        f"""
        name: crashy
        source:
          plugin: {plugins}:NumbersReader
          config: {{count: {COUNT}, batch_size: 10, delay: '${{DELAY}}'}}
          incremental: {{}}
        target:
          plugin: parquet
          config: {{path: out, row_group_size: 10, target_file_size: 1}}
        sandbox: {{backend: none}}
        """
    )


def committed_ids(out: Path) -> tuple[list[int], list[int]]:
    files = [p for p in out.rglob("*.parquet") if "_dativo" not in p.parts]
    if not files:
        return [], []
    by_pyarrow = sorted(ds.dataset(out, format="parquet").to_table().column("id").to_pylist())
    by_duckdb = [
        row[0]
        for row in duckdb.sql(f"SELECT id FROM read_parquet('{out}/**/*.parquet') ORDER BY id").fetchall()
    ]
    return by_pyarrow, by_duckdb


def start_and_kill(start_cli: Any, job: Path, cwd: Path, staged_before_kill: int) -> None:
    process = start_cli("run", "--config", str(job), env={"DELAY": "0.05"}, cwd=cwd)
    staging = cwd / "out" / "_dativo" / "staging"
    deadline = time.monotonic() + 60
    try:
        while len(list(staging.rglob("*.staged"))) < staged_before_kill:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no staged files appeared"
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def test_killed_run_leaves_nothing_committed_and_the_rerun_commits_everything_once(
    tmp_path: Path, write_job: Any, run_cli: Any, start_cli: Any, test_plugins: Path
) -> None:
    job = numbers_job(write_job, test_plugins)
    start_and_kill(start_cli, job, tmp_path, staged_before_kill=5)
    # What readers see of the dataset folder right after the kill: nothing.
    assert committed_ids(tmp_path / "out") == ([], [])
    assert list((tmp_path / "out" / "_dativo" / "staging").rglob("*.staged"))

    rerun = run_cli("run", "--config", str(job), "--json", env={"DELAY": "0"})
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["records_written"] == COUNT
    by_pyarrow, by_duckdb = committed_ids(tmp_path / "out")
    assert by_pyarrow == list(range(COUNT))
    assert by_duckdb == list(range(COUNT))
    assert not list((tmp_path / "out" / "_dativo" / "staging").iterdir())
    assert any("rolled back" in line for line in rerun.stderr.splitlines())


def test_kill_after_an_earlier_commit_keeps_that_commit_and_adds_the_rest_once(
    tmp_path: Path, write_job: Any, run_cli: Any, start_cli: Any, test_plugins: Path
) -> None:
    first_half = write_job(
        f"""
        name: crashy
        source:
          plugin: {test_plugins}:NumbersReader
          config: {{count: {COUNT // 2}, batch_size: 10}}
          incremental: {{}}
        target:
          plugin: parquet
          config: {{path: out, row_group_size: 10, target_file_size: 1}}
        sandbox: {{backend: none}}
        """,
        name="first.yaml",
    )
    assert run_cli("run", "--config", str(first_half)).returncode == 0
    job = numbers_job(write_job, test_plugins)
    start_and_kill(start_cli, job, tmp_path, staged_before_kill=3)
    assert committed_ids(tmp_path / "out")[0] == list(range(COUNT // 2))
    rerun = run_cli("run", "--config", str(job), "--json", env={"DELAY": "0"})
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["records_written"] == COUNT // 2
    by_pyarrow, by_duckdb = committed_ids(tmp_path / "out")
    assert by_pyarrow == by_duckdb == list(range(COUNT))
