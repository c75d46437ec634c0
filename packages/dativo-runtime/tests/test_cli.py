"""The CLI's quick commands, through Typer's runner (end-to-end runs are in the top-level tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dativo_runtime._cli._app import app

PLUGINS = Path(__file__).parent / "data" / "plugins.py"
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("forget_secrets")


def test_help_lists_commands_and_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for word in ("run", "check", "discover", "validate", "plugins", "schema", "sandbox", "77 authentication"):
        assert word in result.stdout
    run_help = runner.invoke(app, ["run", "--help"])
    assert "75 retryable" in run_help.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("dativo-run ")


def test_schema_prints_the_job_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "Dativo job file"


def test_plugins_list_shows_builtins() -> None:
    result = runner.invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0
    names = {p["name"]: p for p in json.loads(result.stdout)["plugins"]}
    assert names["csv"]["kind"] == "builtin"
    assert names["parquet"]["target"].endswith(":ParquetWriter")


def test_plugins_inspect_builtin_and_incompatible_plugin() -> None:
    result = runner.invoke(app, ["plugins", "inspect", "parquet", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["role"], data["compatible"], data["requires_sdk"]) == ("writer", True, ">=1.0,<2")
    assert "commit_files" in data["capabilities"]
    bad = runner.invoke(app, ["plugins", "inspect", f"{PLUGINS}:IncompatibleReader", "--json"])
    assert bad.exit_code == 2
    info = json.loads(bad.stdout)
    assert info["compatible"] is False
    assert info["plugin_version"] == "3.0.0"
    assert ">=2.0,<3" in info["incompatibility"]
    human = runner.invoke(app, ["plugins", "inspect", "csv"])
    assert "incremental" in human.stdout
    assert "compatible" in human.stdout


def test_plugins_inspect_unknown_name_is_a_usage_error() -> None:
    result = runner.invoke(app, ["plugins", "inspect", "no-such-plugin"])
    assert result.exit_code == 2
    assert "no plugin named 'no-such-plugin'" in result.stderr


def test_discover_a_builtin_connector_without_a_job(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text("id,name,born\n1,ada,1815-12-10\n")
    result = runner.invoke(
        app, ["discover", "--connector", "csv", "--set", f"path={tmp_path / 'people.csv'}", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    stream = json.loads(result.stdout)["objects"][0]
    assert stream["name"] == "people"
    assert [c["type"] for c in stream["schema"]] == ["integer", "string", "date"]
    human = runner.invoke(app, ["discover", "--connector", "csv", "--set", f"path={tmp_path / 'people.csv'}"])
    assert "stream people" in human.stdout


def test_discover_a_plugin_with_typed_settings() -> None:
    result = runner.invoke(
        app,
        [
            "discover",
            "--plugin",
            f"{PLUGINS}:NumbersReader",
            "--set",
            "count=5",
            "--sandbox",
            "none",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["objects"][0]["name"] == "numbers"


@pytest.mark.parametrize(
    "args",
    [
        ["discover"],
        ["discover", "--connector", "csv", "--plugin", "x"],
        ["discover", "--connector", "parquet"],
        ["discover", "--connector", "csv", "--set", "novalue"],
        ["run"],
        ["run", "--config", "a.yaml", "--job-dir", "."],
        ["run", "--config", "a.yaml", "--log-format", "xml"],
        ["run", "--config", "a.yaml", "--parallel", "2"],
        ["run", "--job-dir", ".", "--parallel", "0"],
        ["run", "--config", "a.yaml", "--metrics-port", "70000"],
        ["check"],
        ["serve", "--port", "0"],
        ["serve", "--job-dir", ".", "--port", "0", "--max-parallel", "0"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2


def test_state_show_and_reset(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id\n1\n")
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: j\nsource: {plugin: csv, config: {path: in.csv}, incremental: {strategy: mtime}}\n"
        "target: {plugin: parquet, config: {path: out}}\n"
    )
    assert runner.invoke(app, ["run", "--config", str(job), "--json"]).exit_code == 0
    shown = json.loads(runner.invoke(app, ["state", "show", "--config", str(job), "--json"]).stdout)
    assert "mtime_ns" in shown["streams"]["default"]
    unconfirmed = runner.invoke(app, ["state", "reset", "--config", str(job), "--json"])
    assert unconfirmed.exit_code == 2
    assert "--yes" in json.loads(unconfirmed.stdout)["error"]["message"]
    assert runner.invoke(app, ["state", "reset", "--config", str(job), "--yes"]).exit_code == 0
    shown = json.loads(runner.invoke(app, ["state", "show", "--config", str(job), "--json"]).stdout)
    assert shown["streams"] == {}
    files = json.loads(runner.invoke(app, ["files", "--config", str(job), "--json"]).stdout)
    assert files["record_count"] == 1
    assert len(files["files"]) == 1


def test_serve_refuses_a_folder_without_scheduled_jobs(tmp_path: Path) -> None:
    (tmp_path / "manual.yaml").write_text("name: manual\n")
    result = runner.invoke(app, ["serve", "--job-dir", str(tmp_path), "--port", "0"])
    assert result.exit_code == 2
    assert "has a schedule" in result.stderr


def test_run_refuses_a_metrics_file_in_a_missing_folder_before_running(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id\n1\n")
    job = tmp_path / "job.yaml"
    job.write_text(
        "name: j\nsource: {plugin: csv, config: {path: in.csv}}\ntarget: {plugin: parquet, config: {path: out}}\n"
    )
    result = runner.invoke(
        app, ["run", "--config", str(job), "--metrics-file", str(tmp_path / "no" / "m.prom")]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_python_dash_m_runs_the_cli() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dativo_runtime", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("dativo-run ")
