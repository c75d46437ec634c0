"""The host side of the sandbox boundary: nothing a worker sends or leaves is trusted.

Each test runs a hostile plugin through ``dativo-run run --json`` in a subprocess, in each
real backend, and checks that the run ends within a bound time with the documented exit
code and a typed error, that the runtime's peak memory stays within a budget, that no host
bytes reach any output, that nothing is committed, and that a good job runs afterwards.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PLUGINS = Path(__file__).parent / "plugins"
EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "plugins"
ATTACKS = PLUGINS / "attack_boundary.py"
SECRET = "host-secret-7f3a9c1e5b2d4f60a8e1c3b5d7f9a2c4"
RSS_BUDGET = 400 << 20
"""The runtime's peak RSS for these small jobs stays below this whatever the plugin sends."""
TIME_BUDGET_S = 60.0

HostileRun = Any  # conftest.HostileRun
RunJob = Callable[..., Any]


def _attack(run_job: RunJob, folder: Path, backend: str, attack: str, **config: object) -> HostileRun:
    return run_job(
        folder,
        source={"plugin": f"{ATTACKS}:BoundaryReader", "config": {"attack": attack, **config}},
        sandbox={"backend": backend, "memory": "1g"},
        extra={"retry": {"max_attempts": 1}},
        env={"AWS_SECRET_ACCESS_KEY": SECRET},
    )


def _assert_refused(run: HostileRun, *, error_type: str = "SandboxError", exit_code: int = 1) -> None:
    assert run.exit_code == exit_code, (run.exit_code, run.stderr[-3000:])
    assert run.error["error_type"] == error_type, run.error
    assert run.seconds < TIME_BUDGET_S, run.seconds
    assert run.peak_rss_bytes < RSS_BUDGET, f"runtime peak RSS {run.peak_rss_bytes >> 20} MiB"
    assert "Traceback" not in run.stderr
    assert SECRET.encode() not in run.output_bytes()
    assert not list((run.job.parent / "out").glob("*.parquet")), "a refused run committed files"


@pytest.mark.parametrize("overread", [1 << 20, 8 << 20, 64 << 20])
def test_arrays_whose_offsets_lie_never_reach_the_writer(
    good_run_afterwards, run_job, backend_name, tmp_path, overread
):
    run = _attack(run_job, tmp_path, backend_name, "lying_offsets", overread=overread)
    _assert_refused(run)
    assert "broke the worker protocol" in run.error["message"]
    assert "Offset invariant failure" in run.error["message"]
    good_run_afterwards(tmp_path, backend_name)


def test_a_compressed_body_is_refused_before_it_is_decompressed(
    good_run_afterwards, run_job, backend_name, tmp_path
):
    run = _attack(run_job, tmp_path, backend_name, "compressed_bomb", megabytes=256)
    _assert_refused(run)
    assert "compressed" in run.error["message"]
    good_run_afterwards(tmp_path, backend_name)


def test_duplicate_column_names_are_a_validation_error(good_run_afterwards, run_job, backend_name, tmp_path):
    run = _attack(run_job, tmp_path, backend_name, "duplicate_columns")
    _assert_refused(run, error_type="ValidationError", exit_code=65)
    assert "duplicate column names: 'id'" in run.error["message"]
    good_run_afterwards(tmp_path, backend_name)


def test_a_nan_in_the_state_is_refused_and_never_saved(good_run_afterwards, run_job, backend_name, tmp_path):
    run = _attack(run_job, tmp_path, backend_name, "nan_state")
    _assert_refused(run)
    assert "not a JSON number" in run.error["message"]
    assert not list(tmp_path.rglob("*.json*")) or b"NaN" not in run.output_bytes()
    good_run_afterwards(tmp_path, backend_name)


CONTROL_ATTACKS = {
    "huge_header": "exceeds the limit of 4194304 bytes",
    "deep_nesting": "nested too deeply",
    "many_lists": "arrays and objects",
}


