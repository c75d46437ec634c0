"""Where did my plugin fail? ``dativo-run`` and ``dativo-conformance`` name the plugin's own frames.

A plugin folder holds a reader and a second module; the reader's ``extract`` fails with a
``KeyError`` two calls deep, in the second module. Under every backend (``none``,
``process``, ``docker``) the human output, ``--json`` (``error.details.traceback``) and
both log formats show file (relative to the plugin's folder), line, function and source
line, innermost first; the runtime's own frames only at ``--log-level debug``. Secrets in
the message and in a source line stay masked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, require_backend

HELPERS = """\
def lookup(row):
    return pick(row)


def pick(row):
    return row["missing"]
"""

READER = """\
from dativo_plugin_sdk import BaseReader, Column, ConfigurationError, DiscoveredStream, DiscoveryResult

from helpers import lookup


class CrashyReader(BaseReader):
    __version__ = "1.0.0"

    def check_connection(self):
        return lookup({"id": 0})

    def discover(self):
        return DiscoveryResult([DiscoveredStream("items", [Column("id", "integer")])])

    def extract(self, state=None):
        yield [{"id": 1}]
        lookup({"id": 2})


class BlindReader(BaseReader):
    def discover(self):
        return lookup({"id": 3})

    def extract(self, state=None):
        yield []


def refuse(config):
    raise ConfigurationError("config needs 'base_url'")


class PickyReader(BaseReader):
    def __init__(self, config):
        super().__init__(config)
        refuse(config)

    def extract(self, state=None):
        yield []


class LeakyReader(BaseReader):
    def extract(self, state=None):
        token = self.config["token"]
        if token == "tok-s3cr3t-4242": raise ValueError(f"the server refused token {token}")
        yield []
"""

SECRET = "tok-s3cr3t-4242"


def _line(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "helpers.py").write_text(HELPERS)
    (folder / "crashy.py").write_text(READER)
    return folder / "crashy.py"


def _expected(reader: Path, call: str, method: str) -> list[dict[str, Any]]:
    return [
        {"file": "helpers.py", "line": 6, "function": "pick", "code": 'return row["missing"]'},
        {"file": "helpers.py", "line": 2, "function": "lookup", "code": "return pick(row)"},
        {"file": "crashy.py", "line": _line(reader, call), "function": method, "code": call},
    ]


def _job(folder: Path, cls: str, backend: str, config: str = "{}") -> Path:
    job = folder / f"job-{backend}-{cls}.yaml"
    job.write_text(
        f"""\
tenant: acme
name: crashy
mode: {"self_hosted" if backend == "none" else "cloud"}
source:
  plugin: plugins/crashy.py:{cls}
  config: {config}
target:
  plugin: parquet
  config: {{path: ./out}}
