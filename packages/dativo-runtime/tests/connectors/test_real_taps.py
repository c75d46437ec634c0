"""Real connectors from PyPI through a plugin environment: airbyte-source-faker and tap-jsonfile.

The readers run in-process here, as the sandbox worker runs them (``DATIVO_PLUGIN_ENV`` set);
``tests/test_singer_airbyte_e2e.py`` runs the same through ``dativo-run``.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import State
from dativo_runtime._plugins._config_spec import config_problems
from dativo_runtime.connectors import AirbyteReader, SingerReader
from dativo_runtime.connectors._tap_process import LAUNCHER, TAP_ENV

from .conftest import FAKER, JSONFILE

pytestmark = pytest.mark.timeout(600)

FAKER_CONFIG = {"count": 12, "seed": 1, "parallelism": 1, "always_updated": False, "records_per_slice": 5}


def faker(**config: Any) -> AirbyteReader:
    return AirbyteReader({"package": FAKER, "config": FAKER_CONFIG, "stream": "users", **config})


def run_on_its_own(env: Path, *args: str) -> list[dict[str, Any]]:
    """The messages ``source-faker ARGS`` prints when run by itself (no Dativo in between)."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", LAUNCHER, str(env), "source-faker", *args],
        capture_output=True,
        text=True,
        env=dict(TAP_ENV),
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"type":')]


def records_on_its_own(env: Path, folder: Path, config: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``users`` records ``source-faker read`` emits on its own for ``config``."""
    config_file = folder / "faker-config.json"
    config_file.write_text(json.dumps(config))
    discovered = run_on_its_own(env, "discover", "--config", str(config_file))
    streams = next(m["catalog"]["streams"] for m in discovered if m["type"] == "CATALOG")
    users = next(s for s in streams if s["name"] == "users")
    catalog_file = folder / "faker-catalog.json"
    catalog_file.write_text(
        json.dumps(
            {"streams": [{"stream": users, "sync_mode": "full_refresh", "destination_sync_mode": "append"}]}
        )
    )
    messages = run_on_its_own(env, "read", "--config", str(config_file), "--catalog", str(catalog_file))
    return [m["record"]["data"] for m in messages if m["type"] == "RECORD"]


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without ``updated_at`` (always now()), values as JSON would hold them."""
    out = {}
    for key, value in record.items():
        if key == "updated_at":
            continue
        if isinstance(value, dt.datetime):
            value = value.isoformat()
        elif key == "address" and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out


def test_faker_spec_becomes_the_config_schema(faker_env: Path, in_env: Any) -> None:
    in_env(faker_env)
    schema = AirbyteReader.config_schema
    assert "count" in schema["properties"]["config"]["properties"]
    assert config_problems(schema, {"package": FAKER, "config": FAKER_CONFIG}) == []
    problems = config_problems(schema, {"package": FAKER, "config": {"count": "abc"}})
    assert [p["field"] for p in problems] == ["config.count"]


def test_faker_check_and_discover(faker_env: Path, in_env: Any) -> None:
    in_env(faker_env)
    assert faker().check_connection().success
    streams = {s.name: s for s in faker().discover().objects}
    assert set(streams) == {"products", "users", "purchases"}
    users = streams["users"]
    assert users.primary_key == ("id",)
    assert users.cursor_field == "updated_at"
    assert users.column("address").type.value == "json"
    assert users.column("created_at").type.value == "timestamp"


def test_faker_full_refresh_matches_the_source_run_on_its_own(
    faker_env: Path, in_env: Any, tmp_path: Path
) -> None:
    in_env(faker_env)
    ours = [r for b in faker().extract(State(stream="users")) for r in b.to_pylist()]
    theirs = records_on_its_own(faker_env, tmp_path, FAKER_CONFIG)
    assert len(ours) == 12
    assert [comparable(r) for r in ours] == [comparable(r) for r in theirs]


def test_faker_incremental_second_run_reads_nothing_new(faker_env: Path, in_env: Any) -> None:
    in_env(faker_env)
    state = State(stream="users")
    first = [r for b in faker(incremental={}).extract(state) for r in b.to_pylist()]
    assert len(first) == 12
    (message,) = state.get("airbyte_state")
    assert message["type"] == "STREAM"
    assert message["stream"]["stream_descriptor"]["name"] == "users"
    assert "updated_at" in message["stream"]["stream_state"]
    second = [
        r
        for b in faker(incremental={}).extract(State(state.to_dict(), stream="users"))
        for r in b.to_pylist()
    ]
    assert second == []


def test_jsonfile_incremental_twice_reads_only_new_files(
    jsonfile_env: Path, in_env: Any, tmp_path: Path
) -> None:
    in_env(jsonfile_env)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.json").write_text(json.dumps([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]))
    config = {
        "package": JSONFILE,
        "config": {"paths": [f"{data}/*.json"], "stream_name": "orders"},
        "stream": "orders",
        "incremental": {},
    }
    streams = SingerReader(config).discover().objects
    assert [s.name for s in streams] == ["orders"]
    state = State(stream="orders")
    first = [r for b in SingerReader(config).extract(state) for r in b.to_pylist()]
    assert sorted(r["id"] for r in first) == [1, 2]
    hashes = state.get("bookmarks")["orders"]["file_hashes"]
    assert list(hashes) == [str(data / "a.json")]
    (data / "b.json").write_text(json.dumps([{"id": 3, "name": "c"}]))
    second_state = State(state.to_dict(), stream="orders")
    second = [r for b in SingerReader(config).extract(second_state) for r in b.to_pylist()]
    assert [r["id"] for r in second] == [3]
    assert sorted(second_state.get("bookmarks")["orders"]["file_hashes"]) == [
        str(data / "a.json"),
        str(data / "b.json"),
    ]
