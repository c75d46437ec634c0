"""Writing batches on a thread of their own, a bounded number of batches behind the reader.

The pipeline hands each validated batch to :class:`WriteBehind` and goes back to the
reader at once: Parquet encoding and compression release the GIL, so the target writes
batch ``n`` while the source (an in-process plugin, or the frames of a sandbox worker)
produces batch ``n + 1``. At most ``depth`` batches, and beyond the first at most
``max_bytes`` of them, wait or are being written, so memory stays bounded. The
first error of a write is raised in the pipeline's thread at its next call, and nothing
queued after it is written.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable

__all__ = ["WRITE_BEHIND_BYTES", "WriteBehind"]

WRITE_BEHIND_BYTES = 256 << 20
"""Bytes of batches queued or being written beyond the first (a larger batch goes alone)."""

_STOP = None


class WriteBehind:
    """Runs write calls in order on one background thread, at most ``depth`` calls behind.

    Args:
        depth: Calls that may wait; :meth:`submit` blocks while that many are queued.
        name: The thread's name.
        max_bytes: Bytes of the calls queued or running; :meth:`submit` blocks while a call
            would take them past it (a call alone is always let through).
    """

    def __init__(
        self, depth: int = 2, *, name: str = "dativo-writer", max_bytes: int = WRITE_BEHIND_BYTES
    ) -> None:
        self._queue: queue.Queue[tuple[Callable[[], object], int] | None] = queue.Queue(maxsize=max(1, depth))
        self._max_bytes = max_bytes
        self._held = 0
        self._room = threading.Condition()
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._discard = False

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            call, size = item
            try:
                if self._error is None and not self._discard:  # after a failure nothing more is written
                    call()
            except BaseException as exc:
                self._error = exc
            finally:
                self._release(size)

    def _release(self, size: int) -> None:
        with self._room:
            self._held -= size
            self._room.notify_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._discard = True  # It is reported once; the calls queued behind it are dropped.
            raise error

    def submit(self, call: Callable[[], object], size: int = 0) -> None:
        """Queue one write call (blocks while ``depth`` calls wait, or ``max_bytes`` are held).

        Args:
            call: The write.
            size: The bytes it holds (its batch's ``nbytes``) until it has run.

        Raises:
            BaseException: The error of an earlier call, which stopped the writing.
        """
        self._raise_error()
        if self._discard:
            raise RuntimeError("the writer was stopped")
        if self._thread is None:
            context = contextvars.copy_context()  # The run's log context follows the writes.
            self._thread = threading.Thread(
                target=context.run, args=(self._run,), name=self._name, daemon=True
            )
            self._thread.start()
        with self._room:
            while self._held and self._held + size > self._max_bytes and self._error is None:
                self._room.wait(timeout=1.0)
            if self._error is None:
                self._held += size
        self._raise_error()
        self._queue.put((call, size))

    def finish(self) -> None:
        """Wait until every queued call has run.

        Raises:
            BaseException: The error of a call, which stopped the writing.
        """
        self._join()
        self._raise_error()

    def stop(self) -> None:
        """Drop the queued calls and wait for the one running (on the way out of a failed run)."""
        self._discard = True
        if self._thread is not None:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _STOP:
                    self._release(item[1])
        self._join()

    def _join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join()
