"""``dativo-run plugins install`` and ``plugins envs``: their tables, their JSON and their exit codes."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dativo_runtime._cli._app import app
from dativo_runtime._plugins._environments import EnvironmentStore

runner = CliRunner()

pytestmark = pytest.mark.usefixtures("forget_secrets")

READER = """
from dativo_plugin_sdk import BaseReader, ConnectionTestResult, DiscoveryResult


class Reader(BaseReader):
    def check_connection(self):
        return ConnectionTestResult(success=True)

    def discover(self):
        return DiscoveryResult([])

    def extract(self, state=None):
        yield []
"""


def _job(folder: Path, name: str, requirements: str | None) -> Path:
    plugin_dir = folder / f"plugins-{name}"
    plugin_dir.mkdir(parents=True)
    (plugin_dir / "reader.py").write_text(READER, encoding="utf-8")
    if requirements is not None:
        (plugin_dir / "requirements.txt").write_text(requirements, encoding="utf-8")
    job = folder / f"{name}.yaml"
    job.write_text(
        f"name: {name}\nsource: {{plugin: plugins-{name}/reader.py:Reader}}\n"
        f"target: {{plugin: parquet, config: {{path: ./out-{name}}}}}\n",
        encoding="utf-8",
    )
    return job


def test_install_one_job_json_then_reused(dativo_home: Path, tmp_path: Path, wheelhouse: Path) -> None:
    job = _job(tmp_path, "app", "dativo-envtest-app==1.0\n")
    result = runner.invoke(
        app, ["plugins", "install", "--config", str(job), "--find-links", str(wheelhouse), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["exit_code"] == 0
    assert data["store"] == str(dativo_home / "envs")
    source, target = data["environments"]
    assert source["role"] == "source"
    assert source["status"] == "built"
    assert source["requirements"] == ["dativo-envtest-app==1.0"]
    assert source["origin"] == str(tmp_path / "plugins-app" / "requirements.txt")
    assert source["path"] == str(dativo_home / "envs" / source["env_key"])
    assert source["size_bytes"] > 0
    assert source["error"] is None
    assert source["job"] == "default/app"
    assert source["job_file"] == str(job)
    assert target == {
        "job": "default/app",
        "job_file": str(job),
        "role": "target",
        "plugin": "parquet",
        "status": "none",
        "env_key": None,
        "requirements": [],
        "origin": None,
        "path": None,
        "size_bytes": None,
        "error": None,
    }
    again = runner.invoke(app, ["plugins", "install", "--config", str(job), "--find-links", str(wheelhouse)])
    assert again.exit_code == 0
    assert "reused" in again.stdout
    assert source["env_key"] in again.stdout


def test_install_a_job_dir_shares_one_environment_and_reports_failures(
    dativo_home: Path, tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = tmp_path / "jobs"
    _job(jobs, "a", "dativo-envtest-base==1.0\n")
    _job(jobs, "b", "# the same, spelled otherwise\nDativo_Envtest_Base == 1.0\n")
    _job(jobs, "c", "dativo-no-such-package-xyz==1.0\n")
    _job(jobs, "d", None)
    monkeypatch.setenv("DATIVO_FIND_LINKS", str(wheelhouse))
    result = runner.invoke(app, ["plugins", "install", "--job-dir", str(jobs), "--json"])
    assert result.exit_code == 2, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert data["exit_code"] == 2
    sources = {row["job"]: row for row in data["environments"] if row["role"] == "source"}
    assert sources["default/a"]["status"] == "built"
    assert sources["default/b"]["status"] == "reused"
    assert sources["default/a"]["env_key"] == sources["default/b"]["env_key"]
    assert sources["default/d"]["status"] == "none"
    failed = sources["default/c"]
    assert failed["status"] == "failed"
    assert failed["error"]["error_code"] == "CONFIGURATION_ERROR"
    assert "dativo-no-such-package-xyz" in failed["error"]["message"]
    assert "not found in the provided package locations" in failed["error"]["message"]


def test_install_unknown_package_exits_2_with_uvs_message(dativo_home: Path, tmp_path: Path) -> None:
    job = _job(tmp_path, "bad", "dativo-no-such-package-xyz==1.0\n")
    result = runner.invoke(app, ["plugins", "install", "--config", str(job), "--no-progress"])
    assert result.exit_code == 2
    assert "failed" in result.stdout
    assert "error: No solution found when resolving dependencies" in result.stderr
    assert "cause: Because dativo-no-such-package-xyz was not found in the package registry" in result.stderr


def test_install_usage_errors(dativo_home: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["plugins", "install"]).exit_code == 2
    job = _job(tmp_path, "x", None)
    both = runner.invoke(app, ["plugins", "install", "--config", str(job), "--job-dir", str(tmp_path)])
    assert both.exit_code == 2
    assert "not both" in both.stderr
    missing = runner.invoke(
        app, ["plugins", "install", "--config", str(job), "--find-links", str(tmp_path / "no")]
    )
    assert missing.exit_code == 0  # nothing to install: the wheel folder is not needed
    bad_option = _job(tmp_path, "y", "--index-url https://example.invalid/simple\n")
    refused = runner.invoke(app, ["plugins", "install", "--config", str(bad_option), "--json"])
    assert refused.exit_code == 2
    assert (
        "'--index-url' is not supported" in json.loads(refused.stdout)["environments"][0]["error"]["message"]
    )


def test_envs_lists_and_prunes(dativo_home: Path, tmp_path: Path, wheelhouse: Path) -> None:
    empty = runner.invoke(app, ["plugins", "envs", "--json"])
    assert empty.exit_code == 0
    assert json.loads(empty.stdout) == {
        "store": str(dativo_home / "envs"),
        "environments": [],
    }
    job_a = _job(tmp_path, "a", "dativo-envtest-base==1.0\n")
    job_b = _job(tmp_path, "b", "dativo-envtest-base==2.0\n")
    for job in (job_a, job_b):
        assert (
            runner.invoke(
                app, ["plugins", "install", "--config", str(job), "--find-links", str(wheelhouse)]
            ).exit_code
            == 0
        )

    listing = runner.invoke(app, ["plugins", "envs", "--json"])
    environments = json.loads(listing.stdout)["environments"]
    assert len(environments) == 2
    assert set(environments[0]) == {
        "env_key",
        "path",
        "requirements",
        "origin",
        "python",
        "platform",
        "runtime_version",
        "uv_version",
        "created",
        "last_used",
        "size_bytes",
    }
    table = runner.invoke(app, ["plugins", "envs"])
    assert table.exit_code == 0
    assert "2 plugin environment(s)" in table.stdout
    assert "just now" in table.stdout

    # Recently used: the default prune (30 days) keeps both.
    kept = json.loads(runner.invoke(app, ["plugins", "envs", "--prune", "--json"]).stdout)
    assert kept["removed"] == []
    assert len(kept["kept"]) == 2

    # Everything job a does not need, whatever its age; a dry run first.
    args = ["plugins", "envs", "--prune", "--config", str(job_a), "--older-than", "0"]
    dry = json.loads(runner.invoke(app, [*args, "--dry-run", "--json"]).stdout)
    assert dry["dry_run"] is True
    assert [e["requirements"] for e in dry["removed"]] == [["dativo-envtest-base==2.0"]]
    assert len(EnvironmentStore().list()) == 2
    done = runner.invoke(app, args)
    assert done.exit_code == 0
    assert "removed" in done.stdout
    assert [e.spec.requirements for e in EnvironmentStore().list()] == [("dativo-envtest-base==1.0",)]

    # Unused for 40 days: the default prune removes it.
    (environment,) = EnvironmentStore().list()
    long_ago = (datetime.now(timezone.utc) - timedelta(days=40)).timestamp()
    os.utime(EnvironmentStore().root / f"{environment.key}.used", (long_ago, long_ago))
    pruned = json.loads(runner.invoke(app, ["plugins", "envs", "--prune", "--json"]).stdout)
    assert [e["env_key"] for e in pruned["removed"]] == [environment.key]
    assert pruned["freed_bytes"] > 0
    assert EnvironmentStore().list() == []


def test_envs_usage_errors(dativo_home: Path) -> None:
    for args in (["--older-than", "3"], ["--dry-run"], ["--config", "job.yaml"]):
        result = runner.invoke(app, ["plugins", "envs", *args])
        assert result.exit_code == 2
        assert "go with --prune" in result.stderr
    negative = runner.invoke(app, ["plugins", "envs", "--prune", "--older-than", "-1"])
    assert negative.exit_code == 2


def test_progress_display_shows_builds_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from dativo_runtime._cli._render import environment_progress
    from dativo_runtime._plugins._environments import EnvironmentProgress

    with environment_progress(False) as disabled:
        assert disabled is None
    with environment_progress(True) as update:
        assert update is not None
        update(EnvironmentProgress("k1", "job a", "building"))
        update(EnvironmentProgress("k1", "job a", "output", " + six==1.16.0"))
        update(EnvironmentProgress("k1", "job a", "built", elapsed_s=1.25))
        update(EnvironmentProgress("k2", "job b", "waiting"))
        update(EnvironmentProgress("k2", "job b", "failed", "error: nope", 0.5))
    err = capsys.readouterr().err
    assert "✓ built k1 (job a) in 1.2s" in err
    assert "✗ failed to build k2 (job b) in 0.5s" in err
