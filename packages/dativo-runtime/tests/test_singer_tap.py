"""``singer-tap``'s engine: the messages a job's source becomes, catalogs, state files, tap configs."""

from __future__ import annotations

import datetime as dt
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dativo_plugin_sdk import ConfigurationError, PluginError, ValidationError
from dativo_runtime._engine._singer_catalog import state_value
from dativo_runtime._engine._singer_tap import load_tap_job, singer_catalog, write_singer_messages
from dativo_runtime._jobs._model import JobConfig, parse_job

PLUGINS = Path(__file__).parent / "data" / "plugins.py"
NOW = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc)

KEYED_PLUGIN = """
from dativo_plugin_sdk import BaseReader, Column, ConnectionTestResult, DiscoveredStream, DiscoveryResult


class KeyedReader(BaseReader):
    __version__ = "1.0.0"
    supports_incremental = True

    def check_connection(self):
        return ConnectionTestResult(True, "ok")

    def discover(self):
        columns = [Column("id", "integer", nullable=False), Column("name", "string"), Column("at", "timestamp")]
        return DiscoveryResult([DiscoveredStream("people", columns, primary_key=["id"], cursor_field="at")])

    def extract(self, state=None):
        start = state.get("next", 0) if state is not None else 0
        for low in range(start, 6, 3):
            yield [{"id": i, "name": f"n{i}", "at": f"2024-01-0{i + 1}T00:00:00Z"} for i in range(low, low + 3)]
            if state is not None:
                state.set("next", low + 3)
"""


def _job(tmp_path: Path, source: dict[str, Any], **extra: Any) -> JobConfig:
    data = {
        "name": "tapjob",
        "source": source,
        "target": {"plugin": "parquet", "config": {"path": "out"}},
        "sandbox": {"backend": "none"},
        **extra,
    }
    return parse_job(data, base_dir=tmp_path)


def _messages(job: JobConfig, **kwargs: Any) -> list[dict[str, Any]]:
    out = io.BytesIO()
    write_singer_messages(job, out, now=lambda: NOW, **kwargs)
    return [json.loads(line) for line in out.getvalue().decode().split("\n")[:-1]]


def _records(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["record"] for m in messages if m["type"] == "RECORD"]


@pytest.fixture
def keyed(tmp_path: Path) -> JobConfig:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "keyed.py").write_text(textwrap.dedent(KEYED_PLUGIN))
    return _job(tmp_path, {"plugin": "plugins/keyed.py:KeyedReader", "incremental": {}})


def test_schema_then_records_then_state_with_keys_and_bookmarks(keyed: JobConfig) -> None:
    messages = _messages(keyed)
    assert [m["type"] for m in messages] == ["SCHEMA", *["RECORD"] * 3, "STATE", *["RECORD"] * 3, "STATE"]
    schema = messages[0]
    assert schema["stream"] == "tapjob"
    assert schema["key_properties"] == ["id"]
    assert schema["bookmark_properties"] == ["at"]
    assert schema["schema"]["properties"]["at"] == {"type": ["null", "string"], "format": "date-time"}
    assert _records(messages)[0] == {"id": 0, "name": "n0", "at": "2024-01-01T00:00:00.000000Z"}
    assert {m["time_extracted"] for m in messages if m["type"] == "RECORD"} == {"2026-12-04T10:00:00Z"}
    # A reader's state covers the batches before it: written before the records it arrived with.
    assert messages[4]["value"] == {"bookmarks": {"tapjob": {"next": 3}}}
    assert messages[-1]["value"] == {"bookmarks": {"tapjob": {"next": 6}}}


def test_the_state_a_run_ends_with_resumes_the_next(keyed: JobConfig) -> None:
    halfway = {
        "type": "STATE",
        "value": {"bookmarks": {"tapjob": {"next": 3}, "other": {"x": 1}}, "extra": 1},
    }
    messages = _messages(keyed, state=halfway)
    assert [r["id"] for r in _records(messages)] == [3, 4, 5]
    # Other streams' bookmarks and other keys of the value are kept.
    assert messages[-1]["value"] == {"bookmarks": {"tapjob": {"next": 6}, "other": {"x": 1}}, "extra": 1}
    again = _messages(keyed, state=messages[-1]["value"])
    assert [m["type"] for m in again] == ["SCHEMA", "STATE"]


