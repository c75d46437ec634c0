"""A file plugin with a config spec, through the real ``dativo-run validate`` and ``run``, on every backend.

A config the spec refuses fails before the plugin is built (exit 2, the key path, a
did-you-mean), its secrets masked in the human output, the logs and ``--json``; so does a
``--job-dir`` child; a config the spec takes runs.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_backend

SECRET = "sk-live-0123456789abcdef"

# The key holding the token does not look secret by its name: only the spec says it is.
READER = """
from dativo_plugin_sdk import BaseReader, ConnectionTestResult


class ItemsReader(BaseReader):
    __version__ = "1.0.0"
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "bearer": {"type": "string", "secret": True},
            "page_size": {"type": "integer", "minimum": 1, "maximum": 500},
            "items": {"type": "integer", "minimum": 0},
        },
        "required": ["bearer"],
        "additionalProperties": False,
    }

    def __init__(self, config):
        super().__init__(config)
        if set(config) - {"bearer", "page_size", "items"}:
            raise RuntimeError(f"ItemsReader was built with {sorted(config)}")

    def check_connection(self):
        return ConnectionTestResult(True, "ok")

    def extract(self, state=None):
        yield [{"id": i} for i in range(self.config.get("items", 5))]
"""


def _job(tmp_path: Path, backend: str, config: str, name: str = "items") -> Path:
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / "items.py").write_text(READER)
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "token").write_text(SECRET + "\n")
    job = tmp_path / "jobs" / f"{name}.yaml"
    job.parent.mkdir(exist_ok=True)
    job.write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            source:
              plugin: ../plugins/items.py:ItemsReader
              config: {config}
            target: {{plugin: parquet, config: {{path: ../out/{name}}}}}
            sandbox: {{backend: {backend}, timeout: 120}}
            """
        )
    )
    return job


BAD_CONFIG = '{bearer: "${file:../secrets/token}", page_sise: 50, items: "many"}'


@pytest.mark.parametrize("backend", ["none", "process", "docker"])
def test_a_config_the_spec_refuses_fails_before_the_plugin_runs(
    run_cli: Any, tmp_path: Path, backend: str
) -> None:
    require_backend(backend)
    job = _job(tmp_path, backend, BAD_CONFIG)
    for command in ("validate", "run"):
        human = run_cli(command, "--config", str(job))
        as_json = run_cli(command, "--config", str(job), "--json")
        for result in (human, as_json):
            assert result.returncode == 2, result.stdout + result.stderr
            output = result.stdout + result.stderr  # stderr holds the JSON logs
            assert "page_sise" in output
            assert "ItemsReader was built" not in output
            assert "Traceback" not in output
            assert SECRET not in output
        # The human table wraps lines; the JSON document says it in one piece.
        assert (
            "source.config.page_sise is not a key this plugin takes; did you mean 'page_size'?"
            in as_json.stdout
        )
        assert "source.config.items must be an integer, got 'many' (a string)" in as_json.stdout
    assert not list(tmp_path.glob("out/**/*.parquet"))


@pytest.mark.parametrize("backend", ["none", "process", "docker"])
def test_a_config_the_spec_takes_runs(run_cli: Any, tmp_path: Path, backend: str) -> None:
    require_backend(backend)
    job = _job(tmp_path, backend, '{bearer: "${file:../secrets/token}", page_size: 50, items: 7}')
    assert run_cli("validate", "--config", str(job)).returncode == 0
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["records_written"] == 7


def test_a_secret_marked_by_the_spec_only_is_masked_in_the_plugin_s_own_errors(
    run_cli: Any, tmp_path: Path
) -> None:
    """The token sits under a key that does not look secret and comes from plain YAML: the spec alone marks it."""
    job = _job(tmp_path, "none", f"{{bearer: {SECRET}, page_size: 9000}}")
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 2
    assert "source.config.page_size must be at most 500, got 9000 (an integer)" in result.stdout
    assert SECRET not in result.stdout + result.stderr


def test_a_job_dir_child_refuses_the_config_too(run_cli: Any, tmp_path: Path) -> None:
    _job(tmp_path, "none", BAD_CONFIG, name="bad")
    _job(tmp_path, "none", '{bearer: "${file:../secrets/token}", items: 3}', name="good")
    result = run_cli("run", "--job-dir", str(tmp_path / "jobs"), "--parallel", "2", "--json")
    assert result.returncode == 2, result.stdout + result.stderr
    runs = {r["job"]: r for r in json.loads(result.stdout)["jobs"]}
    assert runs["good"]["status"] == "succeeded"
    assert runs["bad"]["exit_code"] == 2
    assert "did you mean 'page_size'?" in runs["bad"]["error"]["message"]
    assert SECRET not in result.stdout + result.stderr


# A hostile plugin: its spec's pattern backtracks exponentially on any string without an X.
# The host must not hang applying it; the pattern runs only in the sandbox and in the host's
# short-lived probe child, never in this test process.
SLOW_PATTERN_READER = """
from dativo_plugin_sdk import BaseReader, ConnectionTestResult


class SlowSpecReader(BaseReader):
    __version__ = "1.0.0"
    config_schema = {
        "type": "object",
        "properties": {"base_url": {"type": "string", "pattern": "^(.*.*)*X$"}},
        "patternProperties": {"^(a|a)*b$": {"type": "string"}},
    }

    def check_connection(self):
        return ConnectionTestResult(True, "ok")

    def extract(self, state=None):
        yield [{"id": 1}]
"""


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_a_sandboxed_spec_with_a_catastrophic_pattern_cannot_hang_the_host(
    run_cli: Any, tmp_path: Path, backend: str
) -> None:
    require_backend(backend)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "slow.py").write_text(SLOW_PATTERN_READER)
    job = tmp_path / "job.yaml"
    job.write_text(
        textwrap.dedent(
            f"""\
            name: slow
            source:
              plugin: plugins/slow.py:SlowSpecReader
              config: {{base_url: "https://api.example.com/v1/orders/2024/page/000000017"}}
            target: {{plugin: parquet, config: {{path: ./out}}}}
            sandbox: {{backend: {backend}, timeout: 60}}
            """
        )
    )
    for command in ("validate", "run"):
        started = time.monotonic()
        result = run_cli(command, "--config", str(job), "--json")
        elapsed = time.monotonic() - started
        assert result.returncode == 1, result.stdout + result.stderr
        error = json.loads(result.stdout)["error"] if command == "run" else json.loads(result.stdout)
        text = json.dumps(error)
        assert "take more than 5 s to match the config" in text, text
        assert "nested repetition" in text
        assert "Traceback" not in result.stdout + result.stderr
        assert elapsed < 45, f"{command} took {elapsed:.0f} s"
    assert not list(tmp_path.glob("out/**/*.parquet"))
