"""End to end: a job with `plugin: http` (dativo-http's entry point) run by `dativo-run`.

Against the testkit's mock API in this process: under `none` on loopback (docs/http.md,
"Sandbox and network"), incrementally, with refused credentials and a bad config; and under
`process` with `network: true`, against the host's own address.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from dativo_testkit import MockApiServer
from tests.conftest import RunCli, require_backend

TOKEN = "e2e-s3cret-token"


def _job(base_url: str, *, backend: str = "none", **stream_extra: Any) -> str:
    stream = {
        "name": "items",
        "path": "/items",
        "params": {"limit": 25},
        "primary_key": ["id"],
        "cursor": {"field": "updated_at", "param": "updated_since"},
        "paginator": {"type": "cursor", "next": "next_cursor", "param": "cursor"},
        **stream_extra,
    }
    sandbox: dict[str, Any] = {"backend": backend}
    if backend != "none":
        sandbox["network"] = True
    job = {
        "tenant": "acme",
        "name": "items",
        "source": {
            "plugin": "http",
            "config": {
                "base_url": base_url,
                "auth": {"type": "bearer", "token": "${API_TOKEN}"},
                "streams": [stream],
            },
            "stream": "items",
            "incremental": {},
        },
        "target": {"plugin": "parquet", "config": {"path": "./output/items"}},
        "sandbox": sandbox,
    }
    return yaml.safe_dump(job, sort_keys=False)


def _rows(folder: Path) -> list[int]:
    ids: list[int] = []
    for path in sorted(folder.rglob("*.parquet")):
        if not any(part.startswith(("_", ".")) for part in path.relative_to(folder).parts):
            ids += pq.read_table(path).column("id").to_pylist()
    return sorted(ids)


def test_an_http_job_runs_then_reads_only_new_records(
    run_cli: RunCli, write_job: Callable[..., Path], tmp_path: Path
) -> None:
    with MockApiServer(records=120, token=TOKEN) as api:
        job = write_job(_job(api.url))
        first = run_cli("run", "--config", str(job), "--json", env={"API_TOKEN": TOKEN})
        assert first.returncode == 0, first.stdout + first.stderr
        assert _rows(tmp_path / "output" / "items") == list(range(1, 121))
        api.add_records([{"id": 500, "updated_at": "2030-01-01T00:00:00+00:00"}])
        second = run_cli("run", "--config", str(job), "--json", env={"API_TOKEN": TOKEN})
        assert second.returncode == 0, second.stdout + second.stderr
        assert re.search(r'"records_written": 1\b', second.stdout), second.stdout
        assert _rows(tmp_path / "output" / "items") == [*range(1, 121), 500]
        assert api.requests[-1].query.get("updated_since") == "2024-01-01T02:00:00+00:00"
        for result in (first, second):
            assert TOKEN not in result.stdout + result.stderr


def test_check_and_discover_of_an_http_job(run_cli: RunCli, write_job: Callable[..., Path]) -> None:
    with MockApiServer(records=30, token=TOKEN) as api:
        job = write_job(_job(api.url))
        check = run_cli("check", "--config", str(job), env={"API_TOKEN": TOKEN})
        assert check.returncode == 0, check.stdout + check.stderr
        discover = run_cli("discover", "--config", str(job), "--json", env={"API_TOKEN": TOKEN})
        assert discover.returncode == 0, discover.stdout + discover.stderr
        assert "updated_at" in discover.stdout
        assert "timestamp" in discover.stdout


def test_refused_credentials_exit_77_with_the_token_masked(
    run_cli: RunCli, write_job: Callable[..., Path]
) -> None:
    with MockApiServer(records=30, token="the-real-token") as api:
        job = write_job(_job(api.url))
        result = run_cli("run", "--config", str(job), env={"API_TOKEN": TOKEN})
    assert result.returncode == 77, result.stdout + result.stderr
    assert "refused the credentials (HTTP 403)" in result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_a_bad_http_config_is_refused_before_the_reader_runs(
    run_cli: RunCli, write_job: Callable[..., Path]
) -> None:
    with MockApiServer(records=30, token=TOKEN) as api:
        job = write_job(_job(api.url, records_paht="data"))
        result = run_cli("run", "--config", str(job), env={"API_TOKEN": TOKEN})
        assert api.requests == []
    assert result.returncode == 2, result.stdout + result.stderr
    assert "records_paht" in result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr


def _host_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))  # no packet is sent: this only picks a route
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("this host has no address outside loopback")
    return address


def test_an_http_job_under_the_process_sandbox_with_network(
    run_cli: RunCli, write_job: Callable[..., Path], tmp_path: Path
) -> None:
    require_backend("process")
    address = _host_address()
    with MockApiServer(records=60, token=TOKEN, host="0.0.0.0") as api:
        job = write_job(_job(f"http://{address}:{api.port}", backend="process"))
        result = run_cli("run", "--config", str(job), env={"API_TOKEN": TOKEN}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _rows(tmp_path / "output" / "items") == list(range(1, 61))