def test_a_full_table_catalog_reads_from_the_start(keyed: JobConfig) -> None:
    catalog = singer_catalog(keyed)
    catalog["streams"][0]["metadata"][0]["metadata"]["replication-method"] = "FULL_TABLE"
    messages = _messages(keyed, state={"bookmarks": {"tapjob": {"next": 6}}}, catalog=catalog)
    assert len(_records(messages)) == 6


def test_the_discovered_catalog(keyed: JobConfig) -> None:
    catalog = singer_catalog(keyed)
    (entry,) = catalog["streams"]
    jsonschema.Draft7Validator.check_schema(entry["schema"])
    assert entry["tap_stream_id"] == entry["stream"] == "tapjob"
    assert entry["key_properties"] == ["id"]
    assert entry["replication_key"] == "at"
    assert entry["replication_method"] == "INCREMENTAL"
    root = entry["metadata"][0]
    assert root["breadcrumb"] == []
    assert root["metadata"] == {
        "inclusion": "available",
        "selected-by-default": True,
        "table-key-properties": ["id"],
        "forced-replication-method": "INCREMENTAL",
        "replication-method": "INCREMENTAL",
        "valid-replication-keys": ["at"],
        "replication-key": "at",
    }
    fields = {tuple(m["breadcrumb"]): m["metadata"]["inclusion"] for m in entry["metadata"][1:]}
    assert fields == {
        ("properties", "id"): "automatic",
        ("properties", "name"): "available",
        ("properties", "at"): "automatic",
    }


def test_a_catalog_selects_fields_but_never_drops_keys(keyed: JobConfig) -> None:
    catalog = singer_catalog(keyed)
    for item in catalog["streams"][0]["metadata"][1:]:
        item["metadata"] = {"selected": False}
    messages = _messages(keyed, catalog=catalog)
    assert list(messages[0]["schema"]["properties"]) == ["id", "at"]
    assert _records(messages)[0] == {"id": 0, "at": "2024-01-01T00:00:00.000000Z"}


@pytest.mark.parametrize(
    "catalog",
    [
        {"streams": []},
        {"streams": [{"tap_stream_id": "another"}]},
        {
            "streams": [
                {"tap_stream_id": "tapjob", "metadata": [{"breadcrumb": [], "metadata": {"selected": False}}]}
            ]
        },
        {"streams": [{"tap_stream_id": "tapjob", "selected": False}]},
    ],
)
def test_a_catalog_that_does_not_select_the_stream_writes_nothing(keyed: JobConfig, catalog: Any) -> None:
    out = io.BytesIO()
    summary = write_singer_messages(keyed, out, catalog=catalog)
    assert out.getvalue() == b""
    assert summary.selected is False


