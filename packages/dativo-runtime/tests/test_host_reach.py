"""In cloud mode the runtime's own process touches only the host paths and servers the operator allows.

The built-in connectors that run in the runtime's process (csv, jsonl, parquet, iceberg), the
state store, the quarantine and a sandboxed writer's output folder are held to the policy's
``data_roots`` (default: the job file's folder) and ``allowed_endpoints`` (default: none).
Each refused job exits 2 before it touches anything; the same job in self-hosted mode runs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._cli._app import app
from dativo_runtime._engine._host_reach import check_host_reach
from dativo_runtime._jobs._model import parse_job
from dativo_runtime._sandbox._operator_policy import OperatorPolicy

pytestmark = pytest.mark.usefixtures("forget_secrets")
CLOUD = OperatorPolicy(mode="cloud", allowed_backends=("process", "docker"))


def _job(folder: Path, source: dict[str, Any], target: dict[str, Any] | None = None, **extra: Any) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "tenant": "acme",
        "name": "reach",
        "source": source,
        "target": target or {"plugin": "parquet", "config": {"path": "./out"}},
        **extra,
    }
    return parse_job(data, source_file=folder / "job.yaml")


def _csv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rows.csv"
    path.write_text("id,name\n1,a\n2,b\n")
    return path


def test_paths_inside_the_job_folder_are_allowed(tmp_path: Path) -> None:
    _csv(tmp_path / "job" / "data")
    job = _job(tmp_path / "job", {"plugin": "csv", "config": {"path": "data/*.csv"}})
    check_host_reach(job, CLOUD)


@pytest.mark.parametrize(
    ("source", "target", "extra", "setting"),
    [
        ({"plugin": "csv", "config": {"path": "/etc/passwd"}}, None, {}, "source.config.path"),
        ({"plugin": "jsonl", "config": {"path": "/etc/*.conf"}}, None, {}, "source.config.path"),
        ({"plugin": "csv", "config": {"path": "data/../../elsewhere.csv"}}, None, {}, "source.config.path"),
        (None, {"plugin": "parquet", "config": {"path": "/var/tmp/victim"}}, {}, "target.config.path"),
        (None, None, {"state": {"uri": "/var/tmp/state"}}, "state.uri"),
        (None, None, {"quarantine": {"path": "/var/tmp/quarantine"}}, "quarantine.path"),
        (
            None,
            {
                "plugin": "iceberg",
                "config": {
                    "warehouse": "./wh",
                    "table": "a.b",
                    "catalog": {"type": "sql", "uri": "sqlite:////var/tmp/host.db"},
                },
            },
            {},
            "target.config.catalog.uri",
        ),
    ],
)
def test_a_cloud_job_may_not_name_host_paths_outside_its_folder(
    tmp_path: Path, source: Any, target: Any, extra: dict[str, Any], setting: str
) -> None:
    _csv(tmp_path / "job" / "data")
    source = source or {"plugin": "csv", "config": {"path": "data/rows.csv"}}
    job = _job(tmp_path / "job", source, target, **extra)
    with pytest.raises(ConfigurationError, match="outside what a cloud job may touch") as refused:
        check_host_reach(job, CLOUD)
    assert refused.value.details["setting"] == setting
    assert "sandbox.data_roots" in str(refused.value)
    check_host_reach(job, OperatorPolicy())  # self-hosted: the operator's own job file


def test_a_symlink_out_of_the_job_folder_is_outside(tmp_path: Path) -> None:
    outside = _csv(tmp_path / "outside")
    (tmp_path / "job").mkdir()
    os.symlink(outside.parent, tmp_path / "job" / "data")
    job = _job(tmp_path / "job", {"plugin": "csv", "config": {"path": "data/rows.csv"}})
    with pytest.raises(ConfigurationError, match="outside what a cloud job may touch"):
        check_host_reach(job, CLOUD)


def test_the_operator_names_the_data_roots(tmp_path: Path) -> None:
    shared = _csv(tmp_path / "shared")
    job = _job(tmp_path / "job", {"plugin": "csv", "config": {"path": str(shared)}})
    with pytest.raises(ConfigurationError):
        check_host_reach(job, CLOUD)
    roots = OperatorPolicy(mode="cloud", allowed_backends=("process",), data_roots=(tmp_path,))
    check_host_reach(job, roots)
    only_shared = OperatorPolicy(mode="cloud", allowed_backends=("process",), data_roots=(shared.parent,))
    with pytest.raises(ConfigurationError, match="the data roots of"):
        check_host_reach(job, only_shared)  # the job's own folder is no longer a root: ./out is outside


@pytest.mark.parametrize(
    ("target", "server"),
    [
        (
            {"plugin": "parquet", "config": {"path": "s3://b/x", "endpoint_url": "http://127.0.0.1:5000"}},
            "127.0.0.1:5000",
        ),
        (
            {
                "plugin": "iceberg",
                "config": {
                    "warehouse": "s3://b/wh",
                    "table": "a.b",
                    "catalog": {"uri": "http://169.254.169.254/v1"},
                },
            },
            "169.254.169.254",
        ),
        (
            {
                "plugin": "iceberg",
                "config": {
                    "warehouse": "s3://b/wh",
                    "table": "a.b",
                    "catalog": {"type": "sql", "uri": "postgresql://user:hunter2@db.internal:5432/cat"},
                },
            },
            "db.internal:5432",
        ),
    ],
)
def test_a_cloud_job_reaches_only_the_servers_the_operator_allows(
    tmp_path: Path, target: dict[str, Any], server: str
) -> None:
    _csv(tmp_path / "job" / "data")
    job = _job(tmp_path / "job", {"plugin": "csv", "config": {"path": "data/rows.csv"}}, target)
    with pytest.raises(ConfigurationError, match=r"sandbox\.allowed_endpoints") as refused:
        check_host_reach(job, CLOUD)
    assert refused.value.details["server"] == server
    assert "hunter2" not in str(refused.value)
    host = server.split(":", maxsplit=1)[0]
    for entry in (server, host):
        allowed = OperatorPolicy(mode="cloud", allowed_backends=("process",), allowed_endpoints=(entry,))
        check_host_reach(job, allowed)


def _cloud_job_reading_outside(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A cloud job (written to ``job/job.yaml``) whose csv source is a file outside its folder."""
    folder = tmp_path / "job"
    folder.mkdir()
    secret = _csv(tmp_path / "host-only")
    job = {
        "tenant": "acme",
        "name": "reach",
        "mode": "cloud",
        "source": {"plugin": "csv", "config": {"path": str(secret)}},
        "target": {"plugin": "parquet", "config": {"path": "./out"}},
    }
    (folder / "job.yaml").write_text(json.dumps(job))
    return folder, secret, job


