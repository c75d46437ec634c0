"""The Dask cluster a ``--executor dask`` command uses: a scheduler it connects to, or a local one.

``distributed`` is an optional extra (``pip install 'dativo-runtime[dask]'``) and is imported
here only when a command asks for the Dask executor; without it, :func:`import_distributed`
raises a :class:`ConfigurationError` that says how to install it (exit code 2).

A scheduler that does not answer within the connect timeout is a retryable
:class:`ConnectionError` naming its address (exit code 75: start it, or retry later).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from dativo_plugin_sdk import ConfigurationError, DativoConnectionError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "INSTALL_HINT",
    "SCHEDULER_ENV",
    "dask_client",
    "import_distributed",
    "worker_hosts",
]

logger = logging.getLogger("dativo.dask")

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the scheduler before giving up (``--connect-timeout``)."""

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
"""The variable ``--scheduler`` falls back to (Dask's own name for it)."""

INSTALL_HINT = (
    "--executor dask needs Dask's 'distributed' package, which is not installed in this Python "
    "environment. Install it with: pip install 'dativo-runtime[dask]' (on this machine and on every "
    "Dask worker), or run with --executor local."
)


def import_distributed() -> ModuleType:
    """Import ``distributed``, or say how to install it.

    Raises:
        ConfigurationError: If ``distributed`` is not installed (exit code 2).
    """
    try:
        import distributed
    except ImportError as exc:
        raise ConfigurationError(
            INSTALL_HINT, details={"option": "--executor", "missing": "distributed"}
        ) from exc
    return distributed


def _local_worker_count() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # Not on Linux.
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


@contextlib.contextmanager
def dask_client(
    scheduler: str | None,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    local_workers: int | None = None,
) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler``, or on a new local cluster when it is ``None``.

    The local cluster (for trying the executor out) runs ``local_workers`` worker processes
    (two, or the cores when fewer) of one thread each on 127.0.0.1, and is closed on exit.

    Args:
        scheduler: The scheduler's address (``tcp://HOST:PORT``), or ``None``.
        connect_timeout: Seconds to wait for the scheduler.
        local_workers: Worker processes of the local cluster.

    Raises:
        ConfigurationError: If ``distributed`` is missing or the address is malformed.
        ConnectionError: If the scheduler does not answer in time (retryable: exit code 75).
    """
    distributed = import_distributed()
    # Dask's own INFO lines (workers joining, comms opening) are noise on a run's stderr.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if scheduler is None:
        workers = local_workers or _local_worker_count()
        logger.info("starting a local Dask cluster: %d worker process(es) of one thread", workers)
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(scheduler, timeout=connect_timeout)
    except ValueError as exc:
        raise ConfigurationError(
            f"--scheduler {scheduler!r} is not a Dask scheduler address ({exc}); give it as tcp://HOST:PORT",
            details={"option": "--scheduler", "scheduler": scheduler},
        ) from exc
    except (OSError, TimeoutError) as exc:
        raise DativoConnectionError(
            f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout:g} s ({exc}). Check "
            "that the scheduler runs and that this machine can reach that address, then run again "
            "(or raise --connect-timeout)",
            details={"scheduler": scheduler, "connect_timeout": connect_timeout},
        ) from exc
    try:
        logger.info("connected to the Dask scheduler at %s", scheduler)
        yield client
    finally:
        client.close()


def _host_of(address: str) -> str:
    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or address
    return host.lower()


def _is_this_machine(host: str) -> bool:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        if host in ("localhost", socket.gethostname().lower(), socket.getfqdn().lower()):
            return True
    with contextlib.suppress(OSError):
        own = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
        return host in own
    return False


def worker_hosts(scheduler_info: Mapping[str, Any]) -> set[str]:
    """The machines the workers of ``client.scheduler_info()`` run on.

    Workers on this machine (loopback, its name or its addresses) count as one,
    ``"localhost"``, so a local cluster is a single machine however it is addressed.
    """
    hosts = set()
    for address in dict(scheduler_info.get("workers") or {}):
        host = _host_of(str(address))
        hosts.add("localhost" if _is_this_machine(host) else host)
    return hosts
