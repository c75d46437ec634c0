"""Per-sandbox cgroups for the process backend: a memory ceiling with OOM detection, a pids cap.

Used where the host lets the runtime create cgroups: cgroup v2 when the runtime's own
cgroup delegates the ``memory`` and ``pids`` controllers, else the v1 ``memory`` and
``pids`` hierarchies (typically as root). Elsewhere the process backend falls back to
rlimits alone (see docs/sandboxing.md); :func:`cgroup_support` says which applies.

A new process joins the cgroup through a tiny ``/bin/sh`` prologue that writes its own
pid before ``exec`` (no ``preexec_fn``, which is unsafe in threaded programs), so every
process of the sandbox is inside it from the start.

A sandbox's cgroup is named after the runtime that owns it,
``dativo-sandbox-<pid namespace>-<pid>-<start>-<random>`` (``<start>``: the owner's start
time in clock ticks since boot, so a reused pid is never mistaken for the owner). The first
time a process creates one, it removes the *empty* ``dativo-sandbox-*`` cgroups whose owner
is gone (a runtime killed before it could clean up); a live runtime's cgroups are never
touched. One whose owner cannot be checked from here (another pid namespace, or a name
without the owner from an older runtime) is removed only once it has been empty for long.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "UNCHECKED_MIN_AGE_S",
    "SandboxCgroup",
    "cgroup_name",
    "cgroup_support",
    "join_cgroup_command",
    "process_alive",
    "process_start_ticks",
    "reap_leftover_cgroups",
]

_ROOT = Path("/sys/fs/cgroup")
_PREFIX = "dativo-sandbox-"
_OWNED_NAME = re.compile(r"^dativo-sandbox-(\d+)-(\d+)-(\d+)-[0-9a-f]+$")
UNCHECKED_MIN_AGE_S = 600.0
"""A leftover cgroup whose owner cannot be checked from here is removed once this old (and empty)."""
_REMOVE_TRIES = 300  # x 10 ms: dying processes can keep a cgroup busy for a moment after SIGKILL
_reaped = False
_reap_lock = threading.Lock()
_logger = logging.getLogger("dativo.sandbox")


def process_start_ticks(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (``/proc/PID/stat``), ``None`` if it is gone.

    With the pid it names one process for the lifetime of the machine, even when pids are reused.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
    except (IndexError, ValueError):
        return None


def process_alive(pid: int, start_ticks: int) -> bool:
    """Tell whether the process ``pid`` that started at ``start_ticks`` still runs (zombies count as gone)."""
    if pid <= 0:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if state[state.rfind(")") + 2 :][:1] in ("Z", "X"):
        return False
    return process_start_ticks(pid) == start_ticks


def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def cgroup_name(pid: int, start_ticks: int) -> str:
    """The name of a new sandbox cgroup owned by the process ``pid`` of this pid namespace."""
    return f"{_PREFIX}{_pid_namespace()}-{pid}-{start_ticks}-{uuid.uuid4().hex[:12]}"


def _is_empty(directory: Path) -> bool:
    try:
        if (directory / "cgroup.procs").read_text().strip():
            return False
        return not any(entry.is_dir() for entry in directory.iterdir())
    except OSError:
        return False


def _leftover(directory: Path, now: float) -> bool:
    """Whether ``directory`` is an empty sandbox cgroup whose owning runtime is gone."""
    match = _OWNED_NAME.match(directory.name)
    if match is not None and int(match.group(1)) == _pid_namespace():
        if process_alive(int(match.group(2)), int(match.group(3))):
            return False
    else:
        # Its owner's pid means nothing here (another pid namespace, or an older runtime that
        # did not name it): only an old, empty one is surely abandoned.
        try:
            if now - directory.stat().st_mtime < UNCHECKED_MIN_AGE_S:
                return False
        except OSError:
            return False
    return _is_empty(directory)


def reap_leftover_cgroups(bases: list[Path]) -> list[Path]:
    """Remove the empty ``dativo-sandbox-*`` cgroups under ``bases`` whose owner is gone.

    A cgroup with a process in it, or whose owning runtime still runs, is kept.

    Returns:
        The removed directories.
    """
    removed: list[Path] = []
    now = time.time()
    for base in bases:
        try:
            candidates = [p for p in base.iterdir() if p.name.startswith(_PREFIX) and p.is_dir()]
        except OSError:
            continue
        for directory in candidates:
            if not _leftover(directory, now):
                continue
            try:
                directory.rmdir()
            except OSError:
                continue  # Busy after all (a process joined), or not ours to remove.
            removed.append(directory)
    if removed:
        _logger.info(
            "removed %d sandbox cgroup(s) left by runtimes that are gone: %s",
            len(removed),
            ", ".join(str(p) for p in removed),
        )
    return removed


def _reap_once(bases: list[Path]) -> None:
    """Reap leftover cgroups the first time this process creates a sandbox cgroup."""
    global _reaped
    with _reap_lock:
        if _reaped:
            return
        _reaped = True
    reap_leftover_cgroups(bases)


def _own_paths() -> dict[str, str]:
    """Map controller name (``""`` for v2) to this process's cgroup path."""
    paths: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _v2_base() -> Path | None:
    path = _own_paths().get("")
    if path is None or not (_ROOT / "cgroup.controllers").exists():
        return None
    base = _ROOT / path.lstrip("/")
    try:
        enabled = set((base / "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    if {"memory", "pids"} <= enabled and os.access(base, os.W_OK):
        return base
    return None


def _v1_bases() -> dict[str, Path]:
    bases: dict[str, Path] = {}
    for controller, path in _own_paths().items():
        if controller in ("memory", "pids"):
            base = _ROOT / controller / path.lstrip("/")
            if (base / "cgroup.procs").exists() and os.access(base, os.W_OK):
                bases[controller] = base
    return bases


def cgroup_support() -> tuple[str | None, str]:
    """Tell which cgroup version the process backend can use here.

    Returns:
        ``("v2" | "v1" | None, explanation)``.
    """
    if _v2_base() is not None:
        return "v2", "cgroup v2 with delegated memory and pids controllers"
    bases = _v1_bases()
    if bases:
        return "v1", f"cgroup v1 controllers: {', '.join(sorted(bases))}"
    return None, (
        "no writable cgroup (not root and no delegated cgroup v2 subtree): memory is capped by "
        "RLIMIT_AS and processes by RLIMIT_NPROC only"
    )


def _write(path: Path, value: str) -> None:
    path.write_text(value)


@dataclass
class SandboxCgroup:
    """The cgroup directories of one sandbox.

    Attributes:
        directories: One directory per hierarchy (one for v2, one per v1 controller).
        memory_limited: Whether a memory limit is set (so OOM kills can be detected).
        pids_limited: Whether a pids limit is set.
    """

    directories: list[Path] = field(default_factory=list)
    memory_dir: Path | None = None
    version: str = "v2"
    memory_limited: bool = False
    pids_limited: bool = False

    @classmethod
    def create(cls, *, memory_bytes: int, pids: int) -> SandboxCgroup | None:
        """Create the cgroup with its limits; ``None`` when cgroups cannot be used here.

        The first call in a process also removes the empty sandbox cgroups of runtimes that are gone.
        """
        name = cgroup_name(os.getpid(), process_start_ticks(os.getpid()) or 0)
        v2 = _v2_base()
        _reap_once([v2] if v2 is not None else list(_v1_bases().values()))
        group = cls()
        try:
            if v2 is not None:
                directory = v2 / name
                directory.mkdir()
                group.directories.append(directory)
                group.memory_dir = directory
                _write(directory / "memory.max", str(memory_bytes))
                with contextlib.suppress(OSError):
                    _write(directory / "memory.swap.max", "0")
                _write(directory / "pids.max", str(pids))
                group.memory_limited = group.pids_limited = True
                return group
            bases = _v1_bases()
            if not bases:
                return None
            group.version = "v1"
            if "memory" in bases:
                directory = bases["memory"] / name
                directory.mkdir()
                group.directories.append(directory)
                group.memory_dir = directory
                _write(directory / "memory.limit_in_bytes", str(memory_bytes))
                with contextlib.suppress(OSError):
                    _write(directory / "memory.memsw.limit_in_bytes", str(memory_bytes))
                group.memory_limited = True
            if "pids" in bases:
                directory = bases["pids"] / name
                directory.mkdir()
                group.directories.append(directory)
                _write(directory / "pids.max", str(pids))
                group.pids_limited = True
        except OSError:
            group.remove()
            return None
        return group

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a new process writes its pid to."""
        return [str(d / "cgroup.procs") for d in self.directories]

    def oom_killed(self) -> bool:
        """Tell whether the kernel's OOM killer killed a process of this cgroup."""
        if self.memory_dir is None:
            return False
        try:
            if self.version == "v2":
                text = (self.memory_dir / "memory.events").read_text()
            else:
                text = (self.memory_dir / "memory.oom_control").read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                return True
        return False

    def _pids(self) -> set[int]:
        pids: set[int] = set()
        for directory in self.directories:
            try:
                pids.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return pids

    def kill_all(self) -> None:
        """SIGKILL every process left in the cgroup."""
        for directory in self.directories:
            kill_file = directory / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    _write(kill_file, "1")
        for _ in range(50):
            pids = self._pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left and remove the directories. Safe to call twice."""
        self.kill_all()
        for directory in self.directories:
            for _ in range(_REMOVE_TRIES):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                _logger.warning(
                    "could not remove the sandbox cgroup %s; it stays until it is empty", directory
                )
        self.directories = []
        self.memory_dir = None


def join_cgroup_command(procs_files: list[str], command: list[str]) -> list[str]:
    """Prefix ``command`` with a ``/bin/sh`` prologue that joins the cgroups, then ``exec``s it."""
    if not procs_files:
        return command
    script = (
        'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"'
    )
    return ["/bin/sh", "-c", script, "dativo-sandbox", str(len(procs_files)), *procs_files, *command]
