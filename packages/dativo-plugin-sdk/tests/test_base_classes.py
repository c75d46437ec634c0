"""BaseReader, BaseWriter, results, schema types, State and batch helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import (
    BaseReader,
    BaseWriter,
    Column,
    ColumnType,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    State,
    is_arrow_batch,
    records_from_batch,
)


class Numbers(BaseReader):
    __version__ = "1.0.0"
    closed = False

    def extract(self, state: State | None = None) -> Iterator[list[dict[str, Any]]]:
        start = state.get("last", -1) + 1 if state else 0
        for low in range(start, 10, 4):
            batch = [{"n": n} for n in range(low, min(low + 4, 10))]
            yield batch
            if state is not None:
                state.set("last", batch[-1]["n"])

    def close(self) -> None:
        self.closed = True


class Memory(BaseWriter):
    __version__ = "1.0.0"

    def __init__(self, config: dict[str, Any], schema: Any = None) -> None:
        super().__init__(config, schema)
        self.staged: list[dict[str, Any]] = []
        self.aborted = False

    def write_batch(self, records: Any, file_counter: int) -> list[dict[str, Any]]:
        rows = records_from_batch(records)
        self.staged.extend(rows)
        return [{"path": f"mem://{file_counter}", "record_count": len(rows), "size_bytes": 0}]

    def abort(self) -> None:
        self.aborted = True


def test_base_reader_is_abstract_and_defaults_are_sensible() -> None:
    with pytest.raises(TypeError):
        BaseReader({})  # type: ignore[abstract]
    reader = Numbers({"a": 1})
    assert reader.config == {"a": 1}
    result = reader.check_connection()
    assert isinstance(result, ConnectionTestResult)
    assert result.success is False
    assert result.error_code == "NOT_IMPLEMENTED"
    assert reader.discover().objects == []
    assert reader.get_total_records_estimate() is None


def test_reader_config_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        Numbers(["x"])  # type: ignore[arg-type]


def test_reader_context_manager_closes() -> None:
    with Numbers({}) as reader:
        assert sum(len(b) for b in reader.extract()) == 10
    assert reader.closed


def test_state_resume() -> None:
    state = State(stream="numbers")
    reader = Numbers({})
    batches = iter(reader.extract(state))
    next(batches)
    assert "last" not in state  # progress is recorded after the yield, when the next batch is asked for
    next(batches)
    assert state.get("last") == 3
    rest = [r["n"] for b in Numbers({}).extract(State(state.to_dict())) for r in b]
    assert rest == list(range(4, 10))


def test_writer_defaults_and_context_manager_aborts_on_error() -> None:
    writer = Memory({"path": "x"})
    meta = writer.write_batch([{"a": 1}], 0)
    assert writer.commit_files(meta) == {"files_committed": 1}
    with pytest.raises(RuntimeError), Memory({}) as failing:
        raise RuntimeError("boom")
    assert failing.aborted
    with pytest.raises(TypeError):
        BaseWriter({})  # type: ignore[abstract]


def test_results_round_trip() -> None:
    result = ConnectionTestResult(False, "nope", "AUTHENTICATION_FAILED", {"host": "h"}, False)
    assert ConnectionTestResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    stream = DiscoveredStream(
        "orders",
        (Column("id", "integer", nullable=False), Column("at", ColumnType.TIMESTAMP)),
        primary_key="id",
        cursor_field="at",
    )
    discovery = DiscoveryResult([stream], {"v": 1})
    assert DiscoveryResult.from_dict(json.loads(json.dumps(discovery.to_dict()))) == discovery
    assert discovery.stream("orders").column("id").nullable is False
    assert stream.primary_key == ("id",)


def test_discovery_accepts_dicts_and_required() -> None:
    result = DiscoveryResult.from_dict(
        {"objects": [{"name": "s", "schema": {"columns": [{"name": "a", "type": "json", "required": True}]}}]}
    )
    assert result.objects[0].schema[0] == Column("a", ColumnType.JSON, nullable=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "non-empty"),
        ({"name": "s", "schema": [Column("a", "string"), Column("a", "integer")]}, "duplicate column"),
        ({"name": "s", "schema": [Column("a", "string")], "primary_key": ["b"]}, "primary key"),
        ({"name": "s", "schema": [Column("a", "string")], "cursor_field": "z"}, "cursor field"),
    ],
)
def test_invalid_streams(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DiscoveredStream(**kwargs)


def test_unknown_column_type_lists_the_vocabulary() -> None:
    with pytest.raises(
        ValueError, match="string, integer, float, boolean, timestamp, date, decimal, binary, json"
    ):
        Column("a", "varchar")


def test_duplicate_streams_refused() -> None:
    with pytest.raises(ValueError, match="duplicate stream"):
        DiscoveryResult([DiscoveredStream("a"), DiscoveredStream("a")])


def test_state_refuses_non_json_and_copies() -> None:
    import datetime

    state = State()
    with pytest.raises(TypeError, match="isoformat"):
        state.set("at", datetime.datetime.now())
    with pytest.raises(TypeError):
        state.set(1, "x")  # type: ignore[arg-type]
    value = {"a": [1]}
    state.set("v", value)
    value["a"].append(2)
    assert state.get("v") == {"a": [1]}
    got = state.get("v")
    got["a"].append(3)
    assert state.get("v") == {"a": [1]}
    assert "v" in state
    assert state.keys() == ["v"]
    assert State()  # truthy even when empty
    state.delete("v")
    assert state.to_dict() == {}


json_scalars = (
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False)
)


@given(
    st.dictionaries(st.text(), st.recursive(json_scalars, lambda c: st.lists(c, max_size=3), max_leaves=6))
)
def test_state_round_trip(values: dict[str, Any]) -> None:
    state = State(values, stream="s")
    assert State.from_dict(json.loads(json.dumps(state.to_dict())), stream="s") == state


def test_batch_helpers_without_pyarrow() -> None:
    class Capsule:
        def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
            return None

        def to_pylist(self) -> list[dict[str, Any]]:
            return [{"x": 1}]

    assert is_arrow_batch(Capsule())
    assert not is_arrow_batch([{"x": 1}])
    assert records_from_batch(Capsule()) == [{"x": 1}]
    assert records_from_batch([{"x": 1}]) == [{"x": 1}]
    with pytest.raises(TypeError, match="record 1"):
        records_from_batch([{"x": 1}, 5])
    with pytest.raises(TypeError, match="list of dict records"):
        records_from_batch("nope")


def test_records_from_pyarrow_batch() -> None:
    pa = pytest.importorskip("pyarrow")
    batch = pa.record_batch({"x": [1, 2]})
    assert is_arrow_batch(batch)
    assert records_from_batch(batch) == [{"x": 1}, {"x": 2}]
