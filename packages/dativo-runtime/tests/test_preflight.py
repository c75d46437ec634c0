"""One preflight for ``run`` and ``validate``: a job ``run`` refuses before moving data fails ``validate`` alike.

Each bad job goes through both commands (``--json``); ``validate`` must exit with
``run``'s exit code and show ``run``'s error message in a failed step, and ``run`` must
have written nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dativo_runtime._cli._app import app
from dativo_runtime._sandbox.bubblewrap._backend import BubblewrapSandbox

PLUGINS = Path(__file__).parent / "data" / "plugins.py"
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("forget_secrets")


def _bubblewrap_works() -> bool:
    available, _ = BubblewrapSandbox.availability()
    return available


def _incremental_on_a_reader_that_cannot(folder: Path) -> str:
    return (
        f"name: j\nsource: {{plugin: '{PLUGINS}:CrashingReader', incremental: {{}}}}\n"
        "target: {plugin: parquet, config: {path: out}}\nsandbox: {backend: none}\n"
    )


def _unknown_stream(folder: Path) -> str:
    return (
        f"name: j\nsource: {{plugin: '{PLUGINS}:TwoStreamsReader', stream: c}}\n"
        "target: {plugin: parquet, config: {path: out}}\nsandbox: {backend: none}\n"
    )


def _several_streams_and_none_named(folder: Path) -> str:
    return (
        f"name: j\nsource: {{plugin: '{PLUGINS}:TwoStreamsReader'}}\n"
        "target: {plugin: parquet, config: {path: out}}\nsandbox: {backend: none}\n"
    )


def _unwritable_target(folder: Path) -> str:
    (folder / "a-file").write_text("not a folder\n")
    (folder / "in.csv").write_text("id\n1\n")
    return (
        "name: j\nsource: {plugin: csv, config: {path: in.csv}}\n"
        "target: {plugin: parquet, config: {path: a-file}}\nsandbox: {backend: none}\n"
    )


def _missing_plugin_class(folder: Path) -> str:
    return (
        f"name: j\nsource: {{plugin: '{PLUGINS}:NoSuchReader'}}\n"
        "target: {plugin: parquet, config: {path: out}}\nsandbox: {backend: none}\n"
    )


def _incompatible_sdk(folder: Path) -> str:
    return (
        f"name: j\nsource: {{plugin: '{PLUGINS}:IncompatibleReader'}}\n"
        "target: {plugin: parquet, config: {path: out}}\nsandbox: {backend: none}\n"
    )


def _plugin_folder_holds_the_output(folder: Path) -> str:
    plugins = folder / "plugins"
    plugins.mkdir()
    (plugins / "reader.py").write_text(
        "from dativo_plugin_sdk import BaseReader\n\n\n"
        "class Reader(BaseReader):\n"
        "    __version__ = '1.0.0'\n\n"
        "    def extract(self, state=None):\n"
        "        yield [{'id': 1}]\n"
    )
    return (
        "name: j\nsource: {plugin: 'plugins/reader.py:Reader'}\n"
        "target: {plugin: parquet, config: {path: plugins/out}}\nsandbox: {backend: process}\n"
    )


CASES = [
    pytest.param(_incremental_on_a_reader_that_cannot, 2, id="incremental-unsupported"),
    pytest.param(_unknown_stream, 2, id="unknown-stream"),
    pytest.param(_several_streams_and_none_named, 2, id="several-streams"),
    pytest.param(_unwritable_target, 2, id="unwritable-target"),
    pytest.param(_missing_plugin_class, None, id="missing-plugin-class"),
    pytest.param(_incompatible_sdk, 2, id="incompatible-sdk"),
    pytest.param(
        _plugin_folder_holds_the_output,
        2,
        id="plugin-folder-holds-the-output",
        marks=pytest.mark.skipif(
            not _bubblewrap_works(), reason="the process sandbox (bubblewrap) is not available"
        ),
    ),
]


@pytest.mark.parametrize(("write", "expected_code"), CASES)
def test_validate_gives_runs_exit_code_and_message(tmp_path: Path, write, expected_code) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(write(tmp_path))
    run = runner.invoke(app, ["run", "--config", str(job), "--json", "--log-level", "error"])
    validate = runner.invoke(app, ["validate", "--config", str(job), "--json"])
    summary = json.loads(run.stdout)
    plan = json.loads(validate.stdout)
    assert run.exit_code != 0, summary
    if expected_code is not None:
        assert run.exit_code == expected_code, summary
    assert validate.exit_code == run.exit_code, (plan, summary)
    assert plan["exit_code"] == run.exit_code
    failed = {step["message"] for step in plan["steps"] if not step["ok"]}
    assert summary["error"]["message"] in failed, (failed, summary["error"])
    assert summary["records_read"] == 0
    assert not list(tmp_path.rglob("*.parquet"))
