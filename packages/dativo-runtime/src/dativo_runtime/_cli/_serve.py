"""``dativo-run serve``: the scheduled jobs of a folder, with metrics, health probes and a status API."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from dativo_runtime._cli._executor import (
    ConnectTimeoutOption,
    ExecutorOption,
    SchedulerOption,
    SharedPathOption,
    scheduler_address,
)
from dativo_runtime._cli._options import LogFormatOption, LogLevelOption, child_env, errors, setup

__all__ = ["serve"]


def serve(
    *,
    job_dir: Annotated[
        Path, typer.Option("--job-dir", help="Folder of job files; those with a schedule are run.")
    ],
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port for /metrics, /healthz, /readyz, /api/jobs.")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    max_parallel: Annotated[int, typer.Option("--max-parallel", min=1, help="Runs at once, in total.")] = 4,
    per_tenant_limit: Annotated[
        int, typer.Option("--per-tenant-limit", "--max-per-tenant", min=1, help="Runs at once per tenant.")
    ] = 2,
    grace_period: Annotated[
        float, typer.Option("--grace-period", min=0, help="Seconds running jobs get to finish after SIGTERM.")
    ] = 30.0,
    timezone: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--timezone", help="IANA time zone schedules are read in (default: the server's)."),
    ] = None,
    executor: ExecutorOption = "local",
    scheduler: SchedulerOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    shared_path: SharedPathOption = None,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "info",
) -> None:
    """Run the scheduled jobs of a folder until SIGTERM; serve metrics, health probes and a status API."""
    from dativo_runtime._serve import (
        JobRunner,
        ReadinessCheck,
        SubprocessJobRunner,
        job_readiness_checks,
        load_scheduled_jobs,
    )
    from dativo_runtime._serve import serve as serve_jobs

    setup(log_format, log_level)
    address = scheduler_address(executor, scheduler, shared_path)
    with errors(False), contextlib.ExitStack() as stack:
        jobs = load_scheduled_jobs(job_dir)
        runner: JobRunner
        if executor == "dask":
            from dativo_runtime._batch._dask_cluster import dask_client
            from dativo_runtime._batch._dask_executor import DaskJobRunner

            # One client for the server's life; --per-tenant-limit also holds cluster-wide.
            client = stack.enter_context(dask_client(address, connect_timeout=connect_timeout))
            runner = DaskJobRunner(client, per_tenant_limit=per_tenant_limit, shared_paths=shared_path or ())
        else:
            # Each run's summary is kept for the status API, not printed on serve's stdout.
            runner = SubprocessJobRunner(env=child_env(log_format, log_level), json_summary=True)
        code = serve_jobs(
            job_dir,
            port,
            host=host,
            runner=runner,
            readiness_checks=[ReadinessCheck("runner", runner.check), *job_readiness_checks(jobs)],
            max_parallel=max_parallel,
            max_per_tenant=per_tenant_limit,
            grace_period=grace_period,
            timezone=timezone,
        )
    raise typer.Exit(code)
