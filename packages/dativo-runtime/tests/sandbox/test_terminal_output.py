"""``dativo-run``'s human output shows a sandboxed plugin's text with its control characters escaped.

rich keeps escape sequences in a ``Text``: before the fix a plugin's error message, check
message, or stream or partition name could clear the terminal and print a forged line
(``forged: run succeeded``) under ``dativo-run run``, ``check`` and ``discover``. The plugin
(``plugins/attack_terminal.py``) runs in each real backend, in a ``dativo-run`` subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import PLUGINS

PLUGIN = f"{PLUGINS / 'attack_terminal.py'}:TerminalReader"


def _dativo_run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATIVO_")}
    environment["DATIVO_LOG_FORMAT"] = "text"
    command = [sys.executable, "-c", "from dativo_runtime._cli._app import main; main()", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=180, check=False, cwd=folder, env=environment
    )


def _job(folder: Path, backend: str, **config: object) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "tenant": "acme",
                "name": "terminal",
                "mode": "cloud",
                "source": {"plugin": PLUGIN, "config": config},
                "target": {"plugin": "parquet", "config": {"path": "./out"}},
                "sandbox": {"backend": backend, "timeout": 60},
            }
        )
    )
    return str(job)


def _assert_escaped(result: subprocess.CompletedProcess[str], *shown: str) -> None:
    output = result.stdout + result.stderr
    assert "\x1b" not in output, output
    assert not [line for line in output.splitlines() if line.lstrip(" │|").startswith("forged")], output
    for text in shown:
        assert text in output, output


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_a_credential_in_a_plugins_error_is_masked_in_every_output(
    backend_name: str, tmp_path: Path, as_json: bool
) -> None:
    job = _job(tmp_path, backend_name, fail=True)
    result = _dativo_run(tmp_path, "run", "--config", job, *(["--json"] if as_json else []))
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "password=***" in output, output
    assert "hunter2hunter2" not in output, output


@pytest.mark.parametrize(
    ("command", "config", "exit_code", "shown"),
    [
        (["run"], {"fail": True}, 1, ["boom\\x1b[2J\\x1b[H\\nforged: run succeeded", "p0\\x1b[2J"]),
        (["check"], {}, 1, ["refused\\x1b[2J"]),
        (["discover"], {}, 0, ["orders\\x1b[2J", "id\\x1b[2J"]),
    ],
)
def test_plugin_text_cannot_drive_the_terminal_or_forge_a_line(
    backend_name: str,
    tmp_path: Path,
    *,
    command: list[str],
    config: dict[str, object],
    exit_code: int,
    shown: list[str],
) -> None:
    job = _job(tmp_path, backend_name, **config)
    result = _dativo_run(tmp_path, *command, "--config", job)
    assert result.returncode == exit_code, result.stdout[-3000:] + result.stderr[-3000:]
    _assert_escaped(result, *shown)
