"""The host side of the sandbox boundary: what a writer leaves in its output folder.

A writer may nest folders deeper than any path the host could name, leave a FIFO and a
setuid file at the bottom, or flood the folder with empty files. The host walks the folder
by descriptors without recursion, bounds the walk, fails closed, and removes what the writer
added: the run ends with a typed ``SandboxError`` (reason ``disk``) in bounded time and
memory, nothing is committed, nothing privileged or special is left, and a good job runs
afterwards.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import SandboxError
from dativo_runtime._sandbox.host._output_guard import (
    MAX_OUTPUT_DEPTH,
    MAX_OUTPUT_ENTRIES,
    DiskQuota,
    folder_usage,
    sanitize_output,
)

PLUGINS = Path(__file__).parent / "plugins"
ATTACKS = PLUGINS / "attack_output.py"
EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "plugins"
RSS_BUDGET = 400 << 20
TIME_BUDGET_S = 60.0

RunJob = Callable[..., Any]


def _writer_attack(run_job: RunJob, folder: Path, backend: str, attack: str, **config: object) -> Any:
    out = folder / "out"
    return run_job(
        folder,
        source={"plugin": f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader", "config": {"count": 10}},
        target={
            "plugin": f"{ATTACKS}:OutputWriter",
            "config": {"path": str(out), "attack": attack, **config},
        },
        sandbox={"backend": backend, "disk": "32m"},
        extra={"retry": {"max_attempts": 1}},
    )


def _leftovers(folder: Path) -> list[str]:
    """Every FIFO, socket, device or setuid/setgid file under ``folder`` (walked by descriptors)."""
    found: list[str] = []
    for root, dirs, files, root_fd in os.fwalk(folder, follow_symlinks=False):
        for name in dirs + files:
            info = os.lstat(name, dir_fd=root_fd)
            if info.st_mode & (stat.S_ISUID | stat.S_ISGID) or not (
                stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode)
            ):
                found.append(f"{root[-80:]}/{name} {stat.filemode(info.st_mode)}")
    return found


def _assert_refused_and_removed(run: Any, privileged_files: Callable[[Path], list[str]]) -> None:
    assert run.exit_code == 1, (run.exit_code, run.stderr[-3000:])
    assert run.error["error_type"] == "SandboxError", run.error
    assert run.error["details"]["reason"] == "disk", run.error
    assert "Traceback" not in run.stderr
    assert run.seconds < TIME_BUDGET_S, run.seconds
    assert run.peak_rss_bytes < RSS_BUDGET, f"runtime peak RSS {run.peak_rss_bytes >> 20} MiB"
    assert run.report["files"] == []
    out = run.job.parent / "out"
    assert not list(out.iterdir()), (
        f"the writer's additions were left: {sorted(p.name for p in out.iterdir())}"
    )
    assert not privileged_files(run.job.parent)


def test_a_fifo_and_a_setuid_file_thousands_of_folders_deep_are_refused_and_removed(
    good_run_afterwards, privileged_files, run_job, backend_name, tmp_path
):
    run = _writer_attack(run_job, tmp_path, backend_name, "deep_fifo", depth=3000)
    _assert_refused_and_removed(run, privileged_files)
    assert f"more than {MAX_OUTPUT_DEPTH} levels deep" in run.error["message"]
    good_run_afterwards(tmp_path, backend_name)


def test_a_disk_flood_deep_in_nested_folders_is_stopped_at_the_disk_limit(
    good_run_afterwards, privileged_files, run_job, backend_name, tmp_path
):
    run = _writer_attack(run_job, tmp_path, backend_name, "deep_disk", depth=1200, megabytes=200)
    _assert_refused_and_removed(run, privileged_files)
    good_run_afterwards(tmp_path, backend_name)


def test_a_flood_of_empty_files_is_stopped_at_the_entry_limit(
    good_run_afterwards, privileged_files, run_job, backend_name, tmp_path
):
    run = _writer_attack(run_job, tmp_path, backend_name, "inodes", count=MAX_OUTPUT_ENTRIES + 20_000)
    _assert_refused_and_removed(run, privileged_files)
    assert run.error["details"]["limit"] == "entries", run.error
    assert f"more than {MAX_OUTPUT_ENTRIES:,} files and folders" in run.error["message"]
    good_run_afterwards(tmp_path, backend_name)


# The guard's own functions, on folders this test builds (no plugin involved).


def _deep_tree(folder: Path, depth: int) -> None:
    """``depth`` nested folders under ``folder`` with a FIFO and a setuid file at the bottom."""
    here = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=here)
            below = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=here)
            os.close(here)
            here = below
        os.mkfifo("pipe", dir_fd=here)
        setuid = os.open("suid", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=here)
        os.fchmod(setuid, 0o4755)
        os.close(setuid)
    finally:
        os.close(here)


def test_the_guard_walks_a_tree_deeper_than_the_interpreters_recursion_limit(tmp_path: Path):
    _deep_tree(tmp_path, 1100)  # Deeper than the interpreter's recursion limit (1000).
    assert folder_usage(tmp_path) >= 0
    with pytest.raises(SandboxError, match=f"more than {MAX_OUTPUT_DEPTH} levels deep") as caught:
        sanitize_output(tmp_path, ref="w", backend="process", refuse_special=True)
    assert caught.value.details["reason"] == "disk"
    sanitize_output(tmp_path, ref="w", backend="process", refuse_special=False)
    depths = [root[len(str(tmp_path)) :].count("/") for root, _, _, _ in os.fwalk(tmp_path)]
    assert max(depths) == MAX_OUTPUT_DEPTH, "the folders nested too deep were not removed"
    assert _leftovers(tmp_path) == []


def test_the_quota_fails_closed_on_a_deep_tree_and_removes_it_all(tmp_path: Path):
    (tmp_path / "old.bin").write_bytes(b"kept")
    quota = DiskQuota(tmp_path, 32 << 20, lambda: None)
    _deep_tree(tmp_path, 1100)
    assert quota.over()
    assert quota.problem == "depth"
    quota.remove_added()
    assert [p.name for p in tmp_path.iterdir()] == ["old.bin"]


def test_a_fifo_within_the_depth_limit_is_found_and_the_setuid_bit_stripped(tmp_path: Path):
    _deep_tree(tmp_path, MAX_OUTPUT_DEPTH - 1)
    with pytest.raises(SandboxError, match="FIFO"):
        sanitize_output(tmp_path, ref="w", backend="process", refuse_special=True)
    sanitize_output(tmp_path, ref="w", backend="process", refuse_special=False)
    assert _leftovers(tmp_path) == []


def test_the_quota_counts_entries_and_stops_walking_past_the_limit(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("dativo_runtime._sandbox.host._output_guard.MAX_OUTPUT_ENTRIES", 100)
    (tmp_path / "old").mkdir()
    quota = DiskQuota(tmp_path, None, lambda: None)
    for number in range(100):
        (tmp_path / f"f{number}").touch()
    assert not quota.over()
    (tmp_path / "one-more").touch()
    assert quota.over()
    assert quota.problem == "entries"
    quota.remove_added()
    assert [p.name for p in tmp_path.iterdir()] == ["old"]
