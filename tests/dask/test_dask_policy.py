"""The client's operator policy holds on Dask workers that have none of their own.

The client runs with ``DATIVO_RUNTIME_CONFIG`` naming a ``mode: cloud`` policy; the scheduler and
workers are started without it. A job the policy forbids is refused by the client as a run without
Dask refuses it; a task that reaches a worker anyway runs under the client's policy (never
in-process), and the client's ceilings bound the sandboxes on the workers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dativo_plugin_sdk import ConfigurationError, Partition
from dativo_runtime._batch._dask_partitions import stage_partition_task
from dativo_runtime._batch._dask_task import run_job_task
from dativo_runtime._engine._partition_task import PartitionRequest
from dativo_runtime._jobs._model import load_job
from dativo_runtime._sandbox._policy import OperatorPolicy
from tests.conftest import clean_env, require_backend
from tests.dask.cluster import PLUGINS, DaskProcesses, dask_processes

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def bare_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskProcesses]:
    """A scheduler and two workers started without an operator policy (no ``DATIVO_*`` variables)."""
    with dask_processes(tmp_path_factory.mktemp("dask-logs"), workers=2, env=clean_env()) as cluster:
        yield cluster


def _cloud_policy(tmp_path: Path, extra: str = "") -> dict[str, str]:
    path = tmp_path / "runtime.yaml"
    # The jobs' folder, their output and the marker lie under tmp_path: the data root.
    path.write_text(f"sandbox:\n  mode: cloud\n  data_roots: [{tmp_path}]\n{extra}")
    return {"DATIVO_RUNTIME_CONFIG": str(path)}


def _where_job(tmp_path: Path, *, backend: str, parallelism: int = 2, delay: float = 0) -> Path:
    jobs = tmp_path / "jobs"
    jobs.mkdir(exist_ok=True)
    path = jobs / "where.yaml"
    config = {"partitions": 2, "marker": str(tmp_path / "ran-on-the-host"), "delay_s": delay}
    path.write_text(
        f"""
tenant: acme
name: where
source:
  plugin: {PLUGINS}:WhereReader
  config: {json.dumps(config)}
  parallelism: {parallelism}
target: {{plugin: parquet, config: {{path: {tmp_path / "out"}}}}}
sandbox: {{backend: {backend}}}
retry: {{max_attempts: 1}}
"""
    )
    return path


def _require_a_sandbox() -> None:
    from dativo_runtime._sandbox import DockerSandbox

    if not DockerSandbox.availability()[0]:  # ``auto`` takes Docker first, else bubblewrap.
        require_backend("process")


def _on_dask(run_cli: Any, tmp_path: Path, cluster: DaskProcesses, env: dict[str, str]) -> Any:
    return run_cli("run", "--job-dir", str(tmp_path / "jobs"), "--executor", "dask",
                   "--scheduler", cluster.address, "--json", env=env)  # fmt: skip


@pytest.mark.parametrize("parallelism", [1, 2], ids=["one-task", "partitions"])
def test_a_cloud_client_refuses_an_in_process_job_as_a_local_run_does(
    tmp_path: Path, bare_workers: DaskProcesses, run_cli: Any, parallelism: int
) -> None:
    job = _where_job(tmp_path, backend="none", parallelism=parallelism)
    env = _cloud_policy(tmp_path)
    local = run_cli("run", "--config", str(job), "--json", env=env)
    assert local.returncode == 2, local.stderr
    on_dask = _on_dask(run_cli, tmp_path, bare_workers, env)
    assert on_dask.returncode == 2, on_dask.stderr
    refused = json.loads(on_dask.stdout)["jobs"][0]["error"]
    assert refused["message"] == json.loads(local.stdout)["error"]["message"]
    assert "cloud mode always sandboxes plugins" in refused["message"]
    assert refused["error_type"] == "ConfigurationError"
    assert "ran on Dask worker" not in on_dask.stderr  # Refused before anything was submitted.
    assert not (tmp_path / "ran-on-the-host").exists()


def test_a_worker_runs_a_task_under_the_client_policy_though_it_has_none(
    tmp_path: Path, bare_workers: DaskProcesses
) -> None:
    from distributed import Client

    job = _where_job(tmp_path, backend="none", parallelism=1)
    cloud = OperatorPolicy(mode="cloud", data_roots=(tmp_path,), source="the client's runtime.yaml")
    request = PartitionRequest(
        job=load_job(job), run_id="r1", writer_run_id="w1", tag="p0", stream=None, columns=None,
        partition=Partition("p0", {}).to_dict(), state=None, ingest_date="2026-01-01",
    )  # fmt: skip
    # Submitted as a client that skipped its own check would: the workers still refuse.
    with Client(bare_workers.address, timeout=30) as client:
        whole = client.submit(run_job_task, str(job), policy=cloud, pure=False).result()
        with pytest.raises(ConfigurationError, match="cloud mode always sandboxes plugins"):
            client.submit(stage_partition_task, request, cloud, pure=False).result()
    record = whole["result"]
    assert record["exit_code"] == 2, record
    assert f"Dask worker {whole['worker']} cannot run job acme/where" in record["error"]["message"]
    assert "cloud mode always sandboxes plugins" in record["error"]["message"]
    assert not (tmp_path / "ran-on-the-host").exists()


def test_a_partitioned_job_of_a_cloud_client_reads_its_partitions_sandboxed(
    tmp_path: Path, bare_workers: DaskProcesses, run_cli: Any
) -> None:
    _require_a_sandbox()
    _where_job(tmp_path, backend="auto")
    result = _on_dask(run_cli, tmp_path, bare_workers, _cloud_policy(tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["jobs"][0]
    assert sorted(p["name"] for p in summary["partitions"]) == ["p0", "p1"]
    files = [str(p) for p in (tmp_path / "out").rglob("*.parquet") if "_dativo" not in p.parts]
    rows = duckdb.sql(f"select partition, seccomp from read_parquet({files!r}) order by partition").fetchall()
    assert rows == [("p0", "2"), ("p1", "2")]  # Each partition read under a seccomp filter.
    assert not (tmp_path / "ran-on-the-host").exists()


@pytest.mark.parametrize("parallelism", [1, 2], ids=["one-task", "partitions"])
def test_the_client_ceilings_bound_the_sandboxes_on_the_workers(
    tmp_path: Path, bare_workers: DaskProcesses, run_cli: Any, parallelism: int
) -> None:
    _require_a_sandbox()
    _where_job(tmp_path, backend="auto", parallelism=parallelism, delay=6)
    env = _cloud_policy(tmp_path, "  ceilings: {timeout: 2}\n")
    result = _on_dask(run_cli, tmp_path, bare_workers, env)
    assert result.returncode != 0, result.stderr
    error = json.loads(result.stdout)["jobs"][0]["error"]
    assert "exceeded the wall-clock timeout of 2 s" in error["message"], error
    assert not list((tmp_path / "out").rglob("*.parquet"))
