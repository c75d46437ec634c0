"""Run one command as a fresh process and measure its wall time and peak memory.

Two memory figures are taken for every run:

* ``peak_rss_bytes``: the peak of the *sum* of the resident set sizes of the process and
  all its descendants (a shell pipeline's two Pythons, ``dativo-run`` and its sandbox
  worker), sampled with psutil every :data:`SAMPLE_INTERVAL_S` seconds. Pages shared
  between processes (shared libraries) count once per process, so this is an upper bound
  of what the tree holds; a spike shorter than the interval can be missed.
* ``max_rss_bytes``: ``ru_maxrss`` from ``wait4`` on the child: the exact high-water mark
  of the *largest single* process of the tree (Linux folds waited-for grandchildren in).

Linux starts a child's ``ru_maxrss`` from the RSS of the process that forked it, so
``max_rss_bytes`` is never below the harness's own RSS (about 23 MiB: the harness does
not import pyarrow for that reason). ``peak_rss_bytes`` reads current RSS and has no
such floor; it falls back on ``max_rss_bytes`` only when psutil is missing. Processes
that are not descendants (a Docker container runs under containerd, not under
``dativo-run``) are in neither figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SAMPLE_INTERVAL_S", "Measurement", "measure"]

SAMPLE_INTERVAL_S = 0.02
"""Seconds between two RSS samples of the process tree."""

_CHILDREN_REFRESH_S = 0.2
"""Seconds between two scans for new descendants (a full /proc scan, so done less often)."""


@dataclass(frozen=True)
class Measurement:
    """What one run of a command cost.

    Args:
        seconds: Wall time from spawning the process to reaping it.
        returncode: The exit code (negative: killed by that signal).
        peak_rss_bytes: Peak summed RSS of the process tree (see the module docstring).
        max_rss_bytes: ``ru_maxrss`` of the largest single process of the tree.
        timed_out: Whether the harness killed the process at its time limit.
        stdout_path: File holding the process's standard output.
        stderr_path: File holding the process's standard error.
    """

    seconds: float
    returncode: int
    peak_rss_bytes: int
    max_rss_bytes: int
    timed_out: bool
    stdout_path: Path
    stderr_path: Path

    @property
    def ok(self) -> bool:
        """Whether the process exited 0 within its time limit."""
        return self.returncode == 0 and not self.timed_out

    def stdout(self) -> str:
        """Return the captured standard output."""
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        """Return the captured standard error."""
        return self.stderr_path.read_text(errors="replace")


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:  # ru_maxrss alone then
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        tree: dict[int, psutil.Process] = {self.pid: root}
        next_scan = 0.0
        while not self._stop_event.is_set():
            now = time.monotonic()
            if now >= next_scan:
                try:
                    for child in root.children(recursive=True):
                        tree.setdefault(child.pid, child)
                except psutil.Error:
                    pass
                next_scan = now + _CHILDREN_REFRESH_S
            total = 0
            for pid, process in list(tree.items()):
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    del tree[pid]
            self.peak = max(self.peak, total)
            self._stop_event.wait(SAMPLE_INTERVAL_S)


def measure(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 3600.0,
    log_prefix: Path,
) -> Measurement:
    """Run ``command`` to completion and measure it.

    Args:
        command: The program and its arguments.
        cwd: Working directory of the process.
        env: Its full environment (``None``: this process's).
        timeout_s: Wall-clock limit; the process group is killed when it is reached.
        log_prefix: Standard output and error go to ``<log_prefix>.out`` / ``.err``.

    Returns:
        The :class:`Measurement`.
    """
    stdout_path = log_prefix.with_suffix(".out")
    stderr_path = log_prefix.with_suffix(".err")
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, so a timeout kills the whole tree
        )
        sampler = _TreeSampler(process.pid)
        sampler.start()
        killed = threading.Event()
        timer = threading.Timer(timeout_s, _kill_group, args=(process.pid, killed))
        timer.start()
        try:
            # wait4 (not Popen.wait) so that the child's own rusage comes back with its status.
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # interrupted: take the run's whole process group down with us
            timer.cancel()
            _kill_group(process.pid, killed)
            sampler.stop()
            raise
        seconds = time.perf_counter() - start
        timer.cancel()
        sampler.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    max_rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return Measurement(
        seconds=seconds,
        returncode=process.returncode,
        peak_rss_bytes=sampler.peak or max_rss,
        max_rss_bytes=max_rss,
        timed_out=killed.is_set(),
        stdout_path=stdout_path,
        stderr_path=stderr_path,
    )


def _kill_group(pid: int, killed: threading.Event) -> None:
    killed.set()
    try:
        os.killpg(pid, 9)
    except ProcessLookupError:
        pass
