"""The built-in connectors behind a registry: typed options, what the job model asks, one S3 option list."""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dativo_plugin_sdk import BaseReader, BaseWriter, ConfigurationError
from dativo_runtime._jobs._model import parse_job
from dativo_runtime._storage._s3 import S3_OPTION_KEYS, s3_options
from dativo_runtime.connectors import CsvReader, JsonlReader, ParquetWriter
from dativo_runtime.connectors._options import CsvOptions, FileReaderOptions, JobContext
from dativo_runtime.connectors._registry import BUILTIN_CONNECTORS, ConnectorSpec, builtin_connector

pytestmark = pytest.mark.usefixtures("forget_secrets")

JOB: dict[str, Any] = {
    "name": "orders",
    "source": {"plugin": "csv", "config": {"path": "data/orders.csv"}},
    "target": {"plugin": "parquet", "config": {"path": "out/orders"}},
}


def job_with(**changes: Any) -> dict[str, Any]:
    return {**JOB, **changes}


def _target_class(spec: ConnectorSpec) -> type[Any]:
    module, _, name = spec.target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module), name)
    return cls


@pytest.mark.parametrize("name", sorted(BUILTIN_CONNECTORS))
def test_each_builtin_declares_its_kind_class_and_options(name: str) -> None:
    spec = builtin_connector(name)
    assert spec is not None
    assert spec.name == name
    cls = _target_class(spec)
    assert issubclass(cls, BaseReader if spec.kind == "reader" else BaseWriter)
    assert spec.options is not None
    if spec.runs_in_sandbox:
        # singer/airbyte: no location; they run a tap from the environment built from `package`.
        assert spec.location_option is None
        assert spec.environment_option == "package"
        built = cls({"package": "tap-something==1.0"})
    elif name == "iceberg":
        # A table in a warehouse: the warehouse is its location (state and quarantine go beside it).
        assert spec.location_option == "warehouse"
        built = cls({"warehouse": "somewhere", "table": "analytics.orders"})
    elif name == "postgres":
        # A database reader: no location of its own; it names a server and a table.
        assert spec.location_option is None
        built = cls({"dsn": "postgresql://db.internal/shop", "table": "public.orders"})
    else:
        assert spec.location_option == "path"
        built = cls({"path": "somewhere"})
    assert isinstance(built.options, spec.options)


def test_only_writers_probe_commits_and_take_run_context() -> None:
    for spec in BUILTIN_CONNECTORS.values():
        if spec.kind == "reader":
            assert spec.commit_probe is None
            assert spec.run_context == ()
    parquet = builtin_connector("parquet")
    assert parquet is not None
    assert parquet.commit_probe is not None
    assert set(parquet.run_context) == {"run_id", "ingest_date"}
    assert builtin_connector("salesforce") is None


