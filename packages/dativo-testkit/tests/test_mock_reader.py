"""MockReader: deterministic records, every column type, incremental reads and injected faults."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,  # noqa: A004
    RateLimitError,
    State,
    TransientError,
    records_from_batch,
)
from dativo_testkit import ALL_TYPES_SCHEMA, MockReader, find_schema_violations


def _read(reader: MockReader, state: State | None = None) -> list[list[dict[str, Any]]]:
    return [records_from_batch(batch) for batch in reader.extract(state=state)]


def test_defaults_give_every_column_type_in_batches() -> None:
    reader = MockReader(config={})
    batches = _read(reader)
    assert [len(b) for b in batches] == [10] * 10
    records = [r for b in batches for r in b]
    assert records == reader.expected_records()
    assert {c.type for c in reader.discover().objects[0].schema} == {c.type for c in ALL_TYPES_SCHEMA}
    assert find_schema_violations(records, ALL_TYPES_SCHEMA) == []
    assert reader.check_connection().success


def test_records_depend_only_on_seed_and_position() -> None:
    small_batches = _read(MockReader(config={"records": 30, "batch_size": 4, "seed": 9}))
    one_batch = _read(MockReader(config={"records": 30, "batch_size": 30, "seed": 9}))
    assert [r for b in small_batches for r in b] == one_batch[0]
    assert one_batch != _read(MockReader(config={"records": 30, "batch_size": 30, "seed": 10}))


def test_custom_schema_and_keys() -> None:
    config = {
        "schema": [
            {"name": "code", "type": "string", "nullable": False},
            {"name": "day", "type": "date", "nullable": False},
            {"name": "flag", "type": "boolean"},
        ],
        "primary_key": "code",
        "cursor_field": "day",
        "records": 5,
        "stream": "codes",
    }
    reader = MockReader(config=config)
    stream = reader.discover().stream("codes")
    assert stream.primary_key == ("code",)
    assert stream.cursor_field == "day"
    records = _read(reader)[0]
    assert [r["code"] for r in records] == [f"{i:012d}" for i in range(1, 6)]


def test_incremental_read_resumes_after_the_state() -> None:
    reader = MockReader(config={"records": 25, "batch_size": 10})
    state = State(stream="mock_records")
    first = [r["id"] for b in _read(reader, state) for r in b]
    assert first == list(range(1, 26))
    assert state.to_dict() == {"updated_at": "2024-01-01T00:00:24+00:00"}
    assert _read(reader, State(state.to_dict())) == []
    halfway = State({"updated_at": "2024-01-01T00:00:09+00:00"})
    assert [r["id"] for b in _read(reader, halfway) for r in b] == list(range(11, 26))


def test_a_cursor_the_source_never_produced_is_a_configuration_error() -> None:
    reader = MockReader(config={"cursor_field": "id"})
    with pytest.raises(ConfigurationError, match="not a cursor"):
        next(reader.extract(state=State({"id": "yesterday"})))


def test_arrow_mode_yields_record_batches() -> None:
    import pyarrow as pa

    reader = MockReader(config={"records": 12, "batch_size": 5, "arrow": True})
    batches = list(reader.extract())
    assert all(isinstance(b, pa.RecordBatch) for b in batches)
    assert [b.num_rows for b in batches] == [5, 5, 2]
    assert find_schema_violations(batches[0], ALL_TYPES_SCHEMA) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"recods": 5}, "does not know the config key"),
        ({"records": -1}, "'records' must be an integer >= 0"),
        ({"batch_size": 0}, "'batch_size' must be an integer >= 1"),
        ({"malformed_rate": 1.5}, "'malformed_rate' must be a number from 0 to 1"),
        ({"check_connection_error": "timeout"}, "'authentication' or 'connection'"),
        ({"primary_key": ["missing"]}, "'missing' (primary key or cursor) is not in the schema"),
        ({"cursor_field": "active"}, "must be one of integer"),
        ({"schema": [{"name": "x"}]}, "must be a list of columns"),
        ({"schema": []}, "at least one column"),
        ({"stream": ""}, "'stream' must be a non-empty string"),
    ],
)
def test_bad_configs_raise_configuration_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        MockReader(config=config)
    assert message in raised.value.message


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("authentication", AuthenticationError, "AUTHENTICATION_FAILED"),
        ("connection", ConnectionError, "CONNECTION_FAILED"),
    ],
)
def test_unreachable_source(kind: str, error: type[Exception], code: str) -> None:
    reader = MockReader(config={"check_connection_error": kind})
    result = reader.check_connection()
    assert not result.success
    assert result.error_code == code
    with pytest.raises(error):
        reader.discover()
    with pytest.raises(error):
        next(reader.extract())


def test_transient_and_rate_limit_errors_after_k_batches() -> None:
    transient = MockReader(config={"records": 50, "transient_error_after": 2, "retry_after": 0.5})
    iterator = transient.extract()
    assert len([next(iterator) for _ in range(2)]) == 2
    with pytest.raises(TransientError) as raised:
        next(iterator)
    assert raised.value.retry_after == 0.5
    assert raised.value.retryable
    limited = MockReader(config={"records": 50, "rate_limit_after": 0})
    with pytest.raises(RateLimitError) as limit:
        next(limited.extract())
    assert limit.value.retry_after == 1.0


def test_faults_once_file_lets_a_retry_succeed(tmp_path: Path) -> None:
    config = {"records": 30, "transient_error_after": 1, "faults_once_file": str(tmp_path / "fired")}
    state = State()
    with pytest.raises(TransientError):
        for _ in MockReader(config=config).extract(state=state):
            pass
    assert (tmp_path / "fired").exists()
    rest = [r["id"] for b in _read(MockReader(config=config), state) for r in b]
    assert rest == list(range(11, 31))


def test_malformed_records_have_wrong_types_or_miss_required_columns() -> None:
    reader = MockReader(config={"records": 200, "malformed_rate": 0.25})
    records = [r for b in _read(reader) for r in b]
    bad = [r for r in records if find_schema_violations([r], ALL_TYPES_SCHEMA)]
    assert 25 < len(bad) < 80
    problems = {v.problem.split(",")[0] for r in bad for v in find_schema_violations([r], ALL_TYPES_SCHEMA)}
    assert "required column is missing" in problems
    assert any(p.startswith("expected") for p in problems)
    assert bad == [r for b in _read(reader) for r in b if find_schema_violations([r], ALL_TYPES_SCHEMA)]


def test_malformed_arrow_records_are_nulls_in_required_columns() -> None:
    reader = MockReader(config={"records": 100, "malformed_rate": 0.2, "arrow": True})
    problems = [v.problem for b in reader.extract() for v in find_schema_violations(b, ALL_TYPES_SCHEMA)]
    assert problems
    assert set(problems) == {"required column is null"}


def test_slow_batches_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("dativo_testkit._mock_reader.time.sleep", slept.append)
    _read(MockReader(config={"records": 20, "slow_batch_seconds": 0.25}))
    assert slept == [0.25, 0.25]


def test_crash_after_k_batches_kills_the_process() -> None:
    script = textwrap.dedent(
        """
        from dativo_testkit import MockReader
        for number, batch in enumerate(MockReader(config={"records": 50, "crash_after": 2}).extract()):
            print("batch", number, flush=True)
        print("finished", flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.split("\n")[:2] == ["batch 0", "batch 1"]
    assert "finished" not in result.stdout
    assert "batch 2" not in result.stdout
    assert result.returncode in (-9, 137)
