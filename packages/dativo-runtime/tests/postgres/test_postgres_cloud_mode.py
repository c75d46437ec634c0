"""In cloud mode the ``postgres`` reader runs in the sandbox, where the operator's egress policy applies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import CliRun, PostgresServer, parquet_rows


@pytest.fixture(scope="module")
def little(postgres: PostgresServer) -> PostgresServer:
    postgres.execute(
        "DROP TABLE IF EXISTS public.little",
        "CREATE TABLE public.little (id int8 PRIMARY KEY, label text)",
        "INSERT INTO public.little SELECT g, 'row ' || g FROM generate_series(1, 50) AS g",
    )
    return postgres


def _run(tmp_path: Path, server: PostgresServer, dsn: str, sandbox: str, policy: dict[str, Any]) -> CliRun:
    pytest.importorskip("dativo_runtime._sandbox.bubblewrap._backend")
    from dativo_runtime._sandbox.bubblewrap._backend import BubblewrapSandbox

    available, why = BubblewrapSandbox.availability()
    if not available:
        if os.environ.get("DATIVO_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"DATIVO_REQUIRE_SANDBOX=1 but the process sandbox does not work: {why}")
        pytest.skip(f"the process sandbox does not work here: {why}")
    policy_file = tmp_path / "runtime.json"
    policy_file.write_text(
        json.dumps({"sandbox": {"mode": "cloud", "allowed_backends": ["process"], **policy}})
    )
    job = tmp_path / "cloud.yaml"
    job.write_text(
        "name: cloud\n"
        "source:\n"
        "  plugin: postgres\n"
        f"  config: {{dsn: '{dsn}', table: public.little}}\n"
        "target: {plugin: parquet, config: {path: out/cloud}}\n"
        "retry: {max_attempts: 1}\n"
        f"sandbox: {sandbox}\n"
    )
    env = {**os.environ, "DATIVO_RUNTIME_CONFIG": str(policy_file), "PG_TEST_PASSWORD": server.password}
    done = subprocess.run(
        [sys.executable, "-m", "dativo_runtime", "run", "--config", str(job), "--json"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return CliRun(done.returncode, done.stdout, done.stderr)


def test_without_egress_the_reader_is_refused_before_it_connects(
    little: PostgresServer, tmp_path: Path
) -> None:
    dsn = f"postgresql://{little.user}:${{PG_TEST_PASSWORD}}@{little.host}:{little.port}/{little.dbname}"
    done = _run(tmp_path, little, dsn, "{backend: process}", {})
    assert done.exit_code == 2, done.stdout + done.stderr
    assert "sandbox.network: true" in done.stderr
    assert little.password not in done.stdout + done.stderr


def test_with_egress_its_connection_leaves_from_the_sandbox_not_the_host(
    little: PostgresServer, tmp_path: Path
) -> None:
    # The sandbox's network never reaches the host's loopback, so the server on 127.0.0.1
    # that the same job reaches in self-hosted mode is unreachable here: a ConnectionError.
    dsn = f"postgresql://{little.user}:${{PG_TEST_PASSWORD}}@{little.host}:{little.port}/{little.dbname}"
    done = _run(tmp_path, little, dsn, "{backend: process, network: true}", {"allow_network": True})
    assert done.exit_code == 75, done.stdout + done.stderr
    assert done.document["sandbox"]["source"] == "process"
    assert done.document["error"]["error_type"] == "ConnectionError", done.document["error"]
    assert little.password not in done.stdout + done.stderr


def test_over_a_mounted_unix_socket_it_reads_without_any_network(
    little: PostgresServer, tmp_path: Path
) -> None:
    dsn = f"postgresql://{little.user}@/{little.dbname}?host={little.socket_dir}&port={little.port}"
    done = _run(
        tmp_path,
        little,
        dsn,
        f"{{backend: process, read_only_paths: [{little.socket_dir}]}}",
        {"allow_read_only_paths": True},
    )
    assert done.exit_code == 0, done.stdout + done.stderr
    assert done.document["sandbox"]["source"] == "process"
    assert sorted(r["id"] for r in parquet_rows(done.document["files"])) == list(range(1, 51))
