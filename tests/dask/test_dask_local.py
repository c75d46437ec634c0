"""``--executor dask`` without ``--scheduler``: a ``LocalCluster`` of worker processes; and its errors."""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.conftest import clean_env
from tests.dask.cluster import free_port

pytestmark = pytest.mark.timeout(180)


def _span(summary: dict[str, Any]) -> tuple[datetime.datetime, datetime.datetime]:
    def parse(text: str) -> datetime.datetime:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))

    return parse(summary["started_at"]), parse(summary["finished_at"])


def _overlap(first: dict[str, Any], second: dict[str, Any]) -> bool:
    (a0, a1), (b0, b1) = _span(first), _span(second)
    return a0 < b1 and b0 < a1


def test_a_local_cluster_keeps_the_per_tenant_limit_and_the_parallel_window(
    tmp_path: Path, timed_job: Callable[..., Path], run_cli: Any
) -> None:
    pytest.importorskip("distributed", reason="the runtime's 'dask' extra is not installed")
    jobs = tmp_path / "jobs"
    for tenant, name in [("a", "j1"), ("a", "j2"), ("a", "j3"), ("b", "j1")]:
        timed_job(jobs, tenant, name, count=30, delay=0.4)  # 1.2 s a run
    result = run_cli("run", "--job-dir", str(jobs), "--executor", "dask", "--per-tenant-limit", "1", "--json")
    assert result.returncode == 0, result.stderr
    runs = {f"{j['tenant']}/{j['job']}": j for j in json.loads(result.stdout)["jobs"]}
    assert all(run["records_written"] == 30 for run in runs.values())
    tenant_a = [runs["a/j1"], runs["a/j2"], runs["a/j3"]]
    for i, first in enumerate(tenant_a):
        for second in tenant_a[i + 1 :]:
            assert not _overlap(first, second), (first, second)
    # The cluster has two workers: tenant b's job ran beside one of tenant a's.
    assert any(_overlap(runs["b/j1"], run) for run in tenant_a)

    # --parallel 1: one job of this client on the cluster at a time, whatever the tenant.
    serial = run_cli("run", "--job-dir", str(jobs), "--executor", "dask", "--parallel", "1", "--json")
    assert serial.returncode == 0, serial.stderr
    summaries = json.loads(serial.stdout)["jobs"]
    for i, first in enumerate(summaries):
        for second in summaries[i + 1 :]:
            assert not _overlap(first, second), (first, second)


def test_output_lands_on_s3_from_the_workers(
    tmp_path: Path, write_job: Any, s3: Any, aws_credentials: dict[str, str], run_cli: Any
) -> None:
    pytest.importorskip("distributed", reason="the runtime's 'dask' extra is not installed")
    (tmp_path / "orders.csv").write_text("id,region\n" + "".join(f"{n},eu\n" for n in range(40)))
    jobs = tmp_path / "jobs"
    write_job(
        f"""
        tenant: acme
        name: to-s3
        source: {{plugin: csv, config: {{path: {tmp_path / "orders.csv"}}}}}
        target:
          plugin: parquet
          config:
            path: s3://{s3.bucket}/lake/orders
            endpoint_url: {s3.endpoint}
            region: us-east-1
            aws_access_key_id: ${{S3_KEY_ID}}
            aws_secret_access_key: ${{S3_SECRET}}
        """,
        name="to-s3.yaml",
        folder=jobs,
    )
    env = {
        **aws_credentials,
        "S3_KEY_ID": aws_credentials["AWS_ACCESS_KEY_ID"],
        "S3_SECRET": aws_credentials["AWS_SECRET_ACCESS_KEY"],
    }
    result = run_cli("run", "--job-dir", str(jobs), "--executor", "dask", "--json", env=env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["jobs"][0]
    assert summary["records_written"] == 40
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=s3.bucket, Prefix="lake/orders/").get("Contents", [])
        if o["Key"].endswith(".parquet") and "/_dativo/" not in o["Key"]
    ]
    assert keys
    ids = sorted(
        n
        for key in keys
        for n in pq.read_table(io.BytesIO(s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read()))
        .column("id")
        .to_pylist()
    )
    assert ids == list(range(40))


def test_an_unreachable_scheduler_exits_75_naming_its_address(
    tmp_path: Path, write_job: Any, run_cli: Any
) -> None:
    pytest.importorskip("distributed", reason="the runtime's 'dask' extra is not installed")
    write_job("tenant: a\nname: j\nsource: {plugin: csv, config: {path: x.csv}}\n", folder=tmp_path / "jobs")
    address = f"tcp://127.0.0.1:{free_port()}"  # Nothing listens there.
    result = run_cli(
        "run", "--job-dir", str(tmp_path / "jobs"), "--executor", "dask", "--scheduler", address,
        "--connect-timeout", "1",
    )  # fmt: skip
    assert result.returncode == 75, result.stderr
    assert f"cannot reach the Dask scheduler at {address}" in result.stderr
    assert "Traceback" not in result.stderr
    # The address may also come from DASK_SCHEDULER_ADDRESS.
    from_env = run_cli(
        "run", "--job-dir", str(tmp_path / "jobs"), "--executor", "dask", "--connect-timeout", "1",
        env={"DASK_SCHEDULER_ADDRESS": address},
    )  # fmt: skip
    assert from_env.returncode == 75, from_env.stderr
    assert address in from_env.stderr


def test_without_distributed_the_dask_executor_says_how_to_install_it(tmp_path: Path, write_job: Any) -> None:
    write_job("tenant: a\nname: j\nsource: {plugin: csv, config: {path: x.csv}}\n", folder=tmp_path / "jobs")
    hide = (
        "import sys; sys.modules['distributed'] = None; "
        "from dativo_runtime._cli._app import main; "
        f"sys.argv = ['dativo-run', 'run', '--job-dir', {str(tmp_path / 'jobs')!r}, '--executor', 'dask']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide], capture_output=True, text=True, env=clean_env(), timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'dativo-runtime[dask]'" in result.stderr
    assert "Traceback" not in result.stderr
    # --executor local never needs it.
    local = subprocess.run(
        [sys.executable, "-c", hide.replace("'dask'", "'local'")],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert "dativo-runtime[dask]" not in local.stderr


def test_dask_options_with_the_local_executor_are_usage_errors(tmp_path: Path, run_cli: Any) -> None:
    (tmp_path / "jobs").mkdir()
    result = run_cli("run", "--job-dir", str(tmp_path / "jobs"), "--scheduler", "tcp://127.0.0.1:1")
    assert result.returncode == 2
    assert "apply to --executor dask" in result.stderr
    unknown = run_cli("run", "--job-dir", str(tmp_path / "jobs"), "--executor", "ray")
    assert unknown.returncode == 2
    assert "--executor must be local or dask" in unknown.stderr
