"""Extracting a partitioned stream: up to ``source.parallelism`` partitions at once, one queue out.

Each extractor thread owns one reader session (one sandbox worker, with the job's limits)
and takes the next partition not yet taken; the worker builds a new reader instance for
it. Batches of every partition go into one bounded queue, which the attempt's single
validation and write path drains, so memory stays bounded by the queue and each session's
credit window, whatever the number of partitions.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import Partition
from dativo_runtime._sandbox import ExtractedBatch, ReaderSession

__all__ = ["PartitionCounts", "PartitionItem", "PartitionedExtraction"]

_PUT_POLL_S = 0.2


@dataclass
class PartitionCounts:
    """What one partition got through in an attempt.

    Attributes:
        name: The partition's name.
        records_read: Records it read.
        records_written: Of those, records handed to the target.
        batches: Batches with rows.
        state: Its last state snapshot (``None`` until it reported one).
        complete: Whether it was extracted to its end.
    """

    name: str
    records_read: int = 0
    records_written: int = 0
    batches: int = 0
    state: dict[str, Any] | None = None
    complete: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the counts as JSON data (``run --json``'s ``partitions``)."""
        return {
            "name": self.name,
            "records_read": self.records_read,
            "records_written": self.records_written,
            "batches": self.batches,
            "complete": self.complete,
            "state": self.state,
        }


@dataclass(frozen=True)
class PartitionItem:
    """One thing an extractor thread hands the write path.

    Attributes:
        partition: The partition it belongs to.
        batch: A batch of it; ``None`` when the partition ended (or failed).
        error: What stopped the partition, if it failed.
    """

    partition: str
    batch: ExtractedBatch | None = None
    error: BaseException | None = None


@dataclass
class _Plan:
    """The partitions not yet taken, shared by the extractor threads."""

    partitions: list[Partition]
    taken: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> Partition | None:
        with self.lock:
            if self.taken >= len(self.partitions):
                return None
            self.taken += 1
            return self.partitions[self.taken - 1]


class PartitionedExtraction:
    """Extract ``partitions`` with up to ``at_once`` sessions; iterate to get their batches.

    Args:
        partitions: The partitions, in the reader's order.
        at_once: How many to extract at once (``source.parallelism``).
        first: The session already open (it listed the partitions); it extracts too.
        open_session: Opens one more reader session (called on an extractor thread).
        stream: The stream's name.
        schema: The Arrow schema dict batches are converted with.
        state_of: The state a partition resumes from (``None`` for a full read).
        on_start: Called with a partition's name when an extractor takes it.
        on_end: Called with a partition's name and whether it was extracted to its end.
    """

    def __init__(
        self,
        partitions: Sequence[Partition],
        *,
        at_once: int,
        first: ReaderSession,
        open_session: Callable[[], ReaderSession],
        stream: str | None,
        schema: pa.Schema | None,
        state_of: Callable[[str], Mapping[str, Any] | None],
        on_start: Callable[[str], None] | None = None,
        on_end: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.plan = _Plan(list(partitions))
        self.at_once = max(1, min(at_once, len(self.plan.partitions)))
        self.first = first
        self.open_session = open_session
        self.stream = stream
        self.schema = schema
        self.state_of = state_of
        self.on_start = on_start
        self.on_end = on_end
        self.sessions: list[ReaderSession] = []
        self._sessions_lock = threading.Lock()
        self._queue: queue.Queue[PartitionItem] = queue.Queue(maxsize=2 * self.at_once)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __iter__(self) -> Iterator[PartitionItem]:
        """Start the extractors and yield every partition's batches and ends as they arrive.

        Raises:
            BaseException: The first error of any partition (the others are stopped).
        """
        if not self.plan.partitions:
            return
        for index in range(self.at_once):
            thread = threading.Thread(
                target=self._extract_all, args=(index,), name=f"dativo-partition-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        running = self.at_once
        while running:
            item = self._queue.get()
            if item.partition == "" and item.batch is None and item.error is None:
                running -= 1  # An extractor found no partition left.
                continue
            if item.error is not None:
                raise item.error
            yield item

    def stop(self) -> None:
        """Stop the extractors (after a failure or an abort); their sessions close with the attempt."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for thread in self._threads:
            thread.join(timeout=2.0)

    def extra_sessions(self) -> list[ReaderSession]:
        """The sessions opened besides the first (the caller closes them)."""
        with self._sessions_lock:
            return list(self.sessions)

    def _put(self, item: PartitionItem) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _extract_all(self, index: int) -> None:
        try:
            session = self.first
            if index > 0:
                session = self.open_session()
                with self._sessions_lock:
                    self.sessions.append(session)
            while not self._stop.is_set():
                partition = self.plan.take()
                if partition is None:
                    break
                if not self._extract_one(session, partition):
                    return
        except BaseException as exc:  # Handed to the write path, which raises it.
            self._put(PartitionItem("?", error=exc))
            return
        self._put(PartitionItem(""))

    def _extract_one(self, session: ReaderSession, partition: Partition) -> bool:
        """Extract one partition into the queue; ``False`` once stopped or failed."""
        name = partition.name
        if self.on_start is not None:
            self.on_start(name)
        complete = False
        try:
            batches = session.extract(
                stream=self.stream, state=self.state_of(name), schema=self.schema, partition=partition
            )
            try:
                for batch in batches:
                    if not self._put(PartitionItem(name, batch=batch)):
                        return False
            finally:
                close = getattr(batches, "close", None)
                if callable(close):
                    close()
            complete = True
        except BaseException as exc:
            self._put(PartitionItem(name, error=exc))
            return False
        finally:
            if self.on_end is not None:
                self.on_end(name, complete)
        return self._put(PartitionItem(name))
