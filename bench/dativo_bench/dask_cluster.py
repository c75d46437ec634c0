"""Real Dask clusters on 127.0.0.1 for the bench: ``dask scheduler`` and ``dask worker`` processes.

Each cluster is one scheduler on a free port and single-thread workers (``dask worker
--nworkers 1 --nthreads 1``, as in ``tests/dask/cluster.py``), every process in a session
of its own, so that stopping it stops its children too (a worker's nanny and the worker).
:class:`LocalDaskClusters` starts them all before the timed runs, so cluster start-up is
never timed, and stops them all afterwards, whatever happened. Should the harness itself
be killed (SIGKILL, no ``finally``), the schedulers end after :data:`IDLE_TIMEOUT_S` without
work and their workers after :data:`DEATH_TIMEOUT_S` without a scheduler.

The harness does not import ``distributed``, just as it does not import pyarrow (see
measurement.py): a short-lived Python process waits for the workers to join.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["ClusterError", "DaskCluster", "LocalDaskClusters", "dask_executable"]

IDLE_TIMEOUT_S = 3600
"""A scheduler with no task for this long stops (only matters when the harness was killed)."""

DEATH_TIMEOUT_S = 60
"""A worker without its scheduler for this long stops."""

JOIN_TIMEOUT_S = 90.0
"""Seconds the workers have to join their scheduler."""

_WAIT_FOR_WORKERS = """
import sys
from distributed import Client

address, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with Client(address, timeout=timeout) as client:
    client.wait_for_workers(count, timeout=timeout)
    print(len(client.scheduler_info()["workers"]))
"""


class ClusterError(RuntimeError):
    """A cluster could not be started: ``dask`` is missing, or its workers did not join."""


def dask_executable() -> str | None:
    """Return the ``dask`` command beside this Python (a nox session's), else the one on PATH."""
    beside = Path(sys.executable).parent / "dask"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("dask")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class DaskCluster:
    """One scheduler and its workers, started by :class:`LocalDaskClusters`.

    Args:
        name: The cluster's name (its log files start with it).
        address: The scheduler's ``tcp://127.0.0.1:PORT``.
        workers: How many single-thread workers it has.
        processes: The scheduler's and the workers' processes, in start order.
    """

    name: str
    address: str
    workers: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every process of the cluster (SIGTERM, then SIGKILL after 15 s), workers first."""
        for process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()


class LocalDaskClusters:
    """Several Dask clusters on 127.0.0.1, alive from :meth:`start` to :meth:`stop`.

    Use it as a context manager: leaving the block stops every process it started, also
    when starting failed part-way.

    Args:
        folder: Where the processes' logs and the workers' scratch folders go.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.clusters: dict[str, DaskCluster] = {}

    def __enter__(self) -> LocalDaskClusters:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, workers: Mapping[str, int]) -> dict[str, DaskCluster]:
        """Start one cluster per name with that many workers; return them once every worker joined.

        Raises:
            ClusterError: If ``dask`` is not installed or a cluster's workers did not join in
                :data:`JOIN_TIMEOUT_S` (the message quotes its logs).
        """
        dask = dask_executable()
        if dask is None:
            raise ClusterError("the 'dask' command is not installed (pip install 'dativo-runtime[dask]')")
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, count in workers.items():
            cluster = DaskCluster(name, f"tcp://127.0.0.1:{_free_port()}", count)
            self.clusters[name] = cluster
            port = cluster.address.rsplit(":", 1)[1]
            cluster.processes.append(
                self._spawn(
                    [dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard",
                     "--idle-timeout", f"{IDLE_TIMEOUT_S}s"],
                    f"{name}-scheduler",
                )
            )  # fmt: skip
            for index in range(count):
                worker = f"{name}-w{index}"
                cluster.processes.append(
                    self._spawn(
                        [dask, "worker", cluster.address, "--host", "127.0.0.1", "--nworkers", "1",
                         "--nthreads", "1", "--no-dashboard", "--name", worker,
                         "--death-timeout", str(DEATH_TIMEOUT_S),
                         "--local-directory", str(self.folder / worker)],
                        worker,
                    )
                )  # fmt: skip
        for cluster in self.clusters.values():
            self._wait_for_workers(cluster)
        return dict(self.clusters)

    def stop(self) -> None:
        """Stop every process of every cluster."""
        for cluster in self.clusters.values():
            cluster.stop()

    def _spawn(self, command: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{log}.log", "ab") as out:
            return subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _wait_for_workers(self, cluster: DaskCluster) -> None:
        command = [sys.executable, "-c", _WAIT_FOR_WORKERS, cluster.address, str(cluster.workers)]
        command.append(str(JOIN_TIMEOUT_S))
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=JOIN_TIMEOUT_S + 30, check=False
            )
        except subprocess.TimeoutExpired:
            done = None
        joined = done.stdout.strip() if done is not None and done.returncode == 0 else ""
        if joined != str(cluster.workers):
            why = "timed out" if done is None else (done.stderr.strip().splitlines() or [f"saw {joined}"])[-1]
            raise ClusterError(
                f"the {cluster.workers} worker(s) of {cluster.name} ({cluster.address}) did not join: {why} "
                f"(logs in {self.folder})"
            )