def test_a_listed_stream_without_selection_metadata_is_selected(keyed: JobConfig) -> None:
    assert len(_records(_messages(keyed, catalog={"streams": [{"stream": "tapjob"}]}))) == 6


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        ([], "not a Singer catalog"),
        ({"streams": [1]}, "must be an object"),
        ({"streams": [{"tap_stream_id": "tapjob", "metadata": {}}]}, "list"),
    ],
)
def test_a_malformed_catalog_is_a_configuration_error(keyed: JobConfig, catalog: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _messages(keyed, catalog=catalog)


@pytest.mark.parametrize("document", [[{"type": "STREAM"}], "text", {"bookmarks": []}])
def test_a_state_that_is_not_a_singer_state_is_refused(document: Any) -> None:
    with pytest.raises(ConfigurationError, match="--state"):
        state_value(document)


def test_no_state_is_an_empty_value() -> None:
    assert state_value(None) == {}
    assert state_value({}) == {}


def test_a_job_that_is_not_incremental_writes_no_state(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job = _job(tmp_path, {"plugin": f"{PLUGINS}:NumbersReader", "config": {"count": 25}})
    messages = _messages(job, state={"bookmarks": {"tapjob": {"next": 20}}})
    assert [m["type"] for m in messages] == ["SCHEMA", *["RECORD"] * 25]
    assert "--state is not read" in caplog.text


def test_a_source_without_a_schema_is_described_by_its_first_batch(tmp_path: Path) -> None:
    records = [{"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}, {"id": 3, "tags": None}]
    job = _job(tmp_path, {"plugin": f"{PLUGINS}:RecordsReader", "config": {"records": records}})
    assert singer_catalog(job)["streams"][0]["schema"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": True,
    }
    messages = _messages(job)
    assert messages[0]["type"] == "SCHEMA"
    assert messages[0]["schema"]["properties"] == {
        "id": {"type": ["null", "integer"]},
        "tags": {"type": ["null", "array"], "items": {"type": ["null", "string"]}},
    }
    assert _records(messages) == records


def test_strict_validation_fails_on_an_invalid_record(tmp_path: Path) -> None:
    records = [{"id": 1}, {"id": "x"}]
    job = _job(
        tmp_path,
        {"plugin": f"{PLUGINS}:RecordsReader", "config": {"records": records, "batch_size": 1}},
        schema=[{"name": "id", "type": "integer"}],
    )
    out = io.BytesIO()
    with pytest.raises(ValidationError):
        write_singer_messages(job, out)
    assert [json.loads(line)["type"] for line in out.getvalue().splitlines()] == ["SCHEMA", "RECORD"]


@pytest.mark.parametrize(
    ("mode", "expected"), [("warn", [{"id": 1}, {"id": None}]), ("quarantine", [{"id": 1}])]
)
def test_warn_nulls_invalid_values_and_quarantine_leaves_records_out(
    tmp_path: Path, mode: str, expected: list[dict[str, Any]]
) -> None:
    job = _job(
        tmp_path,
        {"plugin": f"{PLUGINS}:RecordsReader", "config": {"records": [{"id": 1}, {"id": "x"}]}},
        schema=[{"name": "id", "type": "integer", "required": True}],
        validation=mode,
    )
    messages = _messages(job)
    assert _records(messages) == expected
    nullable = mode == "warn"
    assert messages[0]["schema"]["properties"]["id"] == {
        "type": ["null", "integer"] if nullable else "integer"
    }
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out_quarantine").exists()


def test_nothing_is_committed_or_saved(tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text("id,name\n1,a\n2,b\n")
    job = _job(tmp_path, {"plugin": "csv", "config": {"path": "in.csv"}, "incremental": {}})
    messages = _messages(job)
    assert _records(messages) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert messages[-1]["value"]["bookmarks"]["tapjob"]["paths_at_mtime"] == [str(data)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_closed_output_is_a_plugin_error(keyed: JobConfig) -> None:
    class Closed(io.RawIOBase):
        def write(self, data: Any) -> int:
            raise BrokenPipeError

    with pytest.raises(PluginError, match="stopped reading"):
        write_singer_messages(keyed, Closed())  # type: ignore[arg-type]


# --config: a job file, or a tap config naming one ---------------------------------------------------


def test_a_tap_config_names_the_job_relative_to_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "j.yaml").write_text(
        "name: fromfile\nsource: {plugin: csv, config: {path: x.csv}}\n"
        "target: {plugin: parquet, config: {path: out}}\n"
    )
    config = tmp_path / "tap.json"
    config.write_text(json.dumps({"job": "jobs/j.yaml"}))
    job = load_tap_job(config, cwd=tmp_path)
    assert job.name == "fromfile"
    assert job.source_config()["path"] == str(tmp_path / "jobs" / "x.csv")


def test_a_tap_config_may_hold_the_job_itself(tmp_path: Path) -> None:
    config = tmp_path / "tap.json"
    inline = {
        "name": "inline",
        "source": {"plugin": "csv", "config": {"path": "x.csv"}},
        "target": {"plugin": "parquet", "config": {"path": "o"}},
    }
    config.write_text(json.dumps({"job": inline}))
    job = load_tap_job(config, cwd=tmp_path)
    assert job.name == "inline"
    assert job.source_config()["path"] == str(tmp_path / "x.csv")


def test_a_job_file_in_json_is_a_job_file(tmp_path: Path) -> None:
    config = tmp_path / "job.json"
    config.write_text(
        json.dumps(
            {
                "name": "j",
                "source": {"plugin": "csv", "config": {"path": "x.csv"}},
                "target": {"plugin": "parquet", "config": {"path": "o"}},
            }
        )
    )
    assert load_tap_job(config).name == "j"


@pytest.mark.parametrize(
    ("config", "message"), [({"job": "j.yaml", "extra": 1}, "unknown key"), ({"job": 3}, "'job' must be")]
)
def test_a_bad_tap_config_is_a_configuration_error(tmp_path: Path, config: Any, message: str) -> None:
    path = tmp_path / "tap.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match=message):
        load_tap_job(path, cwd=tmp_path)
