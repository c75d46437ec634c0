"""What a sandboxed writer leaves in its output folder, checked by the host.

A writer may change anything in its one writable folder, so before its files count as
committed the host makes sure that folder holds nothing dangerous and nothing too big:

* **No privileges.** Setuid and setgid bits are stripped from every file and folder, so
  no binary a plugin planted can run with its owner's rights on the host.
* **Only files, folders and symlinks.** Device files, FIFOs and sockets are refused before
  the commit (and removed from whatever is left afterwards).
* **A disk quota.** What the writer adds may not exceed the job's ``sandbox.disk``: the host
  measures the folder after each request and, on a thread of its own, while the plugin
  works, and kills the sandbox when it goes over.

Files are opened with ``O_NOFOLLOW`` and changed through their descriptors, so a plugin
that swaps a file for a symlink while the host looks can never make it touch another file.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from dativo_plugin_sdk import SandboxError

__all__ = ["DiskQuota", "folder_usage", "sanitize_output"]

_logger = logging.getLogger("dativo.sandbox")
_PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID
_WATCH_INTERVAL_S = 0.25


def _entries(folder: Path) -> list[tuple[str, os.stat_result]]:
    """Every path under ``folder`` with its ``lstat``, never following a symlink."""
    found: list[tuple[str, os.stat_result]] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                found.append((path, os.lstat(path)))
            except FileNotFoundError:
                continue  # Removed while we looked: nothing to check.
    return found


def _usage(entries: list[tuple[str, os.stat_result]]) -> int:
    # Allocated blocks, not apparent sizes: a sparse file claiming terabytes costs what it uses.
    return sum(info.st_blocks * 512 for _, info in entries if not stat.S_ISDIR(info.st_mode))


def folder_usage(folder: Path) -> int:
    """Bytes the files under ``folder`` take on disk (allocated blocks, not apparent sizes)."""
    return _usage(_entries(folder)) if folder.is_dir() else 0


def _strip_privileges(path: str, is_dir: bool) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_DIRECTORY if is_dir else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return  # Gone or swapped for something else: the next walk sees what is there.
    try:
        info = os.fstat(descriptor)
        kind_ok = stat.S_ISDIR(info.st_mode) if is_dir else stat.S_ISREG(info.st_mode)
        if kind_ok and info.st_mode & _PRIVILEGE_BITS:
            os.fchmod(descriptor, stat.S_IMODE(info.st_mode) & ~_PRIVILEGE_BITS)
            _logger.warning("removed the setuid/setgid bits of %s, left by a sandboxed writer", path)
    finally:
        os.close(descriptor)


def sanitize_output(folder: Path, *, ref: str, backend: str, refuse_special: bool) -> None:
    """Strip setuid/setgid bits under ``folder`` and deal with device files, FIFOs and sockets.

    Args:
        folder: The writer's output folder.
        ref: The plugin reference, for the message.
        backend: The backend's name, for the message.
        refuse_special: Raise on a special file (before the commit); otherwise remove it.

    Raises:
        SandboxError: If ``refuse_special`` and the folder holds a special file.
    """
    if not folder.is_dir():
        return
    special: list[str] = []
    for path, info in [(str(folder), os.lstat(folder)), *_entries(folder)]:
        mode = info.st_mode
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            if mode & _PRIVILEGE_BITS:
                _strip_privileges(path, stat.S_ISDIR(mode))
        elif not stat.S_ISLNK(mode):
            special.append(path)
    if not special:
        return
    if refuse_special:
        raise SandboxError(
            f"plugin {ref!r} in the {backend} sandbox left {len(special)} device file(s), FIFO(s) or "
            f"socket(s) in its output folder ({', '.join(special[:5])}); a writer may leave only files, "
            "folders and symlinks. Nothing was committed.",
            details={"reason": "crash", "backend": backend, "ref": ref, "special_files": special[:20]},
        )
    for path in special:
        try:
            os.unlink(path)
        except OSError:
            continue
        _logger.warning("removed %s, a special file left by a sandboxed writer", path)


class DiskQuota:
    """Bounds what a writer adds to its output folder, measured against the folder at the start.

    Args:
        folder: The writer's output folder.
        limit_bytes: What the writer may add in all.
        on_exceeded: Called once, from the watching thread, when the folder goes over
            (the backend kills the sandbox there).
    """

    def __init__(self, folder: Path, limit_bytes: int, on_exceeded: Callable[[], None]) -> None:
        self.folder = folder
        self.limit_bytes = limit_bytes
        before = _entries(folder) if folder.is_dir() else []
        self.baseline = _usage(before)
        self._before = {path for path, _ in before}
        self.exceeded_by: int | None = None
        self._on_exceeded = on_exceeded
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="dativo-disk-quota", daemon=True)

    def start(self) -> DiskQuota:
        """Start watching; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (safe to call twice, from any thread but the watcher)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def added(self) -> int:
        """Bytes the writer added so far."""
        return folder_usage(self.folder) - self.baseline

    def over(self) -> bool:
        """Measure now; remember and report whether the writer went over its quota."""
        added = self.added()
        if added > self.limit_bytes:
            self.exceeded_by = added
        return self.exceeded_by is not None

    def remove_added(self) -> None:
        """Delete every file and folder that was not there at the start (call once the writer is gone)."""
        if not self.folder.is_dir():
            return
        for path, info in sorted(_entries(self.folder), key=lambda item: item[0].count(os.sep), reverse=True):
            if path in self._before:
                continue
            try:
                if stat.S_ISDIR(info.st_mode):
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                continue
        _logger.warning("removed the partial output a sandboxed writer left in %s", self.folder)

    def _watch(self) -> None:
        while not self._stop.wait(_WATCH_INTERVAL_S):
            if self.over():
                self._on_exceeded()
                return
