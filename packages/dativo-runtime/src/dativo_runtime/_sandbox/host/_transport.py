"""A running worker as the host sees it: the transport interface every worker backend implements.

A backend (bubblewrap, Docker) starts a worker and hands the host a :class:`WorkerTransport`:
a byte pipe to the worker plus the means to kill it and to learn how it ended
(:class:`ExitStatus`); the worker's stderr is kept in a bounded :class:`StderrTail`.
Data frames are read from it with :class:`BudgetedFrameReader`, which learns a frame's size
from its header before it reads the body, so the host can wait until it has room for it.
"""

from __future__ import annotations

import abc
import collections
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dativo_runtime._worker._protocol import FRAME_CONTROL, FRAME_DATA, FrameReader, ProtocolError

__all__ = ["STDERR_TAIL_LINES", "BudgetedFrameReader", "ExitStatus", "StderrTail", "WorkerTransport"]

STDERR_TAIL_LINES = 50


class StderrTail:
    """The last lines a worker wrote to stderr (bounded: memory stays small whatever it prints)."""

    def __init__(self, max_lines: int = STDERR_TAIL_LINES, max_line_chars: int = 500) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._partial = b""
        self._max_line_chars = max_line_chars
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        """Add raw stderr bytes (any chunking)."""
        with self._lock:
            data = self._partial + data
            *lines, self._partial = data.split(b"\n")
            if len(self._partial) > 4 * self._max_line_chars:
                lines.append(self._partial)
                self._partial = b""
            for line in lines:
                self._lines.append(line.decode("utf-8", "replace")[: self._max_line_chars])

    def lines(self) -> list[str]:
        """Return the retained lines, oldest first, including an unfinished last line."""
        with self._lock:
            lines = list(self._lines)
            if self._partial:
                lines.append(self._partial.decode("utf-8", "replace")[: self._max_line_chars])
            return lines[-self._lines.maxlen :] if self._lines.maxlen else lines


_HEADER = struct.Struct(">BI")


class BudgetedFrameReader(FrameReader):
    """A frame reader that reserves room for a data frame before it reads the frame's body.

    Args:
        readinto: Fills a memoryview from the worker's stdout (see :class:`FrameReader`).
        max_data_bytes: Largest data frame accepted.
    """

    def read_data_within(self, reserve: Callable[[int], None]) -> bytearray:
        """Read one frame that must be a data frame, calling ``reserve(size)`` between header and body.

        ``reserve`` may block until the host has room for ``size`` bytes, or raise.

        Raises:
            EOFError, ProtocolError: As :meth:`FrameReader.read_frame` (a control frame, an
                unknown frame type or a frame over the limit is a ``ProtocolError``).
        """
        kind, size = _HEADER.unpack(self._read_exact(_HEADER.size, at_boundary=False))
        if kind == FRAME_CONTROL:
            raise ProtocolError("expected a data frame, got a control frame")
        if kind != FRAME_DATA:
            raise ProtocolError(f"unknown frame type {kind}")
        if size > self.max_data_bytes:
            raise ProtocolError(
                f"a data frame of {size} bytes exceeds the limit of {self.max_data_bytes} bytes"
            )
        reserve(size)
        return self._read_exact(size, at_boundary=False) if size else bytearray()


@dataclass(frozen=True)
class ExitStatus:
    """How a worker ended.

    Args:
        exit_code: The exit status (``128 + N`` when the sandbox reports signal ``N`` that way).
        signal: The signal that killed the worker, if known.
        oom_killed: Whether the kernel's OOM killer (a memory cgroup) killed it.
    """

    exit_code: int | None
    signal: int | None = None
    oom_killed: bool = False


class WorkerTransport(abc.ABC):
    """A running worker as the host sees it: a byte pipe plus kill, wait and cleanup."""

    stderr: StderrTail

    @abc.abstractmethod
    def write(self, data: Any) -> None:
        """Write all of ``data`` to the worker's stdin."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Flush what :meth:`write` buffered."""

    @abc.abstractmethod
    def readinto(self, view: memoryview) -> int:
        """Read the worker's stdout into ``view``; return the count, 0 at end of stream."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kill the worker and everything it started, now. Safe to call twice."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> ExitStatus | None:
        """Wait up to ``timeout`` seconds for the worker to end; ``None`` if it still runs."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release everything the worker used (container, cgroup). Safe to call twice."""
