"""The airbyte reader against a fake source installed into a plugin environment (see conftest.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError, PluginError, State, TransientError
from dativo_runtime._exit_codes import ExitCode, exit_code_for
from dativo_runtime._plugins._config_spec import check_config_schema, config_problems, secret_paths
from dativo_runtime.connectors import AirbyteReader
from dativo_runtime.connectors._airbyte_protocol import AirbyteStateKeeper
from dativo_runtime.connectors._config_schemas import AIRBYTE_CONFIG_SCHEMA

pytestmark = pytest.mark.timeout(120)


def reader(mode: str = "good", **config: Any) -> AirbyteReader:
    source_config = {"mode": mode, "count": 5, "api_key": "sekret-key-1", **config.pop("source", {})}
    base = {"package": "dativo-fake-taps==0.1.0", "executable": "source-fake", "stream": "users"}
    return AirbyteReader({**base, "config": source_config, **config})


@pytest.fixture(autouse=True)
def _env(fake_taps_env: Path, in_env: Any) -> None:
    in_env(fake_taps_env)


def test_the_config_schema_is_the_sources_spec_with_secrets_marked() -> None:
    schema = AirbyteReader.config_schema
    check_config_schema(schema, "airbyte")
    config_schema = schema["properties"]["config"]
    assert config_schema["properties"]["api_key"]["secret"] is True
    assert "$schema" not in config_schema
    assert "nested" in schema["definitions"]
    assert "config.api_key" in secret_paths(schema)
    assert config_problems(schema, {"package": "x", "config": {"count": 1}}) == []
    problems = config_problems(schema, {"package": "x", "config": {"count": "abc"}})
    assert problems
    assert problems[0]["field"] == "config.count"


def test_outside_a_plugin_environment_the_config_is_any_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATIVO_PLUGIN_ENV")
    assert AirbyteReader.config_schema == AIRBYTE_CONFIG_SCHEMA


def test_check_maps_connection_status() -> None:
    assert reader().check_connection().success
    failed = reader("check_failed").check_connection()
    assert not failed.success
    assert "bad credentials" in failed.message
    assert failed.error_code == "CONFIGURATION_ERROR"


def test_discover_maps_the_catalog() -> None:
    streams = {s.name: s for s in reader().discover().objects}
    users = streams["users"]
    assert users.primary_key == ("id",)
    assert users.cursor_field == "updated_at"
    assert [(c.name, c.type.value) for c in users.schema] == [
        ("id", "integer"),
        ("name", "string"),
        ("updated_at", "timestamp"),
        ("address", "json"),
    ]


@pytest.mark.parametrize(
    ("mode", "error", "exit_code"),
    [
        ("config_error", ConfigurationError, ExitCode.USAGE),
        ("transient_error", TransientError, ExitCode.RETRYABLE),
        ("system_error", PluginError, ExitCode.FAILURE),
    ],
)
def test_trace_errors_map_by_failure_type(mode: str, error: type[Exception], exit_code: ExitCode) -> None:
    with pytest.raises(error, match=f"it went wrong: {mode}") as caught:
        list(reader(mode).extract(State(stream="users")))
    assert type(caught.value) is error
    assert exit_code_for(caught.value) == exit_code
    result = reader(mode).check_connection()
    assert not result.success
    assert f"it went wrong: {mode}" in result.message


def test_a_trace_error_after_records_fails_even_on_exit_0() -> None:
    with pytest.raises(TransientError, match="rate limited"):
        list(reader("trace_after_records").extract(State(stream="users")))


def test_logs_and_stray_stdout_become_log_lines_with_secrets_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dativo.airbyte")
    list(reader().extract(None))
    messages = [(r.levelno, r.message) for r in caplog.records if r.name.startswith("dativo.airbyte")]
    assert (logging.INFO, "starting read in mode good with key ***") in messages
    assert any(level == logging.WARNING and "a library printed this to stdout" in m for level, m in messages)
    assert not any("sekret-key-1" in m for _, m in messages)


def test_a_full_refresh_reads_everything_and_keeps_no_state(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dativo.airbyte")
    state = State(stream="users")
    rows = [r for b in reader().extract(state) for r in b.to_pylist()]
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["address"] == '{"city": "c1"}'
    assert state.to_dict() == {}
    assert any('"sync_mode": "full_refresh"' in r.message for r in caplog.records)


def test_incremental_keeps_the_state_messages_and_passes_them_back(caplog: pytest.LogCaptureFixture) -> None:
    state = State(stream="users")
    seen = [
        (b.column("id").to_pylist(), state.to_dict())
        for b in reader(batch_size=3, incremental={}).extract(state)
    ]
    assert seen[0] == ([1, 2, 3], {})
    expected = {
        "type": "STREAM",
        "stream": {"stream_descriptor": {"name": "users"}, "stream_state": {"offset": 5}},
    }
    assert state.to_dict() == {"airbyte_state": [expected]}
    caplog.set_level(logging.INFO, logger="dativo.airbyte")
    again = [
        r["id"] for b in reader(source={"count": 2}, incremental={}).extract(state) for r in b.to_pylist()
    ]
    assert again == [6, 7]
    assert any(r.message.startswith("state [") and '"offset": 5' in r.message for r in caplog.records)


def test_state_keeper_replaces_per_stream_and_global_states() -> None:
    keeper = AirbyteStateKeeper()

    def stream(name: str, value: int) -> dict[str, Any]:
        descriptor = {"stream_descriptor": {"name": name}, "stream_state": {"v": value}}
        return {"type": "STREAM", "stream": descriptor, "sourceStats": {"recordCount": 1.0}}

    keeper.add(stream("a", 1))
    keeper.add(stream("b", 1))
    keeper.add(stream("a", 2))
    assert [
        (m["stream"]["stream_descriptor"]["name"], m["stream"]["stream_state"]["v"]) for m in keeper.messages
    ] == [
        ("b", 1),
        ("a", 2),
    ]
    assert all("sourceStats" not in m for m in keeper.messages)
    keeper.add({"type": "GLOBAL", "global": {"shared_state": {"lsn": 9}, "stream_states": []}})
    assert keeper.for_source() == [
        {"type": "GLOBAL", "global": {"shared_state": {"lsn": 9}, "stream_states": []}}
    ]
    keeper.add({"data": {"cursor": 3}})
    assert keeper.for_source() == {"cursor": 3}


def test_an_unknown_stream_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no stream 'nope'; its streams: users, other"):
        list(reader(stream="nope").extract(None))
