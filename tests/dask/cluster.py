"""Real Dask clusters on 127.0.0.1 for the executor's tests: the ``dask scheduler`` and ``dask worker`` commands."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

PLUGINS = Path(__file__).resolve().parent / "plugins.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dask_command() -> str:
    beside = Path(sys.executable).parent / "dask"
    if not beside.exists():
        pytest.skip("the 'dask' command is not installed (pip install 'dativo-runtime[dask]')")
    return str(beside)


@dataclass
class DaskProcesses:
    """A scheduler and its workers, each a process group of its own."""

    address: str
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *args: str, log: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.logs / log, "ab") as out:
            process = subprocess.Popen(
                [dask_command(), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def add_worker(self, name: str, env: dict[str, str] | None = None) -> None:
        self.start(
            "worker", self.address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "1",
            "--no-dashboard", "--name", name, "--death-timeout", "60",
            log=f"{name}.log", env=env,
        )  # fmt: skip

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        from distributed import Client

        deadline = time.monotonic() + timeout
        with Client(self.address, timeout=timeout) as client:
            while len(client.scheduler_info()["workers"]) < count:
                if time.monotonic() > deadline:
                    logs = {p.name: p.read_text(errors="replace")[-2000:] for p in self.logs.glob("*.log")}
                    raise AssertionError(f"{count} Dask workers did not join in {timeout} s: {logs}")
                time.sleep(0.1)

    def stop(self) -> None:
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


@contextlib.contextmanager
def dask_processes(logs: Path, workers: int, env: dict[str, str] | None = None) -> Iterator[DaskProcesses]:
    """``dask scheduler`` and ``workers`` x ``dask worker --nworkers 1 --nthreads 1``, torn down after."""
    pytest.importorskip("distributed", reason="the runtime's 'dask' extra is not installed")
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cluster = DaskProcesses(f"tcp://127.0.0.1:{port}", logs)
    try:
        cluster.start(
            "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard", log="scheduler.log"
        )
        for n in range(workers):
            cluster.add_worker(f"w{n}", env=env)
        cluster.wait_for_workers(workers)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskProcesses]:
    """A real scheduler and two worker processes on 127.0.0.1, shared by a module's tests."""
    with dask_processes(tmp_path_factory.mktemp("dask-logs"), workers=2) as cluster:
        yield cluster


@pytest.fixture
def timed_job(tmp_path: Path) -> Callable[..., Path]:
    """Write a job of the TimedReader: ``folder/tenant-name.yaml``, output in ``tmp_path/out/tenant-name``."""

    def write(folder: Path, tenant: str, name: str, *, target: str | None = None, **config: Any) -> Path:
        settings = {"log": str(tmp_path / "events.log"), "job": f"{tenant}/{name}", **config}
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{tenant}-{name}.yaml"
        path.write_text(
            f"""
tenant: {tenant}
name: {name}
source:
  plugin: {PLUGINS}:TimedReader
  config: {json.dumps(settings)}
  incremental: {{}}
target:
  plugin: parquet
  config: {{path: {target or tmp_path / "out" / f"{tenant}-{name}"}, row_group_size: 10, target_file_size: 1}}
sandbox: {{backend: none}}
"""
        )
        return path

    return write


def events(log: Path) -> list[dict[str, Any]]:
    """The TimedReader's start/end lines, in the order written."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def intervals(log: Path) -> dict[str, list[tuple[float, float]]]:
    """Each job's runs as (start, end) times, from the TimedReader's lines; only runs that ended."""
    opened: dict[tuple[str, int], float] = {}
    runs: dict[str, list[tuple[float, float]]] = {}
    for event in events(log):
        key = (event["job"], event["pid"])
        if event["event"] == "start":
            opened[key] = event["t"]
        else:
            runs.setdefault(event["job"], []).append((opened.pop(key), event["t"]))
    return runs
