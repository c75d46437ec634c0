"""``plugins inspect`` and ``schema --plugin`` under a cloud policy: the plugin is imported in a sandbox, never here.

Each command runs as a ``dativo-run`` subprocess with ``DATIVO_TEST_IMPORT_MARKER`` set: the
plugin's module writes that marker when it is imported, and a sandbox never sees the host's
variables, so the marker appears only if the host imported the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"
MARKER_READER = f"{PLUGINS / 'import_marker.py'}:MarkerReader"
FUTURE_READER = f"{PLUGINS / 'import_marker.py'}:FutureReader"


def _cli(tmp_path: Path, *args: str, policy: str | None) -> tuple[subprocess.CompletedProcess[str], Path]:
    marker = tmp_path / "imported-in-host"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATIVO_")}
    env["DATIVO_TEST_IMPORT_MARKER"] = str(marker)
    if policy is not None:
        (tmp_path / "runtime.yaml").write_text(policy)
        env["DATIVO_RUNTIME_CONFIG"] = str(tmp_path / "runtime.yaml")
    result = subprocess.run(
        [sys.executable, "-c", "from dativo_runtime._cli._app import main; main()", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    return result, marker


def _cloud(backend: str) -> str:
    return f"sandbox:\n  mode: cloud\n  backend: {backend}\n"


def test_a_cloud_policy_inspects_the_plugin_in_a_sandbox(backend_name, tmp_path):
    result, marker = _cli(
        tmp_path, "plugins", "inspect", MARKER_READER, "--json", policy=_cloud(backend_name)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not marker.exists(), "the plugin's module was imported in the host"
    data = json.loads(result.stdout)
    assert (data["plugin_version"], data["requires_sdk"], data["role"]) == ("2.3.4", ">=1.0,<2", "reader")
    assert (data["compatible"], data["sandbox"]) == (True, backend_name)
    human, marker = _cli(tmp_path, "plugins", "inspect", MARKER_READER, policy=_cloud(backend_name))
    assert human.returncode == 0, human.stderr[-3000:]
    assert "2.3.4" in human.stdout
    assert not marker.exists()


def test_a_cloud_policy_reports_incompatibility_from_the_sandbox(process_backend, tmp_path):
    result, marker = _cli(tmp_path, "plugins", "inspect", FUTURE_READER, "--json", policy=_cloud("process"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert not marker.exists()
    data = json.loads(result.stdout)
    assert data["compatible"] is False
    assert ">=2,<3" in data["incompatibility"]


def test_a_cloud_policy_builds_the_plugin_schema_in_a_sandbox(process_backend, tmp_path):
    result, marker = _cli(tmp_path, "schema", "--plugin", MARKER_READER, policy=_cloud("process"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert not marker.exists(), "the plugin's module was imported in the host"
    assert "source" in json.loads(result.stdout)["properties"]


@pytest.mark.parametrize(
    "command", [("plugins", "inspect", MARKER_READER, "--json"), ("schema", "--plugin", MARKER_READER)]
)
def test_without_a_policy_the_host_imports_the_plugin_as_before(tmp_path, command):
    result, marker = _cli(tmp_path, *command, policy=None)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.exists()
    if command[0] == "plugins":
        assert json.loads(result.stdout)["sandbox"] == "none"
