"""Secrets from the environment or files never reach stdout, stderr or --json output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TOKEN = "tok-3f9a81c2-very-secret"
PASSWORD = "pw-from-a-file-7d2e"


@pytest.fixture
def leaky_job(tmp_path: Path, write_job: Any, test_plugins: Path) -> Path:
    (tmp_path / "db_password").write_text(PASSWORD + "\n")
    return write_job(
        f"""
        name: leaky
        source:
          plugin: {test_plugins}:LeakyReader
          config:
            token: ${{API_TOKEN}}
            password: ${{file:db_password}}
            note: "password is ${{file:db_password}}"
        target: {{plugin: parquet, config: {{path: out}}}}
        sandbox: {{backend: none}}
        """
    )


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--log-format", "json"],
        ["run", "--json"],
        ["run", "--log-format", "text", "--log-level", "debug"],
        ["check", "--json"],
        ["check"],
        ["validate", "--json"],
        ["discover", "--json"],
    ],
    ids=lambda a: " ".join(a),
)
def test_known_secrets_never_appear_in_any_output(leaky_job: Path, run_cli: Any, args: list[str]) -> None:
    result = run_cli(*args[:1], "--config", str(leaky_job), *args[1:], env={"API_TOKEN": TOKEN})
    output = result.stdout + result.stderr
    assert output.strip(), "the command printed nothing, so the test would prove nothing"
    assert TOKEN not in output
    assert PASSWORD not in output
    assert "***" in output or args[0] in ("discover",)
    if "--json" in args:
        json.loads(result.stdout)  # what the plugin printed went to stderr, not into the document
    if args[0] == "run":
        assert result.returncode == 77


def test_the_plugin_really_saw_the_secret(leaky_job: Path, run_cli: Any) -> None:
    # The masked output above is only meaningful if the value reached the plugin intact.
    result = run_cli("check", "--config", str(leaky_job), "--json", env={"API_TOKEN": TOKEN})
    assert result.returncode == 77
    assert "refused token ***" in result.stdout
