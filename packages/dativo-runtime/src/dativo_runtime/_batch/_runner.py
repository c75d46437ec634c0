"""Running several jobs: one after another in this process, or several at once in child processes.

``dativo-run run --job-dir DIR`` runs the jobs of a folder through :func:`run_jobs`. With
``parallel=1`` (the default) they run one after another in this process, as
``run --config`` does. With ``parallel=N`` up to ``N`` run at once, each in its own
``python -m dativo_runtime run --config JOB --json`` child process: real parallelism on
several cores (the pipeline's Python work holds the GIL, so threads would not give it),
and a crashing plugin or a leak takes down one job, not the others. ``per_tenant_limit``
caps the runs of one tenant at once, with the same :class:`ConcurrencyLimits` as
``dativo-run serve``. A job that fails does not stop the others; the combined exit code
is the most serious one (:func:`worst_exit_code`). With a ``runner`` (``--executor dask``:
:class:`~dativo_runtime._batch._dask_executor.DaskJobRunner`) each job goes through it
instead of a child process, under the same limits.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import DativoError
from dativo_runtime._batch._child import RUN_COMMAND, JobRunner, SubprocessJobRunner, run_recorded
from dativo_runtime._batch._concurrency import ConcurrencyLimits
from dativo_runtime._engine._attempt import ProgressEvent
from dativo_runtime._engine._outcome import RunResult, RunStatus
from dativo_runtime._engine._run import run_job
from dativo_runtime._engine._termination import raise_if_requested
from dativo_runtime._exit_codes import ExitCode, exit_code_for, worst_exit_code
from dativo_runtime._jobs._model import JobConfig, load_job
from dativo_runtime._observability._exposition import MetricsExport
from dativo_runtime._observability._metrics import RunMetrics

__all__ = ["JobOutcome", "JobsReport", "run_jobs"]

log = logging.getLogger("dativo.run")

_DOCUMENTED_CODES = frozenset(int(code) for code in ExitCode)

ProgressFactory = Callable[
    [JobConfig], contextlib.AbstractContextManager[Callable[[ProgressEvent], None] | None]
]


@dataclass
class JobOutcome:
    """How one job of :func:`run_jobs` ended.

    Attributes:
        path: The job file.
        tenant: The job's tenant (``None`` when the file did not load).
        job: The job's name (``None`` when the file did not load).
        status: ``succeeded``, ``failed`` or ``aborted``.
        exit_code: The job's exit code (a child killed by a signal counts as 1).
        summary: The run's result as ``run --json`` prints it, or the job file's error.
        duration_s: Wall-clock seconds.
        result: The :class:`RunResult` (read back from the child process for parallel
            runs); ``None`` when the job file did not load.
        in_process: Whether the job ran in this process (``parallel=1``).
    """

    path: Path
    tenant: str | None
    job: str | None
    status: RunStatus
    exit_code: int
    summary: dict[str, Any]
    duration_s: float = 0.0
    result: RunResult | None = None
    in_process: bool = False

    @property
    def error_message(self) -> str | None:
        """The error's message when the job did not succeed."""
        error = self.summary.get("error")
        if isinstance(error, Mapping) and error.get("message"):
            return str(error["message"])
        return None