sandbox: {{backend: {backend}, timeout: 120}}
"""
    )
    return job


def _dativo_run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from dativo_runtime._cli._app import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(env),
        timeout=300,
        check=False,
    )


def _log_lines(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _block(frames: list[dict[str, Any]], indent: str = "  ") -> str:
    return "\n".join(
        f"{indent}at {f['file']}:{f['line']} in {f['function']}\n{indent}    {f['code']}" for f in frames
    )


BACKENDS = ["none", "process", "docker"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_names_the_plugins_frames_in_human_output_json_and_logs(backend, plugin, tmp_path):
    require_backend(backend)
    job = _job(tmp_path, "CrashyReader", backend)
    expected = _expected(plugin, 'lookup({"id": 2})', "extract")

    human = _dativo_run("run", "--config", str(job), "--log-format", "json", cwd=tmp_path)
    assert human.returncode == 1, human.stderr
    assert "raised KeyError in extract(): 'missing'" in human.stderr
    assert _block(expected) in human.stderr
    assert "dativo_runtime" not in human.stderr
    assert "Traceback" not in human.stderr
    failed = next(line for line in _log_lines(human.stderr) if line["message"].startswith("run failed"))
    assert failed["traceback"] == expected

    machine = _dativo_run("run", "--config", str(job), "--json", cwd=tmp_path)
    assert machine.returncode == 1, machine.stderr
    details = json.loads(machine.stdout)["error"]["details"]
    assert details["traceback"] == expected
    assert "full_traceback" not in details  # the runtime's own frames: only at debug level

    text = _dativo_run("run", "--config", str(job), "--log-format", "text", cwd=tmp_path)
    assert "\n".join(f"  | {line.strip()}" if not line.startswith("    ") else f"  | {line[2:]}"
                     for line in _block(expected).splitlines()) in text.stderr  # fmt: skip


@pytest.mark.parametrize("backend", ["none", "process"])
def test_debug_level_adds_the_runtimes_own_frames(backend, plugin, tmp_path):
    require_backend(backend)
    job = _job(tmp_path, "CrashyReader", backend)
    result = _dativo_run("run", "--config", str(job), "--json", "--log-level", "debug", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    details = json.loads(result.stdout)["error"]["details"]
    every = details["full_traceback"]
    assert [f for f in every if f["plugin"]] == [{**f, "plugin": True} for f in details["traceback"]]
    internal = [f for f in every if not f["plugin"]]
    assert internal
    assert all(f["file"].startswith("dativo_runtime/") for f in internal)
    failed = next(line for line in _log_lines(result.stderr) if line["message"].startswith("run failed"))
    assert failed["traceback"] == every

    human = _dativo_run(
        "run", "--config", str(job), "--log-level", "debug", "--log-format", "json", cwd=tmp_path
    )
    assert (
        f"at {internal[0]['file']}:{internal[0]['line']} in {internal[0]['function']} [internal]"
        in human.stderr
    )


@pytest.mark.parametrize("backend", ["none", "process"])
def test_check_and_validate_name_the_frames_of_a_failing_check_connection(backend, plugin, tmp_path):
    require_backend(backend)
    job = _job(tmp_path, "CrashyReader", backend)
    expected = _expected(plugin, 'return lookup({"id": 0})', "check_connection")
    for command in ("check", "validate"):
        human = _dativo_run(command, "--config", str(job), cwd=tmp_path)
        assert human.returncode == 1, human.stdout + human.stderr
        assert _block(expected) in human.stdout, human.stdout
        machine = _dativo_run(command, "--config", str(job), "--json", cwd=tmp_path)
        data = json.loads(machine.stdout)
        if command == "check":
            frames = next(c for c in data["checks"] if c["role"] == "source")["details"]["traceback"]
        else:
            frames = next(s for s in data["steps"] if s["step"] == "source connection")["traceback"]
        assert frames == expected
        assert "full_traceback" not in machine.stdout


@pytest.mark.parametrize("backend", ["none", "process"])
def test_a_dativo_error_the_plugin_raises_says_where(backend, plugin, tmp_path):
    require_backend(backend)
    job = _job(tmp_path, "PickyReader", backend)
    result = _dativo_run("run", "--config", str(job), "--json", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["error_type"] == "ConfigurationError"
    assert error["details"]["traceback"] == [
        {
            "file": "crashy.py",
            "line": _line(plugin, "raise ConfigurationError"),
            "function": "refuse",
            "code": "raise ConfigurationError(\"config needs 'base_url'\")",
        },
        {
            "file": "crashy.py",
            "line": _line(plugin, "        refuse(config)"),
            "function": "__init__",
            "code": "refuse(config)",
        },
    ]


@pytest.mark.parametrize("backend", ["none", "process"])
def test_secrets_stay_masked_in_the_message_and_in_source_lines(backend, plugin, tmp_path):
    require_backend(backend)
    job = _job(tmp_path, "LeakyReader", backend, config="{token: '${API_TOKEN}'}")
    env = {"API_TOKEN": SECRET}
    outputs = [
        _dativo_run("run", "--config", str(job), *extra, cwd=tmp_path, env=env)
        for extra in (
            ("--log-format", "json"),
            ("--log-format", "text"),
            ("--json",),
            ("--json", "--log-level", "debug"),
        )
    ]
    for result in outputs:
        assert result.returncode == 1, result.stderr
        assert SECRET not in result.stdout + result.stderr
    assert "at crashy.py:" in outputs[0].stderr
    masked = 'if token == "***": raise ValueError(f"the server refused token {token}")'
    assert "the server refused token ***" in outputs[0].stderr
    assert f"at crashy.py:{_line(plugin, 'if token ==')} in extract\n      {masked}" in outputs[0].stderr
    # The text log also masks what looks like a secret key's value (here, past "token =").
    assert (
        f"  | at crashy.py:{_line(plugin, 'if token ==')} in extract\n  |     if token =" in outputs[1].stderr
    )
    for machine in outputs[2:]:
        frames = json.loads(machine.stdout)["error"]["details"]["traceback"]
        assert frames[0]["code"] == masked


def _conformance(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dativo_testkit._cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(),
        timeout=300,
        check=False,
    )


def test_conformance_reports_show_the_frames_of_each_failed_check(plugin, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    ref = "plugins/crashy.py:CrashyReader"
    text = _conformance(ref, "--config", "config.json", "--timeout", "30", cwd=tmp_path)
    assert text.returncode == 1, text.stdout + text.stderr
    connection = _expected(plugin, 'return lookup({"id": 0})', "check_connection")
    extract = _expected(plugin, 'lookup({"id": 2})', "extract")
    assert _block(connection, indent="      ") in text.stdout
    assert _block(extract, indent="      ") in text.stdout

    machine = _conformance(ref, "--config", "config.json", "--timeout", "30", "--json", cwd=tmp_path)
    checks = {c["name"]: c for c in json.loads(machine.stdout)["checks"]}
    assert checks["reader.check_connection"]["traceback"] == connection
    assert checks["reader.extract_yields_batches"]["traceback"] == extract
    assert all(c["traceback"] == [] for c in checks.values() if c["status"] != "failed")


@pytest.mark.parametrize("backend", ["none", "process"])
def test_discover_names_the_frames_of_a_failing_discover(backend, plugin, tmp_path):
    require_backend(backend)
    expected = _expected(plugin, 'return lookup({"id": 3})', "discover")
    args = ("discover", "--plugin", "plugins/crashy.py:BlindReader", "--sandbox", backend)
    human = _dativo_run(*args, cwd=tmp_path)
    assert human.returncode == 1, human.stderr
    assert f"raised KeyError in discover(): 'missing'\n{_block(expected)}" in human.stderr
    machine = _dativo_run(*args, "--json", cwd=tmp_path)
    details = json.loads(machine.stdout)["error"]["details"]
    assert details["traceback"] == expected
    assert "full_traceback" not in details
