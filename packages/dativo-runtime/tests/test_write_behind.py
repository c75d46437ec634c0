"""WriteBehind: writes run in order on one thread, errors come back, a stop drops the queue."""

from __future__ import annotations

import threading

import pytest

from dativo_plugin_sdk import DativoError
from dativo_runtime._engine._write_behind import WriteBehind


def test_writes_run_in_order_on_another_thread() -> None:
    done: list[tuple[int, str]] = []
    behind = WriteBehind(depth=2)
    for number in range(20):
        behind.submit(lambda n=number: done.append((n, threading.current_thread().name)))
    behind.finish()
    assert [n for n, _ in done] == list(range(20))
    assert {name for _, name in done} == {"dativo-writer"}


def test_an_error_is_raised_once_and_later_writes_are_dropped() -> None:
    done: list[int] = []
    behind = WriteBehind(depth=1)
    gate = threading.Event()

    def failing() -> None:
        gate.wait()
        raise DativoError("disk full", error_code="STORAGE_ERROR")

    behind.submit(failing)
    behind.submit(lambda: done.append(1))  # Queued behind the failure: never written.
    gate.set()
    with pytest.raises(DativoError, match="disk full"):
        behind.finish()
    assert done == []
    with pytest.raises(RuntimeError, match="stopped"):
        behind.submit(lambda: done.append(2))
    behind.stop()
    assert done == []


def test_an_error_surfaces_at_the_next_submit() -> None:
    behind = WriteBehind(depth=1)
    failed = threading.Event()

    def failing() -> None:
        try:
            raise DativoError("broken", error_code="STORAGE_ERROR")
        finally:
            failed.set()

    behind.submit(failing)
    failed.wait()
    with pytest.raises(DativoError, match="broken"):
        behind.submit(lambda: None)  # Raises once the error is recorded...
        behind.finish()  # ...and the run never gets past finish() with it.


def test_stop_waits_for_the_running_write_and_drops_the_rest() -> None:
    started = threading.Event()
    release = threading.Event()
    done: list[int] = []

    def slow() -> None:
        started.set()
        release.wait()
        done.append(0)

    behind = WriteBehind(depth=4)
    behind.submit(slow)
    started.wait()
    for number in range(1, 4):
        behind.submit(lambda n=number: done.append(n))
    releaser = threading.Timer(0.05, release.set)
    releaser.start()
    behind.stop()
    releaser.join()
    assert done == [0]


def test_bytes_held_are_bounded_but_a_large_batch_goes_alone() -> None:
    behind = WriteBehind(depth=4, max_bytes=100)
    release = threading.Event()
    started = threading.Event()
    done: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(5)
        done.append("slow")

    behind.submit(slow, 80)  # alone: let through whatever its size
    started.wait(5)
    submitted = threading.Event()

    def second() -> None:
        behind.submit(lambda: done.append("second"), 80)  # 80 + 80 > 100: waits for the first
        submitted.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not submitted.wait(0.3), "a second batch went past the byte budget"
    release.set()
    assert submitted.wait(5)
    thread.join(5)
    behind.submit(lambda: done.append("huge"), 10_000)  # larger than the budget: still written, alone
    behind.finish()
    assert done == ["slow", "second", "huge"]
