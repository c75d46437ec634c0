"""Stopping ``dativo-run`` on ``SIGTERM`` or Ctrl-C at a safe point, never halfway through a commit.

:func:`install_signal_handlers` makes ``SIGTERM`` raise ``SystemExit(143)`` and ``SIGINT``
raise ``KeyboardInterrupt`` in the main thread, wherever it is: the run unwinds, its writer
discards the staged files (nothing is committed) and its locks are released. Inside a
:func:`commit_section` (from the quarantine's commit to the saved state) the signal is
held instead, so a run is committed with its state or not at all; the pipeline and the
CLI honour a held signal at their next checkpoint (:func:`raise_if_requested`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["commit_section", "install_signal_handlers", "raise_if_requested", "requested_signal"]


class _Held:
    """The main thread's commit-section depth and the signal received while inside one."""

    depth = 0
    signum: int | None = None


def _raise_for(signum: int) -> None:
    _Held.signum = None
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _handle(signum: int, frame: FrameType | None) -> None:
    if _Held.depth > 0:
        _Held.signum = signum
        return
    _raise_for(signum)


def install_signal_handlers() -> None:
    """Handle ``SIGTERM`` (exit 143) and ``SIGINT`` (``KeyboardInterrupt``, exit 130) as described above."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handle)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def commit_section() -> Iterator[None]:
    """Hold ``SIGTERM``/``SIGINT`` during the block (main thread only; signals reach no other)."""
    if not _on_main_thread():
        yield
        return
    _Held.depth += 1
    try:
        yield
    finally:
        _Held.depth -= 1


def requested_signal() -> int | None:
    """The signal held by a :func:`commit_section` and not yet honoured, if any."""
    return _Held.signum


def raise_if_requested() -> None:
    """Honour a held signal now (outside commit sections, main thread only)."""
    signum = _Held.signum
    if signum is not None and _Held.depth == 0 and _on_main_thread():
        _raise_for(signum)