@pytest.mark.parametrize("attack", sorted(CONTROL_ATTACKS))
def test_malformed_control_frames_end_the_run_as_a_protocol_error(
    good_run_afterwards, run_job, backend_name, tmp_path, attack
):
    words = CONTROL_ATTACKS[attack]
    run = _attack(run_job, tmp_path, backend_name, attack)
    _assert_refused(run)
    assert "broke the worker protocol" in run.error["message"]
    assert words in run.error["message"]
    good_run_afterwards(tmp_path, backend_name)


def _writer_attack(run_job: RunJob, folder: Path, backend: str, attack: str, **config: object) -> HostileRun:
    out = folder / "out"
    return run_job(
        folder,
        source={"plugin": f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader", "config": {"count": 10}},
        target={
            "plugin": f"{ATTACKS}:BoundaryWriter",
            "config": {"path": str(out), "attack": attack, **config},
        },
        sandbox={"backend": backend, **({"disk": config["disk"]} if "disk" in config else {})},
        extra={"retry": {"max_attempts": 1}},
    )


def test_a_writer_leaves_no_setuid_file(privileged_files, run_job, backend_name, tmp_path):
    run = _writer_attack(run_job, tmp_path, backend_name, "setuid")
    assert run.exit_code == 0, run.stderr[-3000:]
    out = tmp_path / "out"
    assert (out / "shell").exists()
    assert not privileged_files(out)


def test_a_writer_that_leaves_a_fifo_commits_nothing(good_run_afterwards, run_job, backend_name, tmp_path):
    run = _writer_attack(run_job, tmp_path, backend_name, "fifo")
    assert run.exit_code == 1, run.stderr[-3000:]
    assert run.error["error_type"] == "SandboxError"
    assert "FIFO" in run.error["message"]
    assert run.report["files"] == []
    assert not (tmp_path / "out" / "pipe").exists()
    good_run_afterwards(tmp_path, backend_name)


@pytest.mark.parametrize(
    ("attack", "words"), [("negative_size", "'size_bytes' is -5"), ("outside_path", "outside")]
)
def test_bogus_writer_metadata_is_refused(run_job, backend_name, tmp_path, attack, words):
    run = _writer_attack(run_job, tmp_path, backend_name, attack)
    assert run.exit_code == 1, run.stderr[-3000:]
    assert run.error["error_type"] == "PluginError"
    assert words in run.error["message"]


def test_a_writer_over_its_disk_limit_is_stopped_and_its_output_removed(
    good_run_afterwards, run_job, backend_name, tmp_path
):
    run = _writer_attack(run_job, tmp_path, backend_name, "disk", disk="32m", megabytes=200)
    assert run.exit_code == 1, run.stderr[-3000:]
    assert run.error["error_type"] == "SandboxError"
    assert run.error["details"]["reason"] == "disk", run.error
    assert "exceeded the disk limit 32 MiB" in run.error["message"]
    leftover = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert leftover == 0, f"{leftover} bytes of partial output left"
    assert run.seconds < TIME_BUDGET_S
    good_run_afterwards(tmp_path, backend_name)


def test_the_runtime_is_not_root_inside_the_output_it_leaves(run_job, backend_name, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only a root runtime can map a plugin to host root")
    run = _writer_attack(run_job, tmp_path, backend_name, "setuid")
    assert run.exit_code == 0, run.stderr[-3000:]
    shell = (tmp_path / "out" / "shell").lstat()
    assert shell.st_uid != 0, "a sandboxed writer's file is owned by the host's root"
    assert not shell.st_mode & (stat.S_ISUID | stat.S_ISGID)


def test_a_result_too_large_for_the_protocol_is_the_plugins_error(backend, plugin_ref):
    from dativo_plugin_sdk import PluginError

    with backend.open_reader(plugin_ref("attack_boundary.py", "OversizeResultReader"), {}) as session:
        with pytest.raises(PluginError, match="exceeds the protocol limit of 4194304 bytes"):
            session.check_connection()
        records = [row for batch in session.extract() for row in batch.data.to_pylist()]
        assert records == [{"id": 1}]
