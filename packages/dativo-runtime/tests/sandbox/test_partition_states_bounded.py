"""A sandboxed reader's partition states are bounded together, not only one by one.

Each state is at most 1 MiB, but a reader with hundreds of partitions could make the host
hold (and save, and print) hundreds of them, and leave a state the next run cannot send back
to its worker. The run fails instead, as the plugin's error, within bounded time and memory,
with nothing committed and no state saved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PLUGINS = Path(__file__).parent / "plugins"
FAT = f"{PLUGINS / 'fat_partition_states.py'}:FatStatesReader"
RSS_BUDGET = 400 << 20
"""Far below the 2 GB that 300 partition states of 900 KB cost the host before the limit."""
TIME_BUDGET_S = 60.0

RunJob = Callable[..., Any]


def _fat_job(run_job: RunJob, folder: Path, backend: str, **config: Any) -> Any:
    return run_job(
        folder,
        source={
            "plugin": FAT,
            "config": config,
            "stream": "s",
            "incremental": {},
            "parallelism": 4,
        },
        sandbox={"backend": backend},
        extra={"retry": {"max_attempts": 1}},
    )


def _saved_states(folder: Path) -> list[Path]:
    """The job's state files (the default location: the parquet target's ``_dativo/state``)."""
    return sorted((folder / "out" / "_dativo" / "state").rglob("*.json"))


@pytest.mark.parametrize("kind", ["bytes", "containers"])
def test_partition_states_past_the_limit_fail_the_run(
    good_run_afterwards, run_job, backend_name, tmp_path, kind
):
    run = _fat_job(run_job, tmp_path, backend_name, kind=kind, partitions=300)
    assert run.exit_code == 1, (run.exit_code, run.stderr[-3000:])
    assert run.error["error_type"] == "PluginError", run.error
    assert "the partition states of stream 's' add up to" in run.error["message"]
    assert "keep cursors, not data, in the state" in run.error["message"]
    assert run.seconds < TIME_BUDGET_S, run.seconds
    assert run.peak_rss_bytes < RSS_BUDGET, f"runtime peak RSS {run.peak_rss_bytes >> 20} MiB"
    # The partitions' last states (documented in --json) stay within the limit too.
    assert len(run.stdout) < 4 << 20, f"a --json document of {len(run.stdout)} bytes"
    assert "Traceback" not in run.stderr
    assert not list((tmp_path / "out").rglob("*.parquet")), "a refused run committed files"
    assert not _saved_states(tmp_path), "a refused run saved its state"
    good_run_afterwards(tmp_path, backend_name)


def test_partition_states_within_the_limit_are_saved_and_sent_back(run_job, process_backend, tmp_path):
    first = _fat_job(run_job, tmp_path, "process", partitions=3)
    assert first.exit_code == 0, first.stderr[-3000:]
    assert [p["name"] for p in first.report["partitions"]] == ["p0", "p1", "p2"]
    again = _fat_job(run_job, tmp_path, "process", partitions=3)
    assert again.exit_code == 0, again.stderr[-3000:]


def test_saved_states_a_worker_cannot_be_sent_fail_before_the_reader_runs(run_job, process_backend, tmp_path):
    # Saved by a trusted, in-process run (not bounded), then read by a sandboxed one.
    trusted = run_job(
        tmp_path,
        source={"plugin": FAT, "config": {"partitions": 5}, "stream": "s", "incremental": {}},
        sandbox={"backend": "none"},
        extra={"mode": "self_hosted", "retry": {"max_attempts": 1}},
    )
    assert trusted.exit_code == 0, trusted.stderr[-3000:]
    saved = _saved_states(tmp_path)
    assert saved
    assert sum(p.stat().st_size for p in saved) > 4 << 20
    run = _fat_job(run_job, tmp_path, "process", partitions=5)
    assert run.exit_code == 2, (run.exit_code, run.stderr[-3000:])
    assert run.error["error_type"] == "ConfigurationError", run.error
    assert "dativo-run state reset" in run.error["message"]
    assert json.loads(saved[0].read_text())["run_id"] == trusted.report["run_id"]
