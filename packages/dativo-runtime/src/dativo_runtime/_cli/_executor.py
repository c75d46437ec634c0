"""The executor options ``run`` and ``serve`` share: ``--executor``, ``--scheduler`` and friends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from dativo_runtime._cli._options import usage

__all__ = [
    "ConnectTimeoutOption",
    "ExecutorOption",
    "SchedulerOption",
    "SharedPathOption",
    "scheduler_address",
]

EXECUTORS = ("local", "dask")

ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where jobs run: local (this machine, the default) or dask (tasks on a Dask cluster; "
        "pip install 'dativo-runtime[dask]'). See docs/scaling.md.",
    ),
]
SchedulerOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--scheduler",
        help="With --executor dask: the scheduler, tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS, "
        "else a local cluster of worker processes started for this command).",
    ),
]
ConnectTimeoutOption = Annotated[
    float,
    typer.Option(
        "--connect-timeout",
        min=0.1,
        help="With --executor dask: seconds to wait for the scheduler (then exit 75).",
    ),
]
SharedPathOption = Annotated[
    Optional[list[Path]],  # noqa: UP045
    typer.Option(
        "--shared-path",
        help="With --executor dask: a local folder every worker mounts at the same path, so jobs may "
        "write there when the workers span machines (repeatable).",
    ),
]


def scheduler_address(executor: str, scheduler: str | None, shared_paths: list[Path] | None) -> str | None:
    """Check the executor options; return the scheduler's address (``None``: a local cluster).

    A usage error (exit 2) when ``--executor`` is unknown or a Dask option is given with
    ``--executor local``. ``$DASK_SCHEDULER_ADDRESS`` is read only with ``--executor dask``.
    """
    if executor not in EXECUTORS:
        usage(f"--executor must be local or dask, not {executor!r}")
    if executor == "local":
        if scheduler is not None or shared_paths:
            usage("--scheduler and --shared-path apply to --executor dask")
        return None
    from dativo_runtime._batch._dask_cluster import SCHEDULER_ENV

    return scheduler or os.environ.get(SCHEDULER_ENV) or None
