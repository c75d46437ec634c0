"""Running a call in a worker thread with a deadline, so a hanging plugin cannot hang the harness."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

__all__ = ["CheckTimeoutError", "call_with_time_limit"]

T = TypeVar("T")


class CheckTimeoutError(TimeoutError):
    """A call did not finish within its time limit; its thread was left behind."""


class _Outcome(Generic[T]):
    def __init__(self) -> None:
        self.value: T | None = None
        self.error: BaseException | None = None


def call_with_time_limit(function: Callable[[], T], seconds: float, *, name: str) -> T:
    """Run ``function`` in a daemon thread and wait at most ``seconds`` for it.

    A call still running at the deadline is abandoned: Python cannot stop a thread, so
    it keeps running in the background (as a daemon, it does not keep the process alive).

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

    def run() -> None:
        try:
            outcome.value = function()
        except BaseException as exc:
            outcome.error = exc

    worker = threading.Thread(target=run, name=f"dativo-check:{name}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise CheckTimeoutError(f"{name} did not finish within {seconds:g}s")
    if outcome.error is not None:
        raise outcome.error
    return cast(T, outcome.value)
