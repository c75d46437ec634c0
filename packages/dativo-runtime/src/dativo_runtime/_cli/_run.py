"""``dativo-run run``: one job (``--config``) or each job of a folder (``--job-dir``), here or on Dask."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from dativo_plugin_sdk import ConfigurationError, DativoError
from dativo_runtime._cli._executor import (
    ConnectTimeoutOption,
    ExecutorOption,
    SchedulerOption,
    SharedPathOption,
    scheduler_address,
)
from dativo_runtime._cli._options import (
    ConfigOption,
    FindLinksOption,
    JsonOption,
    LogFormatOption,
    LogLevelOption,
    child_env,
    errors,
    setup,
    tracing,
    usage,
    use_find_links,
)
from dativo_runtime._cli._render import console, emit_json, progress_bar, render_outcome, render_summary
from dativo_runtime._engine._outcome import RunResult, RunStatus
from dativo_runtime._exit_codes import exit_code_for
from dativo_runtime._jobs._model import load_job

__all__ = ["job_files", "run"]


def job_files(job_dir: Path) -> list[Path]:
    """The job files of a folder, in file-name order (hidden and ``_`` files left out).

    Raises:
        ConfigurationError: If ``job_dir`` is no folder or holds no job file.
    """
    if not job_dir.is_dir():
        raise ConfigurationError(
            f"--job-dir {str(job_dir)!r} is not a folder; pass a folder of .yaml job files",
            details={"option": "--job-dir"},
        )
    files = sorted(
        p for p in job_dir.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith((".", "_"))
    )
    if not files:
        raise ConfigurationError(
            f"--job-dir {str(job_dir)!r} holds no .yaml or .yml job files", details={"option": "--job-dir"}
        )
    return files


def _write_result(path: str | None, result: RunResult) -> None:
    """Hand the run's result to the parent process that asked for it (``--result-file``)."""
    if path is not None:
        Path(path).write_text(json.dumps(result.to_record(), default=str), encoding="utf-8")


def _load_for_run(config: Path, result_file: str | None) -> None:
    """Load the job file: a bad one is a usage error of this command (exit 2), also told to a parent."""
    try:
        load_job(config)
    except DativoError as exc:
        failed = RunResult(
            job_file=str(config), status=RunStatus.FAILED, exit_code=exit_code_for(exc), error=exc
        )
        _write_result(result_file, failed)
        raise


def run(
    *,
    config: ConfigOption = None,
    job_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--job-dir", help="Run every .yaml/.yml job in this folder."),
    ] = None,
    parallel: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--parallel",
            min=1,
            help="With --job-dir: jobs at once, each in its own process (default 1: one after another); "
            "with --executor dask: jobs on the cluster at once (default: all).",
        ),
    ] = None,
    per_tenant_limit: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--per-tenant-limit",
            min=1,
            help="With --parallel or --executor dask: jobs of one tenant at once (cluster-wide with dask).",
        ),
    ] = None,
    executor: ExecutorOption = "local",
    scheduler: SchedulerOption = None,
    connect_timeout: ConnectTimeoutOption = 10.0,
    shared_path: SharedPathOption = None,
    metrics_port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--metrics-port", min=0, max=65535, help="Serve Prometheus /metrics here while running."
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address for --metrics-port; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    pushgateway: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--pushgateway", help="Push each job's metrics to this Pushgateway URL when it ends."),
    ] = None,
    metrics_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--metrics-file",
            help="Write each job's metrics to this node-exporter textfile ({tenant} and {job} are replaced).",
        ),
    ] = None,
    find_links: FindLinksOption = None,
    as_json: JsonOption = False,
    progress: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal)."
        ),
    ] = None,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "info",
    result_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--result-file",
            hidden=True,
            help="With --config: write the run's result here, for the parent process that started it.",
        ),
    ] = None,
) -> None:
    """Run a job (or every job in a folder): extract, validate, write Parquet, commit."""
    from dativo_runtime._batch._runner import run_jobs
    from dativo_runtime._observability._exposition import MetricsExport
    from dativo_runtime._observability._metrics import RunMetrics

    setup(log_format, log_level)
    use_find_links(find_links)
    if (config is None) == (job_dir is None):
        usage("give exactly one of --config JOB.yaml or --job-dir DIR")
    address = scheduler_address(executor, scheduler, shared_path)
    if job_dir is None and (parallel not in (None, 1) or per_tenant_limit is not None):
        usage("--parallel and --per-tenant-limit apply to --job-dir")
    if result_file is not None and config is None:
        usage("--result-file applies to --config")
    with errors(as_json):
        if config is not None:
            _load_for_run(config, result_file)
        paths = [config] if config is not None else job_files(job_dir)  # type: ignore[arg-type]
        show_progress = bool(progress if progress is not None else sys.stderr.isatty()) and not as_json
        metrics = RunMetrics()
        export = MetricsExport(
            metrics, port=metrics_port, host=metrics_host, pushgateway=pushgateway, metrics_file=metrics_file
        )
        with tracing(), export:
            if executor == "dask":
                from dativo_runtime._batch._dask_executor import run_jobs_on_dask

                report = run_jobs_on_dask(
                    paths,
                    scheduler=address,
                    connect_timeout=connect_timeout,
                    parallel=parallel,
                    per_tenant_limit=per_tenant_limit,
                    shared_paths=shared_path or (),
                    metrics=metrics,
                    export=export,
                    on_outcome=None if as_json else render_outcome,
                )
            else:
                report = run_jobs(
                    paths,
                    parallel=parallel or 1,
                    per_tenant_limit=per_tenant_limit,
                    metrics=metrics,
                    export=export,
                    on_outcome=None if as_json else render_outcome,
                    progress=lambda job: progress_bar(show_progress, job.job_id),
                    env=child_env(log_format, log_level),
                )
        exit_code = report.exit_code
        if config is not None and report.outcomes[0].result is not None:
            _write_result(result_file, report.outcomes[0].result)
        if as_json:
            emit_json(report.outcomes[0].summary if config is not None else report.to_dict())
        elif job_dir is not None:
            render_summary(report, console())
    raise typer.Exit(int(exit_code))
