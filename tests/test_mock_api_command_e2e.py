"""End to end: `dativo-run` reads from `dativo-testkit mock-api`, under each backend.

What docs/testkit.md and docs/sandboxing.md promise about a test server on the host: under
`none` a loopback server is reachable, and records appended to its file reach the next
incremental run; a sandboxed reader (`process`, `docker`) never reaches the host's loopback,
with or without `network: true`, but reaches a server bound to an address of the host the
sandbox can route to (the host's own address for `process`, the bridge gateway for `docker`).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.conftest import RunCli, require_backend

ROOT = Path(__file__).resolve().parent.parent
READER = ROOT / "examples" / "plugins" / "json_api_reader.py"
DOCKER_BRIDGE_GATEWAY = "172.17.0.1"


def _record(i: int) -> str:
    return json.dumps({"id": i, "name": f"n{i}", "updated_at": f"2024-01-{i:02d}T00:00:00+00:00"}) + "\n"


def _host_address() -> str:
    """An address of this host that is not loopback (the one its default route leaves from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 9))  # no packet is sent: this only picks a route
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    if not address or address.startswith("127."):
        pytest.skip("this host has no address outside loopback")
    return address


@pytest.fixture
def mock_api(tmp_path: Path) -> Iterator[Any]:
    processes: list[subprocess.Popen[str]] = []

    def start(host: str = "127.0.0.1") -> tuple[str, Path]:
        records = tmp_path / "records.jsonl"
        records.write_text(_record(1) + _record(2) + _record(3))
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from dativo_testkit._testkit_cli import main; sys.exit(main())",
                "mock-api",
                "--records",
                str(records),
                "--host",
                host,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"at http://[^:]+:(\d+) ", banner)
        assert match, banner
        return match.group(1), records

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
        assert process.returncode == 0


def _job(folder: Path, base_url: str, backend: str, network: bool) -> Path:
    job = folder / "job.yaml"
    config = {"base_url": base_url, "token": "test-token", "page_size": 2}
    job.write_text(
        textwrap.dedent(
            f"""\
            tenant: acme
            name: from_mock_api
            source:
              plugin: {READER}:JsonApiReader
              config: {json.dumps(config)}
              incremental: {{}}
            target:
              plugin: parquet
              config: {{path: ./out}}
            sandbox:
              backend: {backend}
              network: {str(network).lower()}
              timeout: 120
            """
        )
    )
    return job


def _ids(folder: Path) -> list[int]:
    return sorted(pq.read_table(folder / "out").column("id").to_pylist())


def test_in_process_a_loopback_server_is_reachable_and_appended_records_come_next(
    tmp_path: Path, mock_api: Any, run_cli: RunCli
) -> None:
    port, records = mock_api()
    job = _job(tmp_path, f"http://127.0.0.1:{port}", "none", network=False)
    first = run_cli("run", "--config", str(job), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert _ids(tmp_path) == [1, 2, 3]
    with records.open("a") as handle:
        handle.write(_record(4) + _record(5))
    second = run_cli("run", "--config", str(job), timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _ids(tmp_path) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("backend", ["process", "docker"])
@pytest.mark.parametrize("network", [False, True])
def test_a_sandboxed_reader_never_reaches_the_hosts_loopback(
    tmp_path: Path, mock_api: Any, run_cli: RunCli, backend: str, network: bool
) -> None:
    require_backend(backend)
    port, _ = mock_api()
    result = run_cli(
        "run",
        "--config",
        str(_job(tmp_path, f"http://127.0.0.1:{port}", backend, network=network)),
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 75, output  # a retryable failure, after the runtime's retries
    assert f"cannot reach http://127.0.0.1:{port}" in output
    assert '"error_code": "CONNECTION_FAILED"' in output
    # Without egress the host says so, instead of letting it look like a server that is down.
    assert (f"runs in the {backend} sandbox, which has no network" in output) is not network


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_a_sandboxed_reader_reaches_a_server_bound_where_the_sandbox_can_route(
    tmp_path: Path, mock_api: Any, run_cli: RunCli, backend: str
) -> None:
    require_backend(backend)
    address = _host_address() if backend == "process" else DOCKER_BRIDGE_GATEWAY
    port, _ = mock_api(host="0.0.0.0")  # every address, so the sandbox can route to one
    result = run_cli(
        "run", "--config", str(_job(tmp_path, f"http://{address}:{port}", backend, network=True)), timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _ids(tmp_path) == [1, 2, 3]
