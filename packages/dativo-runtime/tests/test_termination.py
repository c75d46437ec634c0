"""SIGTERM and Ctrl-C stop a run at once, except inside a commit, which finishes first."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from dativo_runtime._engine import _termination
from dativo_runtime._engine._termination import (
    commit_section,
    install_signal_handlers,
    raise_if_requested,
    requested_signal,
)


@pytest.fixture
def handlers() -> Iterator[None]:
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    install_signal_handlers()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _termination._Held.signum = None


@pytest.mark.usefixtures("handlers")
def test_sigterm_outside_a_commit_raises_exit_143_at_once():
    with pytest.raises(SystemExit) as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 0)  # Give the interpreter a chance to run the handler.
    assert stopped.value.code == 143


@pytest.mark.usefixtures("handlers")
@pytest.mark.parametrize(
    ("signum", "raised"), [(signal.SIGTERM, SystemExit), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_signal_inside_a_commit_is_held_until_the_next_checkpoint(signum, raised):
    finished = False
    with commit_section():
        os.kill(os.getpid(), signum)
        signal.sigtimedwait([], 0)
        finished = True
    assert finished, "the commit section ran to its end"
    assert requested_signal() == signum
    with pytest.raises(raised):
        raise_if_requested()
    assert requested_signal() is None
    raise_if_requested()  # Honoured once.


def test_commit_sections_on_other_threads_hold_nothing():
    outcome = []

    def commit() -> None:
        with commit_section():
            outcome.append(_termination._Held.depth)

    thread = threading.Thread(target=commit)
    thread.start()
    thread.join()
    assert outcome == [0]
