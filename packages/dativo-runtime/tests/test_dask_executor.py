"""The Dask executor's planning, without a cluster: worker hosts, shared storage, the task's refusals.

The runs themselves, on real schedulers and workers, are tested in tests/dask/ at the repository root.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._batch._dask_cluster import worker_hosts
from dativo_runtime._batch._dask_executor import DaskJobRunner
from dativo_runtime._batch._dask_task import run_job_task, tenant_semaphore_name
from dativo_runtime._batch._shared_storage import check_shared_storage, unshared_locations
from dativo_runtime._engine._outcome import RunStatus
from dativo_runtime._engine._run import run_job
from dativo_runtime._jobs._model import load_job
from dativo_runtime._sandbox._policy import OperatorPolicy


def _info(*addresses: str) -> dict[str, Any]:
    return {"workers": {address: {} for address in addresses}}


def test_workers_on_this_machine_count_as_one_host() -> None:
    assert worker_hosts(_info("tcp://127.0.0.1:4001", "tcp://127.0.0.1:4002", "tcp://localhost:4003")) == {
        "localhost"
    }
    assert worker_hosts(_info("tcp://10.0.0.7:4001", "tcp://10.0.0.8:4001", "tcp://10.0.0.7:4002")) == {
        "10.0.0.7",
        "10.0.0.8",
    }
    assert worker_hosts(_info("tls://[::1]:4001")) == {"localhost"}
    assert worker_hosts({}) == set()


def _job(tmp_path: Path, target: str, extra: str = "") -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        f"tenant: acme\nname: orders\nsource: {{plugin: csv, config: {{path: in.csv}}}}\n"
        f"target: {{plugin: parquet, config: {{path: {target}}}}}\n{extra}"
    )
    return path


def test_a_local_target_is_refused_when_the_workers_span_machines(tmp_path: Path) -> None:
    job = load_job(_job(tmp_path, "out"))
    check_shared_storage(job, hosts={"localhost"}, shared_paths=[])  # One machine: fine.
    with pytest.raises(ConfigurationError) as refused:
        check_shared_storage(job, hosts={"10.0.0.7", "10.0.0.8"}, shared_paths=[])
    message = str(refused.value)
    assert f"writes its target to the local folder {str(tmp_path / 'out')!r}" in message
    assert "2 machines (10.0.0.7, 10.0.0.8)" in message
    assert "--shared-path" in message
    # Under a shared path, target, quarantine and state (beside the target) are all shared.
    check_shared_storage(job, hosts={"10.0.0.7", "10.0.0.8"}, shared_paths=[tmp_path])
    assert unshared_locations(job, [tmp_path / "elsewhere"])[0] == ("target", str(tmp_path / "out"))


def test_an_s3_target_with_local_state_is_refused_for_its_state(tmp_path: Path) -> None:
    on_s3 = load_job(_job(tmp_path, "s3://bucket/lake"))
    check_shared_storage(on_s3, hosts={"a", "b"}, shared_paths=[])
    local_state = load_job(_job(tmp_path, "s3://bucket/lake", "state: {uri: state}\n"))
    assert unshared_locations(local_state, []) == [("state", str(tmp_path / "state"))]
    with pytest.raises(ConfigurationError, match="writes its state to the local folder"):
        check_shared_storage(local_state, hosts={"a", "b"}, shared_paths=[])


class _TwoMachines:
    """A client whose scheduler reports workers on two machines; submitting is a test failure."""

    def scheduler_info(self) -> dict[str, Any]:
        return _info("tcp://10.0.0.7:4001", "tcp://10.0.0.8:4001")

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a refused job must not be submitted")


def test_the_runner_refuses_a_local_target_on_a_multi_machine_cluster_before_submitting(
    tmp_path: Path,
) -> None:
    path = _job(tmp_path, "out")

    class Job:
        tenant, name = "acme", "orders"

    Job.path = path  # type: ignore[attr-defined]
    result = DaskJobRunner(_TwoMachines()).run(Job(), threading.Event())  # type: ignore[arg-type]
    assert result.status is RunStatus.FAILED
    assert result.exit_code == 2
    assert result.error is not None
    assert "--shared-path" in result.error.message


def _in_process_job(tmp_path: Path) -> Path:
    (tmp_path / "reader.py").write_text(
        "from dativo_plugin_sdk import BaseReader\nclass R(BaseReader): pass\n"
    )
    path = tmp_path / "job.yaml"
    path.write_text(
        f"tenant: acme\nname: orders\nsource: {{plugin: {tmp_path / 'reader.py'}:R, config: {{}}}}\n"
        f"target: {{plugin: parquet, config: {{path: {tmp_path / 'out'}}}}}\nsandbox: {{backend: none}}\n"
    )
    return path


def test_the_runner_refuses_what_its_cloud_policy_forbids_before_submitting_as_a_local_run_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "runtime.yaml").write_text("sandbox: {mode: cloud}\n")
    monkeypatch.setenv("DATIVO_RUNTIME_CONFIG", str(tmp_path / "runtime.yaml"))
    path = _in_process_job(tmp_path)

    class Job:
        tenant, name = "acme", "orders"

    Job.path = path  # type: ignore[attr-defined]
    result = DaskJobRunner(_TwoMachines()).run(Job(), threading.Event())  # type: ignore[arg-type]
    local = run_job(load_job(path))
    assert result.exit_code == local.exit_code == 2
    assert result.error is not None
    assert local.error is not None
    assert result.error.message == local.error.message
    assert "cloud mode always sandboxes plugins" in result.error.message


def test_the_task_runs_under_the_client_policy_when_the_worker_has_none(tmp_path: Path) -> None:
    record = run_job_task(str(_in_process_job(tmp_path)), policy=OperatorPolicy(mode="cloud"))["result"]
    assert record["exit_code"] == 2
    assert "Dask worker local cannot run job acme/orders" in record["error"]["message"]
    assert "cloud mode always sandboxes plugins" in record["error"]["message"]
    assert record["records_read"] == 0


def test_the_task_refuses_a_job_file_the_worker_cannot_see(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.yaml")
    record = run_job_task(missing)["result"]
    assert record["status"] == "failed"
    assert record["exit_code"] == 2
    assert "not on Dask worker" in record["error"]["message"]


def test_the_task_runs_the_job_with_the_engine_and_returns_its_record_and_metrics(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id\n1\n2\n")
    value = run_job_task(str(_job(tmp_path, "out")))
    assert value["result"]["status"] == "succeeded"
    assert value["result"]["records_written"] == 2
    assert "dativo_records_written_total" in value["metrics"]
    assert tenant_semaphore_name("acme") == "dativo-tenant-acme"
