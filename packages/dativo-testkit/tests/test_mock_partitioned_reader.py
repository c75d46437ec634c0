"""MockPartitionedReader: disjoint id ranges, per-partition incremental state, the whole stream for old runtimes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import (
    WHOLE_STREAM,
    ConfigurationError,
    Partition,
    PluginVersionError,
    State,
    check_compatibility,
)
from dativo_testkit import ALL_TYPES_SCHEMA, MockPartitionedReader, find_schema_violations

sizes = st.fixed_dictionaries(
    {
        "partitions": st.integers(1, 6),
        "records_per_partition": st.integers(1, 25),
        "batch_size": st.integers(1, 12),
        "seed": st.integers(0, 5),
    }
)


def _extract(
    config: dict[str, Any], partition: Partition | None = None, state: State | None = None
) -> list[list[dict[str, Any]]]:
    reader = MockPartitionedReader(config)
    if partition is not None:
        reader.partition = partition
    return [list(batch) for batch in reader.extract(state)]  # type: ignore[arg-type]


def _ids(batches: list[list[dict[str, Any]]]) -> list[int]:
    return [r["id"] for b in batches for r in b]


@given(sizes)
@settings(max_examples=40, deadline=None)
def test_partitions_are_disjoint_id_ranges_that_together_are_the_whole_stream(config: dict[str, Any]) -> None:
    n, size = config["partitions"], config["records_per_partition"]
    partitions = MockPartitionedReader(config).partitions()
    assert len(partitions) == n
    assert len({p.name for p in partitions}) == n
    assert not any(p.is_whole_stream for p in partitions)
    whole = _extract(config)
    assert _ids(whole) == list(range(1, n * size + 1))
    pieces = [_extract(config, p) for p in partitions]
    assert [r for batches in pieces for b in batches for r in b] == [r for b in whole for r in b]
    for k, (partition, batches) in enumerate(zip(partitions, pieces, strict=True)):
        assert _ids(batches) == list(range(k * size + 1, (k + 1) * size + 1)), partition.name
        assert all(1 <= len(b) <= config["batch_size"] for b in batches)
    # The whole stream batches like its partitions: no batch spans two of them.
    assert whole == [b for batches in pieces for b in batches]


@given(sizes, st.data())
@settings(max_examples=40, deadline=None)
def test_a_partition_resumes_from_its_own_state(config: dict[str, Any], data: st.DataObject) -> None:
    partitions = MockPartitionedReader(config).partitions()
    partition = data.draw(st.sampled_from(partitions))
    state = State(stream="mock_partitioned")
    full = _extract(config, partition, state)
    assert state.get("id") == _ids(full)[-1]
    assert _extract(config, partition, State(state.to_dict())) == []
    cut = data.draw(st.integers(0, len(full)))
    saved = State({"id": _ids(full[:cut])[-1]}) if cut else State()
    assert _extract(config, partition, saved) == full[cut:]


@given(sizes, st.data())
@settings(max_examples=40, deadline=None)
def test_partitions_keep_the_place_of_an_unpartitioned_read(
    config: dict[str, Any], data: st.DataObject
) -> None:
    """A partition with no state of its own starts from the stream's unpartitioned state (the contract)."""
    whole = _extract(config)
    cut = data.draw(st.integers(1, len(whole)))
    cursor = _ids(whole[:cut])[-1]
    rest = [
        i
        for p in MockPartitionedReader(config).partitions()
        for i in _ids(_extract(config, p, State({"id": cursor})))
    ]
    assert rest == _ids(whole)[cursor:]


def test_records_have_every_column_type_and_match_the_schema() -> None:
    reader = MockPartitionedReader({"partitions": 2, "records_per_partition": 15})
    records = [r for b in _extract({"partitions": 2, "records_per_partition": 15}) for r in b]
    assert records == reader.expected_records()
    assert find_schema_violations(records, ALL_TYPES_SCHEMA) == []
    stream = reader.discover().stream("mock_partitioned")
    assert (stream.primary_key, stream.cursor_field) == (("id",), "id")
    assert reader.check_connection().success
    second = reader.partitions()[1]
    assert _extract({"partitions": 2, "records_per_partition": 15}, second) == [
        reader.expected_records(second)[:10],
        reader.expected_records(second)[10:],
    ]


def test_not_incremental_neither_reads_nor_sets_the_state() -> None:
    config = {"partitions": 2, "records_per_partition": 5, "incremental": False}
    state = State({"id": 3})
    assert _ids(_extract(config, state=state)) == list(range(1, 11))
    assert state.to_dict() == {"id": 3}


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"partitons": 2}, "does not know the config key(s) 'partitons'"),
        ({"partitions": 0}, "'partitions' must be an integer >= 1"),
        ({"records_per_partition": True}, "'records_per_partition' must be an integer >= 1"),
        ({"batch_size": 0}, "'batch_size' must be an integer >= 1"),
        ({"incremental": "yes"}, "'incremental' must be true or false"),
        ({"stream": ""}, "'stream' must be a non-empty string"),
    ],
)
def test_bad_config_is_a_configuration_error(config: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        MockPartitionedReader(config)
    assert words in caught.value.message


def test_a_partition_it_never_listed_or_a_foreign_cursor_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'elsewhere' has no id range"):
        _extract({}, Partition("elsewhere", {"path": "x.csv"}))
    with pytest.raises(ConfigurationError, match="is not an id"):
        _extract({}, state=State({"id": "2024-01-01"}))


def test_requires_sdk_1_1_so_an_older_runtime_refuses_it() -> None:
    assert MockPartitionedReader.requires_sdk == ">=1.1,<2"
    check_compatibility(MockPartitionedReader)
    with pytest.raises(PluginVersionError, match=re.escape(">=1.1,<2")):
        check_compatibility(MockPartitionedReader, "1.0.0")
    assert MockPartitionedReader({}).partition.name == WHOLE_STREAM
