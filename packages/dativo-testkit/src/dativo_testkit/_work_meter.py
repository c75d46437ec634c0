"""Measuring the work a reader does to produce each batch, to tell streaming from buffering.

A reader that streams must do work for every batch it hands over: run Python code for
its records, allocate Arrow memory, or read from a file or socket. A reader that read
the whole source before its first batch did all that work for the first batch and hands
the later ones over almost for free. Three deterministic meters observe the work (none
of them uses the clock):

* Python bytecode operations executed while the consumer's ``next()`` runs, counted by
  a ``sys.settrace`` opcode tracer on the consuming thread. Code inside the SDK's
  ``State`` (the harness's bookkeeping) is not counted.
* Bytes allocated from pyarrow's default memory pool (a cumulative counter), when
  pyarrow is loaded: native readers decode batches there.
* Read system calls of the whole process (``syscr`` in ``/proc/self/io``), where the
  platform has it: I/O done in background threads counts too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import dativo_plugin_sdk._state as _sdk_state

__all__ = [
    "FIRST_BATCH_FACTOR",
    "OPERATIONS_PER_RECORD",
    "BatchWork",
    "OpcodeCounter",
    "Work",
    "process_counters",
    "reading_overhead",
]

OPERATIONS_PER_RECORD = 2
"""Later batches costing fewer Python operations per record than this count as free."""

FIRST_BATCH_FACTOR = 10
"""A first batch costing this many times a later one holds the whole read."""

_EXCLUDED_FILES = frozenset({_sdk_state.__file__})

TraceFunction = Callable[[FrameType, str, Any], Any]


class OpcodeCounter:
    """Count bytecode operations run in this thread, outside the SDK's ``State`` code.

    Args:
        cap: Stop counting (and tracing) once this many operations were seen.
    """

    def __init__(self, cap: int) -> None:
        self.count = 0
        self.cap = cap
        self._capped = False
        self._inside_excluded: FrameType | None = None

    def _global(self, frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
        if self._capped or self._inside_excluded is not None:
            return None
        if frame.f_code.co_filename in _EXCLUDED_FILES:
            self._inside_excluded = frame
            return self._watch_excluded
        frame.f_trace_opcodes = True
        return self._local

    def _watch_excluded(self, frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
        if event == "return" and frame is self._inside_excluded:
            self._inside_excluded = None
        return self._watch_excluded

    def _local(self, frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
        if self._capped:
            frame.f_trace_opcodes = False
            return None
        if event == "opcode":
            self.count += 1
            if self.count >= self.cap:
                self._capped = True
                sys.settrace(None)
                frame.f_trace_opcodes = False
                return None
        return self._local

    def measure_next(self, iterator: Iterator[Any]) -> Any:
        """Call ``next(iterator)`` with counting on; StopIteration passes through."""
        self._capped = False
        self._inside_excluded = None
        previous = sys.gettrace()
        sys.settrace(self._global)
        try:
            return next(iterator)
        finally:
            sys.settrace(previous)


@dataclass(frozen=True)
class Work:
    """Cumulative counters of the process at one moment."""

    arrow_bytes: int | None
    read_syscalls: int | None

    def since(self, earlier: Work) -> Work:
        """Return the difference from an earlier reading (``None`` where unmeasured)."""
        return Work(
            arrow_bytes=_difference(self.arrow_bytes, earlier.arrow_bytes),
            read_syscalls=_difference(self.read_syscalls, earlier.read_syscalls),
        )


def _difference(now: int | None, before: int | None) -> int | None:
    return None if now is None or before is None else now - before


def _arrow_bytes() -> int | None:
    pyarrow = sys.modules.get("pyarrow")
    pool = getattr(pyarrow, "default_memory_pool", None)
    if pool is None:
        return None
    total = getattr(pool(), "total_bytes_allocated", None)
    return int(total()) if callable(total) else None


def _read_syscalls() -> int | None:
    # One os.read call, so each reading adds a known, constant number of read syscalls.
    try:
        fd = os.open("/proc/self/io", os.O_RDONLY)
    except OSError:
        return None
    try:
        text = os.read(fd, 4096).decode("ascii", "replace")
    finally:
        os.close(fd)
    for line in text.splitlines():
        if line.startswith("syscr:"):
            return int(line.split(":", 1)[1])
    return None


def process_counters() -> Work:
    """Return the process-wide counters now."""
    return Work(arrow_bytes=_arrow_bytes(), read_syscalls=_read_syscalls())


def reading_overhead() -> Work:
    """Return what one :func:`process_counters` call adds to the counters themselves."""
    first = process_counters()
    return process_counters().since(first)


@dataclass(frozen=True)
class BatchWork:
    """The work measured for the first batch of a read and for the batches after it.

    Attributes:
        first_operations: Python operations while the first batch was produced.
        later_batches: How many later batches were observed.
        later_records: Records in those batches.
        later_operations: Python operations while they were produced.
        arrow_bytes: Arrow bytes allocated meanwhile (``None``: not measurable).
        read_syscalls: Read system calls meanwhile (``None``: not measurable).
    """

    first_operations: int
    later_batches: int
    later_records: int
    later_operations: int
    arrow_bytes: int | None
    read_syscalls: int | None

    def streaming_evidence(self) -> list[str]:
        """Return the signs that later batches were produced when pulled (empty: buffered).

        A later batch shows it was produced on demand when it cost at least
        :data:`OPERATIONS_PER_RECORD` Python operations per record, any Arrow allocation,
        any read, or when the first batch did not cost :data:`FIRST_BATCH_FACTOR` times
        as much as a later one.
        """
        evidence = []
        if self.later_operations >= OPERATIONS_PER_RECORD * self.later_records:
            evidence.append(f"{self.later_operations} Python operations")
        if self.arrow_bytes:
            evidence.append(f"{self.arrow_bytes} bytes of Arrow allocations")
        if self.read_syscalls:
            evidence.append(f"{self.read_syscalls} read system calls")
        mean_later = self.later_operations / max(self.later_batches, 1)
        if self.first_operations < FIRST_BATCH_FACTOR * mean_later:
            evidence.append(f"about the work of the first batch ({self.first_operations} operations) each")
        return evidence