@dataclass
class JobsReport:
    """The outcomes of :func:`run_jobs`, in job-file order."""

    outcomes: list[JobOutcome] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """The most serious exit code (2, 77, 65, 1, 75 in that order); 0 when every job succeeded."""
        return worst_exit_code(outcome.exit_code for outcome in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "exit_code", "jobs": [...]}``: what ``run --job-dir --json`` prints."""
        code = self.exit_code
        return {
            "ok": code == ExitCode.OK,
            "exit_code": int(code),
            "jobs": [outcome.summary for outcome in self.outcomes],
        }


@dataclass(frozen=True)
class _JobFile:
    path: Path
    tenant: str
    name: str


def _unloadable(path: Path, exc: DativoError) -> JobOutcome:
    code = int(exit_code_for(exc))
    summary = {
        "job_file": str(path),
        "status": RunStatus.FAILED.value,
        "exit_code": code,
        "error": exc.to_dict(),
    }
    return JobOutcome(path, None, None, RunStatus.FAILED, code, summary)


def _load(path: Path) -> JobConfig | JobOutcome:
    try:
        return load_job(path)
    except DativoError as exc:
        return _unloadable(path, exc)


def run_jobs(
    paths: Sequence[str | Path],
    *,
    parallel: int | None = 1,
    per_tenant_limit: int | None = None,
    metrics: RunMetrics | None = None,
    export: MetricsExport | None = None,
    on_outcome: Callable[[JobOutcome], None] | None = None,
    progress: ProgressFactory | None = None,
    command: Sequence[str] = RUN_COMMAND,
    env: Mapping[str, str] | None = None,
    kill_after: float = 30.0,
    runner: JobRunner | None = None,
) -> JobsReport:
    """Run several job files, ``parallel`` at a time, at most ``per_tenant_limit`` per tenant.

    A job file that does not load, or a job that fails, is reported and the others go
    on. ``SIGTERM`` or Ctrl-C (a ``SystemExit``/``KeyboardInterrupt`` in this thread)
    stops starting jobs, aborts the running ones cleanly (each child gets ``SIGTERM``,
    nothing half-committed) and propagates.

    Args:
        paths: Job files, in the order they should start.
        parallel: Jobs at once; 1 runs them one after another in this process (unless a
            ``runner`` is given); ``None`` (only with a ``runner``) for no limit.
        per_tenant_limit: Jobs of one tenant at once; ``None`` for no limit.
        metrics: Where the runs are recorded; a new :class:`RunMetrics` by default.
        export: Serves, pushes and writes the metrics (:meth:`MetricsExport.job_finished`
            is called after each job).
        on_outcome: Called with each :class:`JobOutcome` as the job ends.
        progress: ``parallel=1`` only: returns the progress callback context of a job.
        command: ``parallel>1``: the command that runs one job in a child process.
        env: ``parallel>1``: the children's environment; this process's by default.
        kill_after: ``parallel>1``: seconds an aborted child gets before ``SIGKILL``.
        runner: Runs each job instead of a child process (the Dask executor's
            :class:`DaskJobRunner`), whatever ``parallel`` is.

    Returns:
        The :class:`JobsReport`, outcomes in the order of ``paths``.

    Raises:
        ValueError: If ``parallel`` or ``per_tenant_limit`` is below 1.
    """
    limits = ConcurrencyLimits(parallel, per_tenant_limit)
    metrics = metrics or RunMetrics()
    files = [Path(p) for p in paths]
    if parallel is None and runner is None:
        raise ValueError("parallel=None (no limit) needs a runner")
    if parallel == 1 and runner is None:
        outcomes = _run_here(files, metrics=metrics, export=export, on_outcome=on_outcome, progress=progress)
    else:
        if runner is None:
            runner = SubprocessJobRunner(
                command, kill_after=kill_after, env=env, poll_interval=0.05, json_summary=True
            )
        outcomes = _run_children(
            files, limits, runner=runner, metrics=metrics, export=export, on_outcome=on_outcome
        )
    return JobsReport(outcomes)


def _finish(
    outcome: JobOutcome,
    export: MetricsExport | None,
    on_outcome: Callable[[JobOutcome], None] | None,
) -> None:
    if export is not None and outcome.tenant is not None and outcome.job is not None:
        export.job_finished(outcome.tenant, outcome.job)
    if on_outcome is not None:
        on_outcome(outcome)


def _run_here(
    files: list[Path],
    *,
    metrics: RunMetrics,
    export: MetricsExport | None,
    on_outcome: Callable[[JobOutcome], None] | None,
    progress: ProgressFactory | None,
) -> list[JobOutcome]:
    outcomes: list[JobOutcome] = []
    for path in files:
        raise_if_requested()  # A signal held while the previous job committed.
        loaded = _load(path)
        if isinstance(loaded, JobOutcome):
            outcomes.append(loaded)
            _finish(loaded, None, on_outcome)
            continue
        job = loaded
        try:
            with progress(job) if progress is not None else contextlib.nullcontext() as on_progress:
                result = run_job(job, on_progress=on_progress, metrics=metrics)
        finally:
            # Whatever the outcome, aborted runs included, the job's metrics leave the process.
            if export is not None:
                export.job_finished(job.tenant, job.name)
        outcome = JobOutcome(
            path,
            job.tenant,
            job.name,
            result.status,
            int(result.exit_code),
            result.to_dict(),
            result.duration_s,
            result,
            in_process=True,
        )
        outcomes.append(outcome)
        _finish(outcome, None, on_outcome)
    return outcomes


def _child_outcome(path: Path, job: _JobFile, result: RunResult, duration: float) -> JobOutcome:
    code = result.exit_code if result.exit_code in _DOCUMENTED_CODES else int(ExitCode.FAILURE)
    if result.run_id:
        summary = result.to_dict()
    else:  # The child left no result of its own (it crashed or was stopped): say what is known.
        summary = {
            "job_file": str(path),
            "tenant": job.tenant,
            "job": job.name,
            "status": result.status.value,
            "exit_code": code,
            "error": None if result.error is None else result.error.to_dict(),
        }
    return JobOutcome(path, job.tenant, job.name, result.status, code, summary, duration, result)


def _run_children(
    files: list[Path],
    limits: ConcurrencyLimits,
    *,
    runner: JobRunner,
    metrics: RunMetrics,
    export: MetricsExport | None,
    on_outcome: Callable[[JobOutcome], None] | None,
) -> list[JobOutcome]:
    by_path: dict[Path, JobOutcome] = {}
    waiting: list[_JobFile] = []
    for path in files:
        loaded = _load(path)
        if isinstance(loaded, JobOutcome):
            by_path[path] = loaded
            _finish(loaded, None, on_outcome)
        else:
            waiting.append(_JobFile(path, loaded.tenant, loaded.name))
    cancel = threading.Event()
    running: dict[concurrent.futures.Future[tuple[RunResult, float]], _JobFile] = {}

    def collect(future: concurrent.futures.Future[tuple[RunResult, float]]) -> None:
        job = running.pop(future)
        result, duration = future.result()
        outcome = _child_outcome(job.path, job, result, duration)
        by_path[job.path] = outcome
        _finish(outcome, export, on_outcome)

    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=limits.max_parallel or len(waiting) or 1, thread_name_prefix="dativo-job"
    )
    try:
        while waiting or running:
            startable = limits.startable(
                waiting, running_tenants=[j.tenant for j in running.values()], tenant_of=lambda j: j.tenant
            )
            for job in startable:
                waiting.remove(job)
                log.info("starting %s/%s (%s)", job.tenant, job.name, job.path)
                running[pool.submit(run_recorded, runner, job, cancel, metrics)] = job
            # A short timeout keeps this thread responsive to SIGTERM and Ctrl-C.
            done, _ = concurrent.futures.wait(
                running, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                collect(future)
    except BaseException:
        cancel.set()
        if running:
            log.warning(
                "stopping: aborting %d running job(s) (nothing of them is committed)",
                len(running),
            )
        for future in list(running):
            with contextlib.suppress(Exception):
                collect(future)
        raise
    finally:
        pool.shutdown(wait=True)
    return [by_path[path] for path in files if path in by_path]
