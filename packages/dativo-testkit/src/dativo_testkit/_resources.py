"""Snapshots of a process's Python threads and open file descriptors, for leak checks."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

__all__ = ["Leaks", "ResourceSnapshot", "wait_for_leaks"]

_FD_DIRECTORIES = ("/proc/self/fd", "/dev/fd")


def _open_fds() -> dict[int, str] | None:
    for directory in _FD_DIRECTORIES:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        fds: dict[int, str] = {}
        for name in names:
            # The descriptor listdir used is closed by now; readlink fails for it.
            try:
                fds[int(name)] = os.readlink(os.path.join(directory, name))
            except (OSError, ValueError):
                continue
        return fds
    return None


@dataclass(frozen=True)
class ResourceSnapshot:
    """The live Python threads and open file descriptors at one moment.

    Attributes:
        threads: Live ``threading.Thread`` objects.
        fds: Open descriptors and what they point to, or ``None`` where the platform
            cannot list them.
    """

    threads: frozenset[threading.Thread]
    fds: dict[int, str] | None

    @classmethod
    def take(cls) -> ResourceSnapshot:
        """Take a snapshot now."""
        return cls(threads=frozenset(t for t in threading.enumerate() if t.is_alive()), fds=_open_fds())


@dataclass(frozen=True)
class Leaks:
    """Threads and descriptors alive now that were not in an earlier snapshot."""

    threads: tuple[str, ...]
    fds: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.threads or self.fds)


def _leaks(before: ResourceSnapshot, after: ResourceSnapshot) -> Leaks:
    threads = tuple(sorted(t.name for t in after.threads - before.threads))
    fds: tuple[str, ...] = ()
    if before.fds is not None and after.fds is not None:
        fds = tuple(
            f"fd {fd} -> {target}" for fd, target in sorted(after.fds.items()) if before.fds.get(fd) != target
        )
    return Leaks(threads=threads, fds=fds)


def wait_for_leaks(before: ResourceSnapshot, *, grace_seconds: float) -> Leaks:
    """Return what is alive now and was not in ``before``, giving it time to go away.

    Threads and sockets of other components (a server's connection handler finishing)
    may take a moment to end; only what is still there after ``grace_seconds`` counts.

    Args:
        before: The earlier snapshot.
        grace_seconds: How long to wait for new threads and descriptors to go.

    Returns:
        The leaks, empty when nothing new remains.
    """
    deadline = time.monotonic() + grace_seconds
    while True:
        leaks = _leaks(before, ResourceSnapshot.take())
        if not leaks or time.monotonic() >= deadline:
            return leaks
        time.sleep(0.02)
