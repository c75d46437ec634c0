"""Partition: a stable name, JSON-able params, and the default of one whole-stream partition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import WHOLE_STREAM, BaseReader, Partition, State

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


class _Plain(BaseReader):
    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"partition": self.partition.name}]


def test_default_is_one_whole_stream_partition() -> None:
    reader = _Plain({})
    assert reader.partitions() == [Partition(WHOLE_STREAM)]
    assert reader.partition.is_whole_stream
    assert reader.partition_states == {}
    assert list(reader.extract()) == [[{"partition": "*"}]]


@given(st.text(min_size=1, max_size=50), st.dictionaries(st.text(max_size=10), json_values, max_size=4))
def test_round_trips_through_json_data(name: str, params: dict[str, Any]) -> None:
    partition = Partition(name, params)
    assert Partition.from_dict(partition.to_dict()) == partition
    assert hash(partition) == hash(Partition(name, params))


@pytest.mark.parametrize("name", ["", "x" * 1025])
def test_refuses_empty_or_long_names(name: str) -> None:
    with pytest.raises(ValueError, match="1 to 1024"):
        Partition(name)


def test_refuses_params_that_are_not_json() -> None:
    with pytest.raises(TypeError, match="JSON-able"):
        Partition("p", {"when": object()})
    with pytest.raises(TypeError, match="must be a string"):
        Partition(3)  # type: ignore[arg-type]


def test_params_are_a_copy() -> None:
    params = {"files": ["a.csv"]}
    partition = Partition("p", params)
    params["files"].append("b.csv")
    assert partition.params == {"files": ["a.csv"]}
