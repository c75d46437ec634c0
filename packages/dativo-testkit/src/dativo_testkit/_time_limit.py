"""Running a call in a worker thread with a deadline, so a hanging plugin cannot hang the harness.

Calls share one long-lived worker thread; a new one is started only when a call overran its
deadline and took its thread with it. Native libraries keep per-thread state: pyarrow 26's
CSV reader, used from many short-lived threads, aborts the process at exit ("terminate
called without an active exception"), which one thread per check used to provoke.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

__all__ = ["CheckTimeoutError", "call_with_time_limit"]

T = TypeVar("T")


class CheckTimeoutError(TimeoutError):
    """A call did not finish within its time limit; its thread was left behind."""


class _Worker:
    """A daemon thread that runs the calls put on its queue, one at a time."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="dativo-check", daemon=True).start()

    def _serve(self) -> None:
        while True:
            self.calls.get()()


_idle_worker: _Worker | None = None
_idle_lock = threading.Lock()


def _take_worker() -> _Worker:
    global _idle_worker
    with _idle_lock:
        worker, _idle_worker = _idle_worker, None
    return worker if worker is not None else _Worker()


def _give_back(worker: _Worker) -> None:
    global _idle_worker
    with _idle_lock:
        if _idle_worker is None:
            _idle_worker = worker


class _Outcome(Generic[T]):
    def __init__(self) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None


def call_with_time_limit(function: Callable[[], T], seconds: float, *, name: str) -> T:
    """Run ``function`` in the worker thread and wait at most ``seconds`` for it.

    A call still running at the deadline is abandoned with its thread: Python cannot stop
    a thread, so it keeps running in the background (as a daemon, it does not keep the
    process alive), and the next call gets a new worker.

    Args:
        function: What to run.
        seconds: The time limit.
        name: Used in the thread's name.

    Returns:
        What ``function`` returned.

    Raises:
        CheckTimeoutError: If ``function`` is still running at the deadline.
        BaseException: Whatever ``function`` raised, re-raised in the caller's thread.
    """
    outcome: _Outcome[T] = _Outcome()
    finished = threading.Event()

    def run() -> None:
        try:
            outcome.value = function()
        except BaseException as exc:
            outcome.error = exc
        finally:
            finished.set()

    worker = _take_worker()
    worker.calls.put(run)
    if not finished.wait(seconds):
        raise CheckTimeoutError(f"{name} did not finish within {seconds:g}s")
    _give_back(worker)
    if outcome.error is not None:
        raise outcome.error
    return cast(T, outcome.value)