def test_the_run_refuses_before_reading_and_self_hosted_runs(tmp_path: Path) -> None:
    folder, _secret, job = _cloud_job_reading_outside(tmp_path)
    result = CliRunner().invoke(app, ["run", "--config", str(folder / "job.yaml"), "--json"])
    assert result.exit_code == 2, result.stdout
    error = json.loads(result.stdout)["error"]
    assert error["error_type"] == "ConfigurationError"
    assert "source.config.path" in error["message"]
    assert not (folder / "out").exists()
    job["mode"] = "self_hosted"
    (folder / "job.yaml").write_text(json.dumps(job))
    result = CliRunner().invoke(app, ["run", "--config", str(folder / "job.yaml"), "--json"])
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["records_written"] == 2


def test_the_policy_file_takes_data_roots_and_allowed_endpoints(tmp_path: Path) -> None:
    config = tmp_path / "runtime.yaml"
    config.write_text(
        "sandbox:\n  mode: cloud\n  data_roots: [/srv/tenants]\n  allowed_endpoints: [s3.local:9000]\n"
    )
    policy = OperatorPolicy.load(config)
    assert policy.data_roots == (Path("/srv/tenants"),)
    assert policy.allowed_endpoints == ("s3.local:9000",)
    for text, words in [
        ("sandbox: {data_roots: relative/dir}", "must be a list"),
        ("sandbox: {data_roots: [relative/dir]}", "must be absolute"),
        ("sandbox: {allowed_endpoints: [1]}", "must be a list"),
    ]:
        config.write_text(text)
        with pytest.raises(ConfigurationError, match=words):
            OperatorPolicy.load(config)


def test_check_and_discover_are_held_to_the_same_rules(tmp_path: Path) -> None:
    folder, secret, _job = _cloud_job_reading_outside(tmp_path)
    for command in (["check"], ["discover"]):
        result = CliRunner().invoke(app, [*command, "--config", str(folder / "job.yaml"), "--json"])
        assert result.exit_code == 2, (command, result.stdout)
        assert "source.config.path" in result.stdout, result.stdout
        assert "id,name" not in result.stdout
    policy = tmp_path / "runtime.yaml"
    policy.write_text("sandbox: {mode: cloud}\n")
    result = CliRunner().invoke(
        app,
        ["discover", "--plugin", "csv", "--set", f"path={secret}", "--json"],
        env={"DATIVO_RUNTIME_CONFIG": str(policy)},
    )
    assert result.exit_code == 2, result.stdout
    assert "outside what a cloud job may touch" in result.stdout


@pytest.mark.parametrize(
    ("catalog", "words"),
    [
        ({"type": "sql", "uri": "sqlite:///wh/c.db", "warehouse": "/var/tmp/elsewhere"}, "catalog.warehouse"),
        ({"uri": "http://127.0.0.1:1/c", "oauth2-server-uri": "http://10.0.0.1/t"}, "allowed_endpoints"),
        ({"type": "sql", "uri": "sqlite:///wh/c.db", "py-io-impl": "os.system"}, "names a class"),
    ],
)
def test_iceberg_catalog_properties_are_held_too(tmp_path: Path, catalog: dict[str, Any], words: str) -> None:
    _csv(tmp_path / "job" / "data")
    target = {"plugin": "iceberg", "config": {"warehouse": "./wh", "table": "a.b", "catalog": catalog}}
    job = _job(tmp_path / "job", {"plugin": "csv", "config": {"path": "data/rows.csv"}}, target)
    allowed = OperatorPolicy(mode="cloud", allowed_backends=("process",), allowed_endpoints=("127.0.0.1",))
    with pytest.raises(ConfigurationError, match=re.escape(words)):
        check_host_reach(job, allowed)
