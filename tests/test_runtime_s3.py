"""S3 for real over HTTP: a moto server, the runtime pointed at it by endpoint; check, run, state."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest

SECRET = "s3-secret-value-that-must-never-be-printed"


def s3_job(write_job: Any, s3: Any, *, endpoint: str | None = None, state: str = "") -> Path:
    return write_job(
        f"""
        tenant: acme
        name: orders-s3
        source:
          plugin: csv
          config:
            path: s3://{s3.bucket}/raw/*.csv
            endpoint_url: {s3.endpoint}
          incremental: {{strategy: mtime}}
        target:
          plugin: parquet
          config:
            path: s3://{s3.bucket}/lake/orders
            endpoint_url: {endpoint or s3.endpoint}
            region: us-east-1
            aws_access_key_id: ${{S3_KEY_ID}}
            aws_secret_access_key: ${{S3_SECRET}}
            partition_by: [region]
            compression: zstd
        {state}
        schema:
          - {{name: order_id, type: integer, required: true}}
          - {{name: region, type: string}}
          - {{name: quantity, type: integer}}
          - {{name: unit_price, type: decimal}}
        retry: {{max_attempts: 2, initial_delay: 0.01, max_delay: 0.01}}
        """
    )


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def env(secret: str = SECRET) -> dict[str, str]:
    return {**AWS_ENV, "S3_KEY_ID": AWS_ENV["AWS_ACCESS_KEY_ID"], "S3_SECRET": secret}


def download(s3: Any, prefix: str, target: Path) -> list[str]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("Contents", [])]
    for key in keys:
        local = target / key
        local.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(s3.bucket, key, str(local))
    return keys


def upload_orders(s3: Any, name: str = "orders.csv") -> None:
    source = Path(__file__).resolve().parent.parent / "examples" / "data" / "orders.csv"
    s3.upload_file(str(source), s3.bucket, f"raw/{name}")


def test_check_run_and_state_on_s3(tmp_path: Path, write_job: Any, run_cli: Any, s3: Any) -> None:
    upload_orders(s3)
    job = s3_job(
        write_job, s3, state=f"state: {{uri: 's3://{s3.bucket}/state', endpoint_url: {s3.endpoint}}}"
    )
    check = run_cli("check", "--config", str(job), "--json", env=env())
    assert check.returncode == 0, check.stdout + check.stderr
    assert [c["success"] for c in json.loads(check.stdout)["checks"]] == [True, True]

    run = run_cli("run", "--config", str(job), "--json", env=env())
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["records_written"] == 300
    assert summary["state_uri"] == f"s3://{s3.bucket}/state/acme/orders-s3.json"
    assert all(f.startswith(f"s3://{s3.bucket}/lake/orders/region=") for f in summary["files"])

    keys = download(s3, "lake/orders/", tmp_path / "copy")
    assert not [k for k in keys if "/_dativo/staging/" in k]
    local = tmp_path / "copy" / "lake" / "orders"
    table = ds.dataset(local, format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("order_id").to_pylist()) == list(range(1001, 1301))
    count = duckdb.sql(
        f"SELECT count(*), count(DISTINCT order_id) FROM read_parquet('{local}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert count == [(300, 300)]

    state = json.loads(s3.get_object(Bucket=s3.bucket, Key="state/acme/orders-s3.json")["Body"].read())
    assert state["run_id"] == summary["run_id"]
    # A glob reads each file as a partition with its own state.
    assert state["partitions"]["default"]
    assert all("mtime_ns" in file_state for file_state in state["partitions"]["default"].values())
    again = run_cli("run", "--config", str(job), "--json", env=env())
    assert (json.loads(again.stdout)["status"], json.loads(again.stdout)["records_read"]) == ("succeeded", 0)
    upload_orders(s3, "more.csv")
    third = run_cli("run", "--config", str(job), "--json", env=env())
    assert json.loads(third.stdout)["records_written"] == 300, third.stdout + third.stderr

    shown = run_cli("state", "show", "--config", str(job), "--json", env=env())
    assert json.loads(shown.stdout)["uri"].startswith("s3://")
    for output in (check, run, again, third, shown):
        assert SECRET not in output.stdout + output.stderr


def test_default_state_lives_beside_the_s3_dataset(write_job: Any, run_cli: Any, s3: Any) -> None:
    upload_orders(s3)
    job = s3_job(write_job, s3)
    result = run_cli("run", "--config", str(job), "--json", env=env())
    assert result.returncode == 0, result.stderr
    assert (
        json.loads(result.stdout)["state_uri"]
        == f"s3://{s3.bucket}/lake/orders/_dativo/state/acme/orders-s3.json"
    )
    files = run_cli("files", "--config", str(job), "--json", env=env())
    assert json.loads(files.stdout)["record_count"] == 300


@pytest.fixture
def enforced_auth(moto_endpoint: str) -> Iterator[None]:
    """Make the moto server check credentials (unknown access keys get 403) for one test."""

    def set_count(value: bytes) -> None:
        request = urllib.request.Request(
            f"{moto_endpoint}/moto-api/reset-auth",
            data=value,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request, timeout=10).read()

    set_count(b"0")
    try:
        yield
    finally:
        set_count(b"inf")


def test_refused_credentials_are_exit_77(write_job: Any, run_cli: Any, s3: Any, enforced_auth: None) -> None:
    job = s3_job(write_job, s3)
    check = run_cli("check", "--config", str(job), "--json", env=env())
    assert check.returncode == 77, check.stdout + check.stderr
    target = json.loads(check.stdout)["checks"][1]
    assert (target["role"], target["error_code"], target["retryable"]) == (
        "target",
        "AUTHENTICATION_FAILED",
        False,
    )
    human = run_cli("check", "--config", str(job), env=env())
    assert human.returncode == 77
    assert "AUTHENTICATION_FAILED" in human.stdout
    run = run_cli("run", "--config", str(job), env=env())
    assert run.returncode == 77
    assert "refused the credentials" in run.stderr
    for output in (check, human, run):
        assert SECRET not in output.stdout + output.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_is_retryable_exit_75(write_job: Any, run_cli: Any, s3: Any) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    job = s3_job(write_job, s3, endpoint=dead)
    check = run_cli("check", "--config", str(job), "--json", env=env())
    assert check.returncode == 75, check.stdout + check.stderr
    target = json.loads(check.stdout)["checks"][1]
    assert (target["error_code"], target["retryable"], target["attempts"]) == ("CONNECTION_FAILED", True, 2)
    upload_orders(s3)
    run = run_cli("run", "--config", str(job), "--json", env=env())
    assert run.returncode == 75, run.stderr
    assert json.loads(run.stdout)["error"]["error_code"] == "CONNECTION_FAILED"