@pytest.mark.parametrize(
    ("connector", "field", "value"),
    [
        (ParquetWriter, "target_file_size", "lots"),
        (ParquetWriter, "max_buffer_size", "lots"),
        (ParquetWriter, "compression", "rar"),
        (ParquetWriter, "compression_level", "high"),
        (ParquetWriter, "row_group_size", 0),
        (ParquetWriter, "max_open_files", "many"),
        (ParquetWriter, "lease_ttl", "forever"),
        (ParquetWriter, "partition_by", [1]),
        (ParquetWriter, "ingest_date", "yesterday"),
        (ParquetWriter, "run_id", "a/b"),
        (CsvReader, "block_size", "big"),
        (CsvReader, "delimiter", ";;"),
        (CsvReader, "invalid_rows", "ignore"),
        (CsvReader, "column_types", {"a": "int"}),
        (CsvReader, "skip_rows", "some"),
        (JsonlReader, "block_size", -1),
        (JsonlReader, "incremental", "mtime"),
    ],
)
def test_a_bad_option_names_its_own_field(
    tmp_path: Path, connector: type[Any], field: str, value: Any
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        connector({"path": str(tmp_path / "x"), field: value})
    assert raised.value.details["field"] == field
    assert field in raised.value.message


def test_options_keep_the_documented_defaults() -> None:
    parquet = ParquetWriter({"path": "/tmp/out"}).options
    assert (parquet.compression, parquet.target_file_size, parquet.max_buffer_size) == (
        "snappy",
        128 * 1024**2,
        256 * 1024**2,
    )
    assert (parquet.row_group_size, parquet.max_open_files, parquet.lease_ttl, parquet.fsync) == (
        100_000,
        32,
        120.0,
        True,
    )
    csv = CsvOptions.from_config({"path": "a.csv"})
    assert (csv.delimiter, csv.has_header, csv.null_values, csv.invalid_rows, csv.block_size) == (
        ",",
        True,
        ("",),
        "error",
        1024**2,
    )


def test_csv_takes_column_types_from_the_job_schema(tmp_path: Path) -> None:
    schema = [{"name": "id", "type": "integer"}, {"name": "amount", "type": "decimal"}]
    job = parse_job(job_with(schema=schema), base_dir=tmp_path)
    assert job.source_config()["column_types"] == {"id": "integer", "amount": "decimal"}
    own = job_with(
        schema=schema, source={"plugin": "csv", "config": {"path": "a.csv", "column_types": {"id": "string"}}}
    )
    assert parse_job(own, base_dir=tmp_path).source_config()["column_types"] == {"id": "string"}
    jsonl = job_with(schema=schema, source={"plugin": "jsonl", "config": {"path": "a.jsonl"}})
    assert "column_types" not in parse_job(jsonl, base_dir=tmp_path).source_config()


@dataclass(frozen=True)
class _TsvOptions(CsvOptions):
    format_name: ClassVar[str] = "tsv"
    location_fix: ClassVar[str] = "point it at the .tsv files"


def test_the_job_model_asks_the_registry_not_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = builtin_connector("csv")
    assert csv is not None
    monkeypatch.setitem(BUILTIN_CONNECTORS, "tsv", replace(csv, name="tsv", options=_TsvOptions))  # type: ignore[arg-type]
    schema = [{"name": "id", "type": "integer"}]
    data = job_with(
        schema=schema,
        source={
            "plugin": "tsv",
            "stream": "s",
            "incremental": {"strategy": "mtime"},
            "config": {"path": "a"},
        },
    )
    config = parse_job(data, base_dir=tmp_path).source_config()
    assert config == {
        "path": str(tmp_path / "a"),
        "incremental": {"strategy": "mtime"},
        "stream": "s",
        "column_types": {"id": "integer"},
    }
    with pytest.raises(ConfigurationError) as raised:
        parse_job(job_with(source={"plugin": "tsv", "config": {}}), base_dir=tmp_path)
    assert (
        "`source.config.path` is required by the tsv reader; point it at the .tsv files."
        in raised.value.message
    )


def test_job_settings_hook_defaults_to_none() -> None:
    bare = ConnectorSpec("bare", "reader", "x:Y")
    assert bare.job_settings(JobContext(stream="s")) == {}
    assert bare.location_option is None
    assert bare.incremental_strategies == ()
    assert FileReaderOptions.job_settings(JobContext()) == {}


def test_the_incremental_message_lists_the_readers_that_keep_state(tmp_path: Path) -> None:
    data = job_with(source={"plugin": "x.py:R", "incremental": {"strategy": "mtime"}})
    with pytest.raises(ConfigurationError) as raised:
        parse_job(data, base_dir=tmp_path)
    assert "applies to the built-in csv and jsonl readers only, not to 'x.py:R'" in raised.value.message


def test_a_writer_as_source_and_a_reader_as_target_get_no_builtin_treatment(tmp_path: Path) -> None:
    job = parse_job(
        {
            "name": "j",
            "source": {"plugin": "parquet"},
            "target": {"plugin": "csv"},
            "quarantine": {"path": "q"},
        },
        base_dir=tmp_path,
    )
    assert job.source_config() == {}
    assert job.target_config() == {}
    assert job.target_location() is None


def test_quarantine_needs_a_path_unless_the_target_has_a_location(tmp_path: Path) -> None:
    data = job_with(validation="quarantine", target={"plugin": "some.module:Writer"})
    with pytest.raises(ConfigurationError) as raised:
        parse_job(data, base_dir=tmp_path)
    assert "and the target is not parquet" in raised.value.message
    assert parse_job(job_with(validation="quarantine"), base_dir=tmp_path).quarantine_location()


def test_s3_options_are_one_definition() -> None:
    config = {key: f"v-{key}" for key in S3_OPTION_KEYS} | {"path": "s3://b/p", "region": ""}
    assert s3_options(config) == {key: f"v-{key}" for key in S3_OPTION_KEYS if key != "region"}
    writer = ParquetWriter(config)
    reader = CsvReader(config)
    assert writer.storage_options == reader.storage_options == s3_options(config)


def test_state_store_takes_the_targets_s3_options_then_its_own(tmp_path: Path) -> None:
    credentials = {"aws_access_key_id": "AK", "aws_secret_access_key": "SK", "aws_session_token": "T"}
    target = {"plugin": "parquet", "config": {"path": "s3://b/o", "endpoint_url": "http://t", **credentials}}
    job = parse_job(job_with(target=target), base_dir=tmp_path)
    assert job.state_storage_options() == {"endpoint_url": "http://t", **credentials}
    state = {"uri": "s3://other/state", "endpoint_url": "http://s", "region": "eu"}
    own = parse_job(job_with(target=target, state=state), base_dir=tmp_path).state_storage_options()
    assert own == {"endpoint_url": "http://s", "region": "eu", **credentials}
    plugin_target = {"plugin": "some.module:Writer", "config": {"endpoint_url": "http://t"}}
    assert parse_job(job_with(target=plugin_target), base_dir=tmp_path).state_storage_options() == {}


def test_the_registry_imports_neither_pyarrow_nor_boto3() -> None:
    code = (
        "import sys\n"
        "import dativo_runtime.connectors._registry\n"
        "loaded = [m for m in ('pyarrow', 'boto3', 'dativo_runtime.connectors._parquet') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("name", sorted(n for n, s in BUILTIN_CONNECTORS.items() if not s.runs_in_sandbox))
def test_every_option_is_a_key_of_the_config_schema(name: str) -> None:
    # A key the options read but the schema lacks is refused before the options see it.
    import dataclasses

    spec = builtin_connector(name)
    assert spec is not None
    assert spec.options is not None
    schema = _target_class(spec).config_schema
    internal = {"storage_options", "stream", "incremental"}  # the S3 keys; set by the runtime
    if name in ("csv", "jsonl"):
        internal |= {"strategy", "cursor_field"}  # read from the `incremental` key
    fields = {f.name for f in dataclasses.fields(spec.options)} - internal
    assert fields - set(schema["properties"]) == set()
