"""Config specs: a plugin's config_schema checked, a config checked against it, the CLI's views of it.

The sandboxed side (the schema read in the worker, every backend) is in
``sandbox/test_config_spec_backends.py``; runs through the real ``dativo-run`` in ``tests/``.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from dativo_plugin_sdk import ConfigurationError, PluginError
from dativo_runtime._cli._app import app
from dativo_runtime._plugins._config_spec import (
    check_plugin_config,
    config_problems,
    read_config_schema,
    secret_paths,
)
from dativo_runtime._plugins._ref import PluginRef, load_plugin_class
from dativo_runtime._secrets import REDACTOR
from dativo_runtime.connectors._registry import BUILTIN_CONNECTORS

SPECS = Path(__file__).parent / "sandbox" / "plugins" / "config_specs.py"
SECRET = "tok-SECRET-4242"
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("forget_secrets")


# The checks themselves ---------------------------------------------------------------------


def test_problems_name_the_key_what_was_expected_and_a_near_key() -> None:
    schema = {
        "type": "object",
        "properties": {
            "page_size": {"type": "integer", "minimum": 1},
            "mode": {"enum": ["full", "delta"]},
            "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}},
            "nested": {
                "type": "object",
                "properties": {"depth": {"type": "integer"}},
                "additionalProperties": False,
            },
        },
        "required": ["mode"],
        "additionalProperties": False,
    }
    config = {"page_sise": 5, "page_size": 0, "items": [{"n": "x"}], "nested": {"dept": 1}, "zzz": 1}
    assert config_problems(schema, config) == [
        {"field": "items[0].n", "problem": "must be an integer, got 'x' (a string)"},
        {"field": "mode", "problem": "is required but missing; add it"},
        {"field": "nested.dept", "problem": "is not a key this plugin takes; did you mean 'depth'?"},
        {"field": "page_sise", "problem": "is not a key this plugin takes; did you mean 'page_size'?"},
        {"field": "page_size", "problem": "must be at least 1, got 0 (an integer)"},
        {
            "field": "zzz",
            "problem": "is not a key this plugin takes; remove or rename it (its keys here: page_size, mode, "
            "items, nested)",
        },
    ]


def test_no_problem_shows_a_secret_value() -> None:
    schema = {
        "type": "object",
        "properties": {
            "bearer": {"type": "integer", "secret": True},
            "client_secret": {"type": "integer"},
            "auth": {"type": "object", "properties": {"pin": {"enum": [1, 2]}}, "writeOnly": True},
            "either": {"anyOf": [{"type": "integer"}, {"type": "boolean"}], "secret": True},
        },
    }
    config = {
        "bearer": SECRET,
        "client_secret": "hunter2-pass",
        "auth": {"pin": "9876"},
        "either": "s3cr3t-x",
    }
    problems = config_problems(schema, config)
    assert [p["field"] for p in problems] == ["auth.pin", "bearer", "client_secret", "either"]
    text = json.dumps(problems)
    for value in (SECRET, "hunter2-pass", "9876", "s3cr3t-x"):
        assert value not in text
    assert {"field": "bearer", "problem": "must be an integer, got a string"} in problems


def test_check_plugin_config_registers_the_spec_secrets_first() -> None:
    schema = {
        "type": "object",
        "properties": {
            "bearer": {"type": "string", "secret": True},
            "hosts": {
                "type": "array",
                "items": {"type": "object", "properties": {"pw": {"$ref": "#/$defs/s"}}},
            },
        },
        "additionalProperties": False,
        "$defs": {"s": {"type": "string", "writeOnly": True}},
    }
    with pytest.raises(ConfigurationError) as caught:
        check_plugin_config(
            "x.py:R", schema, {"bearer": SECRET, "hosts": [{"pw": "pw-in-a-list"}], "typo": SECRET}
        )
    assert SECRET in REDACTOR
    assert "pw-in-a-list" in REDACTOR
    assert caught.value.details["problems"] == [
        {
            "field": "typo",
            "problem": "is not a key this plugin takes; remove or rename it (its keys here: bearer, hosts)",
        }
    ]
    assert secret_paths(schema) == ["bearer", "hosts[].pw"]
    check_plugin_config("x.py:R", None, {"anything": 1})  # no spec: nothing to check


def test_a_broken_schema_is_the_plugin_s_error_naming_its_reference() -> None:
    with pytest.raises(
        PluginError, match=r"plugin 'x.py:R' declares an invalid config_schema: at properties/n/minimum"
    ):
        check_plugin_config("x.py:R", {"properties": {"n": {"minimum": "one"}}}, {})
    cls = load_plugin_class(PluginRef.parse(f"{SPECS}:NotJsonSpecReader"))
    with pytest.raises(PluginError, match="it is not JSON data"):
        read_config_schema(cls, "specs.py:NotJsonSpecReader")

    class IntKeys:
        config_schema = {"properties": {1: {}}}

    with pytest.raises(PluginError, match=r"it has a key that is not a string \(1\)"):
        read_config_schema(IntKeys, "k.py:IntKeys")

    class AList:
        config_schema = [{"type": "object"}]

    with pytest.raises(PluginError, match="it is a list, not a dict"):
        read_config_schema(AList, "l.py:AList")


# The built-in connectors ------------------------------------------------------------------


def test_every_builtin_declares_a_valid_config_schema() -> None:
    for name in BUILTIN_CONNECTORS:
        cls = load_plugin_class(PluginRef.parse(name))
        schema = read_config_schema(cls, name)
        assert schema is not None, name
        Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False, name
        if BUILTIN_CONNECTORS[name].runs_in_sandbox:
            continue  # singer/airbyte read no storage of their own: their secrets are the tap's.
        if name == "postgres":
            assert {"dsn", "password"} <= set(secret_paths(schema))  # a dsn may hold the password
            continue
        assert {"aws_secret_access_key", "aws_session_token", "aws_access_key_id"} <= set(
            secret_paths(schema)
        )


def _job(tmp_path: Path, text: str) -> Path:
    (tmp_path / "people.csv").write_text("id;name\n1;ada\n2;bob\n")
    job = tmp_path / "job.yaml"
    job.write_text(textwrap.dedent(text))
    return job


def test_a_typo_in_a_builtin_config_fails_with_a_did_you_mean(tmp_path: Path) -> None:
    """Before config specs, ``delimeter`` was silently ignored and the file read with ','."""
    job = _job(
        tmp_path,
        """\
        name: typo
        source: {plugin: csv, config: {path: people.csv, delimeter: ";"}}
        target: {plugin: parquet, config: {path: out, compresion: zstd}}
        sandbox: {backend: none}
        """,
    )
    result = runner.invoke(app, ["validate", "--config", str(job), "--json"])
    assert result.exit_code == 2, result.output
    steps = {s["step"]: s for s in json.loads(result.stdout)["steps"]}
    assert steps["source plugin"]["message"] == (
        f"{job}: source.config (csv) does not match the plugin's config_schema (1 problem): "
        "source.config.delimeter is not a key this plugin takes; did you mean 'delimiter'?"
    )
    assert (
        "target.config.compresion is not a key this plugin takes; did you mean 'compression'?"
        in (steps["target plugin"]["message"])
    )
    run = runner.invoke(app, ["run", "--config", str(job)])
    assert run.exit_code == 2
    assert not list(tmp_path.glob("out/**/*.parquet"))


def test_the_builtins_take_every_setting_the_runtime_gives_them(tmp_path: Path) -> None:
    job = _job(
        tmp_path,
        """\
        name: every-setting
        source:
          plugin: csv
          config: {path: people.csv, delimiter: ";", skip_rows: "0", block_size: 1m, has_header: true}
          stream: people
          incremental: {strategy: mtime}
        schema: [{name: id, type: integer, required: true}, {name: name, type: string}]
        validation: quarantine
        target:
          plugin: parquet
          config: {path: out, compression: ZSTD, partition_by: name, target_file_size: 64m, fsync: false}
        sandbox: {backend: none}
        """,
    )
    result = runner.invoke(app, ["run", "--config", str(job), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records_written"] == 2


# The CLI ------------------------------------------------------------------------------------


def _spec_job(tmp_path: Path, config: dict[str, Any], backend: str = "none") -> Path:
    job = tmp_path / "jobs" / "job.yaml"
    job.parent.mkdir(parents=True, exist_ok=True)
    job.write_text(
        json.dumps(
            {
                "name": "spec",
                "source": {"plugin": f"{SPECS}:SpecReader", "config": config},
                "target": {"plugin": "parquet", "config": {"path": "../out"}},
                "sandbox": {"backend": backend},
            }
        )
    )
    return job


BAD = {"records": 2, "page_sise": 10, "bearer": SECRET}


@pytest.mark.parametrize("command", ["validate", "run", "check", "discover"])
def test_every_command_refuses_a_config_its_plugin_s_spec_refuses(tmp_path: Path, command: str) -> None:
    job = _spec_job(tmp_path, BAD)
    result = runner.invoke(app, [command, "--config", str(job), "--json"])
    assert result.exit_code == 2, result.output
    assert (
        "source.config.page_sise is not a key this plugin takes; did you mean 'page_size'?" in result.output
    )
    assert "source.config.bearer must be at least 30 character(s) long" in result.output
    assert SECRET not in result.output
    human = runner.invoke(app, [command, "--config", str(job)])
    assert human.exit_code == 2
    assert "did you mean 'page_size'?" in human.output
    assert SECRET not in human.output


def test_discover_with_a_plugin_reference_checks_the_config_too() -> None:
    result = runner.invoke(
        app,
        [
            "discover",
            "--plugin",
            f"{SPECS}:SpecReader",
            "--set",
            "records=1",
            "--set",
            "pagesize=3",
            "--sandbox",
            "none",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "config.pagesize is not a key this plugin takes; did you mean 'page_size'?" in result.output


def test_plugins_inspect_prints_the_spec() -> None:
    data = json.loads(runner.invoke(app, ["plugins", "inspect", f"{SPECS}:SpecReader", "--json"]).stdout)
    assert data["config_schema"]["required"] == ["records"]
    assert data["secrets"] == ["bearer", "auth.key_material"]
    human = runner.invoke(app, ["plugins", "inspect", f"{SPECS}:SpecReader"])
    assert human.exit_code == 0
    assert "config spec (config_schema); no other keys" in human.stdout
    row = next(line for line in human.stdout.splitlines() if "bearer" in line)
    assert [w for w in row.replace("│", " ").split() if w != "|"] == [
        "bearer",
        "string",
        "yes",
        "API",
        "token.",
    ]
    assert "nested secrets: auth.key_material" in human.stdout
    none = runner.invoke(
        app, ["plugins", "inspect", f"{Path(__file__).parent / 'data' / 'plugins.py'}:IncompatibleReader"]
    )
    assert "config spec: none declared" in none.stdout
    broken = runner.invoke(app, ["plugins", "inspect", f"{SPECS}:BrokenSpecReader", "--json"])
    assert broken.exit_code == 1
    assert "declares an invalid config_schema" in broken.stdout + broken.stderr


def test_schema_with_a_plugin_embeds_its_config_schema_for_editors(tmp_path: Path) -> None:
    plain = json.loads(runner.invoke(app, ["schema"]).stdout)
    reader = json.loads(runner.invoke(app, ["schema", "--plugin", f"{SPECS}:SpecReader"]).stdout)
    writer = json.loads(runner.invoke(app, ["schema", "--plugin", "parquet"]).stdout)
    assert reader["$defs"]["SourceSpec"]["properties"]["config"]["$ref"] == "#/$defs/PluginConfig"
    assert reader["$defs"]["TargetSpec"] == plain["$defs"]["TargetSpec"]
    assert writer["$defs"]["TargetSpec"]["properties"]["config"]["$ref"] == "#/$defs/PluginConfig"
    assert "compression" in writer["$defs"]["PluginConfig"]["properties"]
    # The plugin's own $refs now point inside the job schema; the whole schema still validates job files.
    embedded = reader["$defs"]["PluginConfig"]["properties"]["auth"]["properties"]["key_material"]
    assert embedded == {"$ref": "#/$defs/PluginConfig/$defs/hidden"}
    validator = Draft202012Validator(reader)
    good = {
        "name": "j",
        "source": {"plugin": "x", "config": {"records": 1, "auth": {"key_material": "k"}}},
        "target": {"plugin": "parquet", "config": {"path": "o"}},
    }
    assert not list(validator.iter_errors(good))
    bad = {**good, "source": {"plugin": "x", "config": {"records": 1, "auth": {"key_material": 5}}}}
    assert [list(e.absolute_path) for e in validator.iter_errors(bad)] == [
        ["source", "config", "auth", "key_material"]
    ]
    failed = runner.invoke(app, ["schema", "--plugin", "no-such-plugin"])
    assert failed.exit_code == 2


def test_a_schema_nested_too_deep_is_refused_before_the_validator_recurses() -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(200):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(PluginError, match="nested more than 64 levels deep"):
        check_plugin_config("deep.py:R", schema, {})


def test_a_ref_out_of_the_schema_is_the_plugin_s_error_and_nothing_is_fetched() -> None:
    for schema in (
        {"$ref": "https://example.invalid/spec.json"},
        {"properties": {"a": {"$ref": "#/$defs/nope"}}},
    ):
        with pytest.raises(PluginError, match="declares a config_schema that cannot be applied"):
            check_plugin_config("r.py:R", schema, {"a": "x"})
