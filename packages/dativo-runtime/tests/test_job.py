"""Job files: loading, interpolation, validation errors, derived paths, the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._jobs._model import job_json_schema, load_job, parse_job
from dativo_runtime._secrets import REDACTOR
from dativo_runtime._sizes import parse_byte_size

pytestmark = pytest.mark.usefixtures("forget_secrets")

MINIMAL: dict[str, Any] = {
    "name": "orders",
    "source": {"plugin": "csv", "config": {"path": "data/orders.csv"}},
    "target": {"plugin": "parquet", "config": {"path": "out/orders"}},
}


def with_(**changes: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(MINIMAL))
    data.update(changes)
    return data


def test_minimal_job_gets_defaults(tmp_path: Path) -> None:
    job = parse_job(MINIMAL, base_dir=tmp_path)
    assert (job.tenant, job.mode, job.validation, job.sandbox.backend) == (
        "default",
        "self_hosted",
        "strict",
        "auto",
    )
    assert job.retry.max_attempts == 3
    assert job.columns() is None
    assert job.job_id == "default/orders"


def test_relative_paths_resolve_against_the_job_file(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    path = folder / "job.yaml"
    path.write_text(json.dumps(MINIMAL))
    job = load_job(path)
    assert job.source_config()["path"] == str(folder / "data" / "orders.csv")
    assert job.target_location() == str(folder / "out" / "orders")
    assert job.state_location() == str(folder / "out" / "orders" / "_dativo" / "state")
    assert job.quarantine_location() == str(folder / "out" / "orders_quarantine")
    assert job.output_dir() == folder / "out" / "orders"


def test_s3_paths_stay_uris(tmp_path: Path) -> None:
    job = parse_job(
        with_(target={"plugin": "parquet", "config": {"path": "s3://bucket/orders"}}), base_dir=tmp_path
    )
    assert job.target_location() == "s3://bucket/orders"
    assert job.output_dir() is None
    assert job.state_location() == "s3://bucket/orders/_dativo/state"


def test_schema_as_list_or_columns_mapping() -> None:
    columns = [{"name": "id", "type": "integer", "required": True}, {"name": "at", "type": "timestamp"}]
    for schema in (columns, {"columns": columns}):
        job = parse_job(with_(schema=schema))
        cols = job.columns()
        assert cols is not None
        assert [(c.name, c.type.value, c.nullable) for c in cols] == [
            ("id", "integer", False),
            ("at", "timestamp", True),
        ]


def test_sandbox_block_becomes_limits() -> None:
    job = parse_job(
        with_(
            sandbox={
                "backend": "none",
                "cpu": 1.5,
                "memory": "512m",
                "timeout": 30,
                "pids": 64,
                "disk": "20g",
            }
        )
    )
    limits = job.sandbox.to_limits()
    assert (
        limits.cpu,
        limits.memory_bytes,
        limits.timeout_s,
        limits.pids,
        limits.network,
        limits.disk_bytes,
    ) == (1.5, 512 * 1024 * 1024, 30.0, 64, False, 20 * 1024**3)


@pytest.mark.parametrize(
    ("disk", "expected"), [(None, None), (4096, 4096), ("1t", 1024**4), ("10 GiB", 10 << 30)]
)
def test_sandbox_disk_is_a_size_like_memory(disk: Any, expected: int | None) -> None:
    sandbox = {} if disk is None else {"disk": disk}
    # Unset, the backends fill in the default (10 GiB) capped by the operator's ceiling.
    assert parse_job(with_(sandbox=sandbox)).sandbox.to_limits().disk_bytes == expected


def test_the_jobs_mode_defaults_to_self_hosted_and_is_described_as_overridable() -> None:
    # The operator's policy decides the mode in the end (dativo_runtime._sandbox._policy); the job's
    # field keeps its default so that self-hosted users without a policy file see no change.
    assert parse_job(MINIMAL).mode == "self_hosted"
    assert parse_job(with_(mode="cloud")).mode == "cloud"
    description = job_json_schema()["properties"]["mode"]["description"]
    assert "DATIVO_RUNTIME_CONFIG" in description
    assert "stricter" in description


def test_incremental_goes_into_builtin_reader_config() -> None:
    job = parse_job(
        with_(source={"plugin": "csv", "config": {"path": "x.csv"}, "incremental": {"strategy": "mtime"}})
    )
    assert job.source_config()["incremental"] == {"strategy": "mtime"}


def test_env_interpolation_and_secret_registration(tmp_path: Path) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("s3cr3t-from-file\n")
    data = with_(
        source={
            "plugin": "x.py:Reader",
            "config": {"base": "${BASE_URL}", "token": "${file:token.txt}", "label": "${LABEL:-fallback}"},
        }
    )
    job = parse_job(data, base_dir=tmp_path, environ={"BASE_URL": "http://localhost:1"})
    assert job.source.config == {
        "base": "http://localhost:1",
        "token": "s3cr3t-from-file",
        "label": "fallback",
    }
    assert "s3cr3t-from-file" in REDACTOR
    assert "http://localhost:1" not in REDACTOR


def test_literal_dollar_brace_is_escaped() -> None:
    job = parse_job(with_(description="cost $${PRICE}"), environ={})
    assert job.description == "cost ${PRICE}"


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (with_(extra=1), ["`extra` is not a known key", "allowed keys here"]),
        (with_(source={"plugin": "csv", "confg": {}}), ["`source.confg`", "did you mean 'config'"]),
        (with_(validation="loose"), ["`validation` is 'loose'", "'strict', 'warn' or 'quarantine'"]),
        (with_(mode="saas"), ["`mode`", "'self_hosted' or 'cloud'"]),
        (with_(retry={"max_attempts": "many"}), ["`retry.max_attempts` is 'many'", "integer"]),
        (with_(sandbox={"memory": "lots"}), ["`sandbox.memory`", "'512m'"]),
        (with_(sandbox={"disk": "lots"}), ["`sandbox.disk`", "disk 'lots' is not a size", "'512m'"]),
        (with_(sandbox={"disk": 0}), ["`sandbox.disk`", "disk must be positive"]),
        (with_(sandbox={"disk": True}), ["`sandbox.disk`", "a number of bytes"]),
        (with_(schema=[{"name": "a", "type": "int"}]), ["`schema[0].type` is 'int'", "'integer'"]),
        (with_(schema=[{"name": "a", "type": "string"}, {"name": "a", "type": "string"}]), ["repeat: a"]),
        ({"name": "x"}, ["`source` is required", "`target` is required"]),
        (with_(target={"plugin": "parquet"}), ["`target.config.path` is required"]),
        (with_(source={"plugin": "csv", "config": {}}), ["`source.config.path` is required"]),
        (
            with_(source={"plugin": "x.py:R", "incremental": {"strategy": "mtime"}}),
            ["`source.incremental.strategy` applies to the built-in"],
        ),
        (
            with_(source={"plugin": "csv", "config": {"path": "a"}, "incremental": {"strategy": "cursor"}}),
            ["needs cursor_field"],
        ),
        (with_(name="has space"), ["`name` is 'has space'"]),
        (
            with_(schedule="every night"),
            ["`schedule`", "'every night' is not a cron expression", "'*/15 * * * *'"],
        ),
        (with_(schedule="61 * * * *"), ["`schedule`", "not a cron expression"]),
        ([1, 2], ["top level of a job file must be a mapping"]),
        (None, ["the job file is empty"]),
    ],
)
def test_invalid_jobs_name_the_field_and_the_fix(data: Any, fragments: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_job(data, source_file=Path("/jobs/bad.yaml"))
    message = caught.value.message
    assert "/jobs/bad.yaml" in message
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


def test_missing_environment_variable_names_it_and_the_field() -> None:
    data = with_(source={"plugin": "csv", "config": {"path": "${DATA_DIR}/x.csv"}})
    with pytest.raises(
        ConfigurationError, match=r"source\.config\.path: environment variable DATA_DIR is not set"
    ):
        parse_job(data, environ={})


def test_unreadable_secret_file_is_a_configuration_error(tmp_path: Path) -> None:
    data = with_(source={"plugin": "csv", "config": {"path": "a.csv", "password": "${file:/nonexistent/pw}"}})
    with pytest.raises(ConfigurationError, match="cannot read secret file"):
        parse_job(data, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("name: [unclosed", "is not valid YAML at line"),
        ("name: a\nname: b\n", "appears twice"),
        (b"\xff\xfe\x00bad", "is not UTF-8"),
    ],
)
def test_unparseable_files(tmp_path: Path, content: str | bytes, fragment: str) -> None:
    path = tmp_path / "job.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=fragment):
        load_job(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_job(tmp_path / "nope.yaml")
    with pytest.raises(ConfigurationError, match="is a folder"):
        load_job(tmp_path)


@pytest.mark.parametrize("schedule", ["*/15 * * * *", "@hourly", "0 2 * * 1-5", "* * * * * */10"])
def test_cron_schedules_are_accepted(schedule: str) -> None:
    assert parse_job(with_(schedule=f"  {schedule} ")).schedule == schedule


def test_json_schema_describes_every_top_level_key() -> None:
    schema = job_json_schema()
    assert schema["title"] == "Dativo job file"
    assert set(schema["properties"]) == {
        "version",
        "tenant",
        "name",
        "description",
        "mode",
        "source",
        "target",
        "schema",
        "validation",
        "quarantine",
        "sandbox",
        "state",
        "retry",
        "schedule",
    }
    assert schema["additionalProperties"] is False
    json.dumps(schema)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512m", 512 * 2**20),
        ("1g", 2**30),
        ("128MB", 128 * 2**20),
        ("64 KiB", 64 * 1024),
        (4096, 4096),
        ("1.5k", 1536),
    ],
)
def test_byte_sizes(text: Any, expected: int) -> None:
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1", "0", "1x", True])
def test_bad_byte_sizes(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_byte_size(text)


@given(st.integers(min_value=1, max_value=2**40), st.sampled_from(["", "k", "m", "g", "K", "M", "G"]))
def test_byte_size_units_multiply(number: int, unit: str) -> None:
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]
    assert parse_byte_size(f"{number}{unit}") == number * factor
