"""The deterministic work meters behind reader.extract_streams, and the per-check time limit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dativo_plugin_sdk import State
from dativo_testkit._time_limit import CheckTimeoutError, call_with_time_limit
from dativo_testkit._work_meter import BatchWork, OpcodeCounter, process_counters, reading_overhead


def _lazy(state: State) -> Iterator[list[dict[str, Any]]]:
    for low in range(0, 100, 25):
        yield [{"id": i, "double": i * 2} for i in range(low, low + 25)]
        state.set("id", low + 24)


def _buffered(state: State) -> Iterator[list[dict[str, Any]]]:
    everything = list(_lazy(State()))
    for batch in everything:
        yield batch
        state.set("id", batch[-1]["id"])


def _costs(generator: Iterator[Any], cap: int = 10**6) -> list[int]:
    costs = []
    for _ in range(4):
        counter = OpcodeCounter(cap)
        counter.measure_next(generator)
        costs.append(counter.count)
    return costs


def test_lazy_batches_cost_work_per_record_buffered_ones_do_not() -> None:
    lazy = _costs(_lazy(State()))
    buffered = _costs(_buffered(State()))
    assert all(cost >= 2 * 25 for cost in lazy[1:])
    assert all(cost < 25 for cost in buffered[1:])
    assert buffered[0] > 10 * max(buffered[1:])


def test_the_counter_stops_at_its_cap_and_leaves_no_tracer_behind() -> None:
    import sys

    assert _costs(_lazy(State()), cap=30) == [30, 30, 30, 30]
    assert sys.gettrace() is None or "coverage" in repr(sys.gettrace())


class _LookalikeState:
    """Does what State.set does, but is not the SDK's State, so its work is counted."""

    def set(self, key: str, value: Any) -> None:
        self.value = json.loads(json.dumps({key: value}))


def test_state_bookkeeping_is_not_counted() -> None:
    def setting_state(state: Any) -> Iterator[int]:
        yield 0
        for _ in range(50):
            state.set("key", {"deep": list(range(20))})
        yield 1

    counts = []
    for state in (State(), _LookalikeState()):
        generator = setting_state(state)
        next(generator)
        counter = OpcodeCounter(10**6)
        counter.measure_next(generator)
        counts.append(counter.count)
    sdk_state, lookalike = counts
    assert lookalike > 2 * sdk_state


@pytest.mark.parametrize(
    ("work", "buffered"),
    [
        (BatchWork(5000, 3, 75, 60, None, None), True),
        (BatchWork(5000, 3, 75, 600, None, None), False),
        (BatchWork(5000, 3, 75, 60, 4096, None), False),
        (BatchWork(5000, 3, 75, 60, 0, 2), False),
        (BatchWork(150, 3, 75, 60, 0, 0), False),
    ],
)
def test_verdict(work: BatchWork, buffered: bool) -> None:
    assert (not work.streaming_evidence()) is buffered


def test_process_counters_measure_reads_and_arrow() -> None:
    import pyarrow as pa

    pa.array([0])  # pyarrow reads some files the first time it allocates
    overhead = reading_overhead()
    before = process_counters()
    pa.array(list(range(1000)))
    work = process_counters().since(before)
    assert work.arrow_bytes is not None
    assert work.arrow_bytes >= 8000
    if overhead.read_syscalls is not None:
        assert work.read_syscalls == overhead.read_syscalls


def test_time_limit_returns_raises_and_abandons() -> None:
    assert call_with_time_limit(lambda: 42, 5, name="quick") == 42
    with pytest.raises(KeyError):
        call_with_time_limit(lambda: {}["x"], 5, name="raises")
    release = threading.Event()
    with pytest.raises(CheckTimeoutError, match=r"did not finish within 0\.1s"):
        call_with_time_limit(release.wait, 0.1, name="hangs")
    release.set()


def test_calls_share_one_thread_until_one_overruns() -> None:
    """Regression: a thread per check made pyarrow 26's CSV reader abort the process at exit."""
    first = call_with_time_limit(threading.current_thread, 5, name="first")
    assert call_with_time_limit(threading.current_thread, 5, name="second") is first
    with pytest.raises(KeyError):
        call_with_time_limit(lambda: {}["x"], 5, name="raises")
    assert call_with_time_limit(threading.current_thread, 5, name="after an error") is first
    release = threading.Event()
    with pytest.raises(CheckTimeoutError):
        call_with_time_limit(release.wait, 0.1, name="hangs")
    fresh = call_with_time_limit(threading.current_thread, 5, name="after a timeout")
    release.set()
    assert fresh is not first
    assert call_with_time_limit(threading.current_thread, 5, name="again") is fresh
