"""The singer reader against fake taps installed into a plugin environment (see conftest.py)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dativo_plugin_sdk import ConfigurationError, PluginError, State
from dativo_runtime.connectors import SingerReader

pytestmark = pytest.mark.timeout(120)


def reader(mode: str = "good", **config: Any) -> SingerReader:
    tap_config = {"mode": mode, "password": "hunter22secret", "count": 5, **config.pop("tap", {})}
    base = {"package": "dativo-fake-taps==0.1.0", "executable": "tap-fake", "stream": "orders"}
    return SingerReader({**base, "config": tap_config, **config})


def read_all(source: SingerReader, state: State | None = None) -> list[pa.RecordBatch]:
    return list(source.extract(state))


@pytest.fixture(autouse=True)
def _env(fake_taps_env: Path, in_env: Any) -> None:
    in_env(fake_taps_env)


def test_check_runs_discovery() -> None:
    result = reader().check_connection()
    assert result.success
    assert "2 stream(s): orders, customers" in result.message


def test_discover_maps_the_catalog() -> None:
    streams = {s.name: s for s in reader().discover().objects}
    orders = streams["orders"]
    assert orders.primary_key == ("id",)
    assert orders.cursor_field == "updated_at"
    assert [(c.name, c.type.value) for c in orders.schema] == [
        ("id", "integer"),
        ("name", "string"),
        ("amount", "float"),
        ("updated_at", "timestamp"),
        ("day", "date"),
        ("tags", "json"),
    ]


def test_a_full_read_yields_the_stream_and_keeps_no_state() -> None:
    state = State(stream="orders")
    batches = read_all(reader(), state)
    assert [r["id"] for b in batches for r in b.to_pylist()] == [1, 2, 3, 4, 5]
    assert state.to_dict() == {}


def test_state_is_set_after_the_batch_holding_every_record_before_it() -> None:
    source = reader(tap={"count": 7, "state_every": 2}, batch_size=3, incremental={})
    state = State(stream="orders")
    seen = []
    for batch in source.extract(state):
        # The snapshot the runtime takes as this batch arrives covers only earlier batches.
        seen.append((batch.column("id").to_pylist(), state.to_dict()))
    assert seen == [
        ([1, 2, 3], {}),
        ([4, 5, 6], {"bookmarks": {"orders": {"last_id": 2}}}),
        ([7], {"bookmarks": {"orders": {"last_id": 4}}}),
    ]
    assert state.to_dict() == {"bookmarks": {"orders": {"last_id": 7}}}
    # The next run passes it with --state and reads on from there.
    again = read_all(reader(tap={"count": 2}, incremental={}), State(state.to_dict(), stream="orders"))
    assert [r["id"] for b in again for r in b.to_pylist()] == [8, 9]


def test_the_tap_gets_a_clean_environment_and_its_files_as_dev_fd(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret-value")
    caplog.set_level(logging.INFO, logger="dativo.singer")
    read_all(reader("environment", incremental={}), State(stream="orders"))
    environment = next(json.loads(r.message[4:]) for r in caplog.records if r.message.startswith("ENV "))
    argv = next(json.loads(r.message[5:]) for r in caplog.records if r.message.startswith("ARGV "))
    assert "AWS_SECRET_ACCESS_KEY" not in environment
    assert environment["HOME"] == "/tmp"
    assert environment["TMPDIR"] == "/tmp"
    assert "DATIVO_TAP_PARENT_PID" not in environment
    files = [argv[i + 1] for i, a in enumerate(argv) if a in ("--config", "--catalog")]
    assert files
    assert all(f.startswith("/dev/fd/") for f in files)
    catalog = next(json.loads(r.message[8:]) for r in caplog.records if r.message.startswith("CATALOG "))
    selected = {s["tap_stream_id"]: s["selected"] for s in catalog["streams"]}
    assert selected == {"orders": True, "customers": False}


def test_stderr_becomes_log_lines_with_secrets_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dativo.singer")
    read_all(reader())
    lines = [r.message for r in caplog.records if r.name.startswith("dativo.singer")]
    assert any("starting in mode good with password ***" in line for line in lines)
    assert not any("hunter22secret" in line for line in lines)


def test_a_tap_that_exits_1_fails_with_its_last_stderr_lines() -> None:
    with pytest.raises(PluginError) as caught:
        read_all(reader("fail"))
    assert "exited with status 1 during --discover" in caught.value.message
    assert "ERROR cannot reach the database" in caught.value.message
    assert "hunter22secret" not in caught.value.message
    result = reader("fail").check_connection()
    assert not result.success
    assert "cannot reach the database" in result.message


def test_garbage_on_stdout_fails_with_the_line() -> None:
    with pytest.raises(PluginError, match="not a JSON message: 'hello, this is not JSON'"):
        read_all(reader("garbage"))


def test_a_record_before_its_schema_fails() -> None:
    with pytest.raises(PluginError, match="RECORD of stream 'orders' before its SCHEMA"):
        read_all(reader("record_first"))


def test_a_batch_message_is_refused() -> None:
    with pytest.raises(PluginError, match="BATCH message"):
        read_all(reader("batch"))


def test_a_schema_change_mid_stream_starts_a_new_batch(caplog: pytest.LogCaptureFixture) -> None:
    batches = read_all(reader("schema_change", batch_size=100))
    assert [b.column("id").to_pylist() for b in batches] == [[1, 2], [3, 4, 5]]
    assert "extra" not in batches[0].schema.names
    assert batches[1].column("extra").to_pylist() == [30, 40, 50]
    assert any(
        "changed the schema of stream 'orders'" in r.message and "extra: new" in r.message
        for r in caplog.records
    )


def test_a_mismatching_record_stays_text_for_validation() -> None:
    (batch,) = read_all(reader("mismatch"))
    assert batch.schema.field("id").type == pa.string()
    assert batch.column("id").to_pylist() == ["1", "two", "3", "4", "5"]


def test_closing_the_reader_mid_read_stops_a_hanging_tap() -> None:
    source = reader("hang", batch_size=1)
    batches = source.extract(None)
    first = next(batches)
    assert first.column("id").to_pylist() == [1]
    assert source.tap is not None
    pid = source.tap.process.pid
    started = time.monotonic()
    batches.close()
    assert time.monotonic() - started < 10
    assert source.tap.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_tap_dies_with_its_parent(tmp_path: Path) -> None:
    # A thread stands in for the worker: PR_SET_PDEATHSIG fires when the thread that started the tap ends.
    source = reader("hang", batch_size=1)
    started: dict[str, Any] = {}

    def start() -> None:
        batches = source.extract(None)
        next(batches)
        started["pid"] = source.tap.process.pid if source.tap else None
        started["batches"] = batches  # Keep the generator alive: only the thread ends.

    thread = threading.Thread(target=start)
    thread.start()
    thread.join(60)
    pid = started["pid"]
    for _ in range(100):
        if source.tap is not None and source.tap.process.poll() is not None:
            break
        time.sleep(0.1)
    assert source.tap is not None
    assert source.tap.process.poll() is not None, f"tap {pid} outlived its thread"
    started["batches"].close()


def test_an_executable_the_environment_lacks_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"executable 'tap-nope'.*tap-fake, tap-fake-other"):
        reader(executable="tap-nope").discover()


def test_a_package_with_several_scripts_needs_executable() -> None:
    with pytest.raises(ConfigurationError, match="several console scripts"):
        SingerReader({"package": "dativo-fake-taps", "config": {}}).discover()


def test_without_a_plugin_environment_the_reader_says_who_builds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATIVO_PLUGIN_ENV")
    with pytest.raises(PluginError, match=r"DATIVO_PLUGIN_ENV is not set.*source.config.package"):
        reader().discover()


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "package"),
        ({"package": "tap-x", "config": [1]}, "config"),
        ({"package": "not a requirement!"}, "package"),
    ],
)
def test_bad_config_names_the_key(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SingerReader(config)
    assert caught.value.details["field"] == field
