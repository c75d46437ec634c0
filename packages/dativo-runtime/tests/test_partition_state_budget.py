"""A sandboxed reader's partition states, held together to what one request can send back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import ConfigurationError, PluginError
from dativo_runtime._engine._partition_state_budget import PartitionStateBudget
from dativo_runtime._sandbox.host._worker_messages import (
    MAX_PARTITION_STATES_BYTES,
    MAX_PARTITION_STATES_CONTAINERS,
    MAX_STATE_BYTES,
)
from dativo_runtime._worker._protocol import MAX_CONTROL_BYTES, decode_control, encode_control

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)
STATES = st.dictionaries(
    st.text(max_size=6), st.dictionaries(st.text(max_size=4), JSON, max_size=3), max_size=5
)


def _size(states: dict[str, Any]) -> int:
    return len(json.dumps(states, separators=(",", ":")))


@given(
    saved=STATES,
    arriving=st.lists(st.tuples(st.text(max_size=6), st.dictionaries(st.text(max_size=4), JSON))),
)
def test_the_running_count_is_the_size_of_what_is_saved(saved, arriving):
    budget = PartitionStateBudget(saved, ref="r", stream="s")
    merged = dict(saved)
    for name, state in arriving:
        budget.add(name, state)
        merged[name] = state
    text = json.dumps(merged, separators=(",", ":"))
    assert budget.bytes == len(text)
    assert budget.containers == text.count("[") + text.count("{")


def test_states_past_the_limit_are_the_plugins_error():
    budget = PartitionStateBudget({}, ref="fat.py:Reader", stream="s")
    blob = "x" * (MAX_STATE_BYTES - 100)
    budget.add("p0", {"blob": blob})
    budget.add("p0", {"blob": blob})  # Replaces p0's state: counted once.
    budget.add("p1", {"blob": blob})
    budget.add("p2", {"blob": blob})
    with pytest.raises(
        PluginError, match=r"partition states of stream 's' add up to .* reached with partition 'p3'"
    ) as info:
        budget.add("p3", {"blob": blob})
    assert info.value.details["limit_bytes"] == MAX_PARTITION_STATES_BYTES
    assert info.value.details["partition"] == "p3"


def test_containers_past_the_limit_are_the_plugins_error():
    budget = PartitionStateBudget({}, ref="r", stream="s")
    budget.add("p0", {"l": [[] for _ in range(MAX_PARTITION_STATES_CONTAINERS // 2)]})
    with pytest.raises(PluginError, match="arrays and objects"):
        budget.add("p1", {"l": [[] for _ in range(MAX_PARTITION_STATES_CONTAINERS // 2)]})


def test_saved_states_count_and_too_many_are_a_configuration_error():
    blob = "x" * (MAX_STATE_BYTES - 100)
    saved = {f"p{i}": {"blob": blob} for i in range(3)}
    budget = PartitionStateBudget(saved, ref="r", stream="s")
    budget.check_saved()
    with pytest.raises(PluginError):
        budget.add("new", {"blob": blob})
    legacy = PartitionStateBudget({**saved, "p3": {"blob": blob}}, ref="r", stream="s")
    with pytest.raises(ConfigurationError, match="dativo-run state reset"):
        legacy.check_saved()


def test_the_states_to_save_are_checked_whole():
    blob = "x" * (MAX_STATE_BYTES - 100)
    budget = PartitionStateBudget({f"p{i}": {"blob": blob} for i in range(3)}, ref="r", stream="s")
    budget.check_to_save({"p0": {"cursor": 1}, "p1": {"blob": blob}})
    with pytest.raises(PluginError, match="to save hold"):
        budget.check_to_save({"p3": {"blob": blob}})


def test_states_at_the_limit_fit_the_request_that_sends_them_back():
    # The worst case the limits allow: states of exactly the limit, in as many containers.
    # The mapping, p's state, its list and q's state hold 4 of the containers.
    states: dict[str, Any] = {"p": {"l": [[]] * (MAX_PARTITION_STATES_CONTAINERS - 4)}}
    states["q"] = {"pad": "x" * (MAX_PARTITION_STATES_BYTES - _size(states) - len(',"q":{"pad":""}'))}
    assert _size(states) == MAX_PARTITION_STATES_BYTES
    budget = PartitionStateBudget(states, ref="r", stream="s")
    assert (budget.bytes, budget.containers) == (MAX_PARTITION_STATES_BYTES, MAX_PARTITION_STATES_CONTAINERS)
    budget.check_saved()
    request = {
        "op": "partitions",
        "states": states,
        "trace": {"traceparent": "0" * 55, "tracestate": "x" * 512},
    }
    frame = encode_control(request)
    assert len(frame) <= MAX_CONTROL_BYTES
    assert decode_control(frame)["states"] == states
    assert MAX_STATE_BYTES < MAX_PARTITION_STATES_BYTES
