"""``--executor dask``: each job a Dask task on a cluster's workers; this process plans and watches.

:class:`DaskJobRunner` is a :class:`~dativo_runtime._batch._child.JobRunner` like the
child-process runner: ``run --job-dir`` (through :func:`run_jobs_on_dask`) and ``serve`` call
it from one thread per running job, and each call submits one task
(:func:`~dativo_runtime._batch._dask_task.run_job_task`) and waits for its result. So the
limits work as on one machine, plus one:

* ``--parallel N`` is the submission window: at most ``N`` of this client's jobs are on the
  cluster at once (submitted and not finished); without it every job is submitted at once and
  the workers' threads bound how many run.
* ``--per-tenant-limit K`` holds twice: this client submits at most ``K`` jobs of a tenant at
  once (so no worker thread sits waiting), and each task takes a lease of the tenant's
  ``distributed.Semaphore`` on the worker, so the limit holds across every client of the
  cluster (several ``run`` commands, ``serve``).

Before a job is submitted, the client refuses it when its operator's policy
(``DATIVO_RUNTIME_CONFIG``) forbids it, as a run without Dask would, and when its output is a
local folder and the workers span machines (:mod:`._shared_storage`). Every task carries the
client's policy, and runs under the stricter of it and its worker's own (:mod:`._dask_policy`).
A job with ``source.parallelism`` above 1 runs here instead, each of its partitions a task
(:mod:`._dask_partitions`): this process takes the job's lock and tenant lease, and commits.
``distributed`` is imported lazily.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from dativo_plugin_sdk import DativoError, TransientError
from dativo_runtime._batch._child import JobFile
from dativo_runtime._batch._dask_cluster import DEFAULT_CONNECT_TIMEOUT, dask_client, worker_hosts
from dativo_runtime._batch._dask_partitions import DaskPartitionRunner, partitions_on_cluster
from dativo_runtime._batch._dask_policy import check_client_policy
from dativo_runtime._batch._dask_task import run_job_task, tenant_slot
from dativo_runtime._batch._runner import JobOutcome, JobsReport, run_jobs
from dativo_runtime._batch._shared_storage import check_shared_storage
from dativo_runtime._engine._outcome import RunResult, RunStatus
from dativo_runtime._engine._run import run_job
from dativo_runtime._exit_codes import ExitCode, exit_code_for
from dativo_runtime._jobs._model import JobConfig, load_job
from dativo_runtime._observability._exposition import MetricsExport
from dativo_runtime._observability._metrics import RunMetrics
from dativo_runtime._sandbox._policy import OperatorPolicy
from dativo_runtime._secrets import REDACTOR

__all__ = ["DaskJobRunner", "run_jobs_on_dask"]

logger = logging.getLogger("dativo.dask")


def _failed(job: JobFile, exc: DativoError, *, status: RunStatus = RunStatus.FAILED) -> RunResult:
    return RunResult(
        tenant=job.tenant,
        job=job.name,
        job_file=str(job.path),
        status=status,
        exit_code=int(exit_code_for(exc)),
        error=exc,
    )


class DaskJobRunner:
    """Runs each job as a Dask task on ``client``'s cluster.

    Args:
        client: A connected ``distributed.Client``.
        per_tenant_limit: Runs of one tenant at once, cluster-wide (a semaphore per tenant).
        shared_paths: Local folders every worker mounts at the same path (``--shared-path``).
        poll_interval: Seconds between checks of the task and the cancel event.
    """

    def __init__(
        self,
        client: Any,
        *,
        per_tenant_limit: int | None = None,
        shared_paths: Sequence[Path] = (),
        poll_interval: float = 0.2,
    ) -> None:
        self.client = client
        self.per_tenant_limit = per_tenant_limit
        self.shared_paths = [Path(p) for p in shared_paths]
        self.poll_interval = poll_interval

    def hosts(self) -> set[str]:
        """The machines the cluster's workers run on now (this machine counts as ``localhost``)."""
        return worker_hosts(self.client.scheduler_info())

    def check(self) -> None:
        """Readiness: raise ``RuntimeError`` unless the scheduler answers and has a worker."""
        try:
            workers = self.client.scheduler_info().get("workers") or {}
        except Exception as exc:  # Whatever the comm layer raises, the runner is not ready.
            raise RuntimeError(f"the Dask scheduler does not answer: {exc}") from exc
        if not workers:
            raise RuntimeError("the Dask scheduler has no workers")

    def _plan(self, job: JobFile) -> tuple[JobConfig, OperatorPolicy] | DativoError:
        """The loaded job and this client's policy, or why the job is refused.

        Refused: what this client's operator policy forbids (as a local run refuses it), and
        an output that would stay on one worker's disk.
        """
        try:
            loaded = load_job(job.path)
            policy = OperatorPolicy.load()
            check_client_policy(loaded, policy)
            check_shared_storage(loaded, hosts=self.hosts(), shared_paths=self.shared_paths)
        except DativoError as exc:
            return exc
        return loaded, policy

    def run(self, job: JobFile, cancel: threading.Event) -> RunResult:
        """Submit the job as a task and wait for it; on ``cancel``, stop watching it.

        Dask cannot interrupt a task that is running: a cancelled job that already started
        goes on on its worker and commits or not, atomically, as a run of its own.
        """
        planned = self._plan(job)
        if isinstance(planned, DativoError):
            return _failed(job, planned)
        loaded, policy = planned
        if partitions_on_cluster(loaded):
            return self._run_partitioned(loaded, policy)
        future = self.client.submit(
            run_job_task,
            str(Path(job.path).resolve()),
            per_tenant_limit=self.per_tenant_limit,
            policy=policy,
            key=f"dativo-{job.tenant}-{job.name}-{uuid.uuid4().hex[:12]}",
            pure=False,
        )
        try:
            value = self._wait(future, cancel)
        except _Cancelled:
            return _failed(
                job,
                DativoError(
                    "aborted: the client stopped before the Dask task ended", error_code="RUN_FAILED"
                ),
                status=RunStatus.ABORTED,
            )
        except Exception as exc:  # The task or the cluster failed: a failed run, never a crash.
            return _failed(job, _task_error(job, exc))
        result = RunResult.from_dict(value["result"])
        result.metrics_text = value.get("metrics")
        logger.info("%s/%s ran on Dask worker %s", job.tenant, job.name, value.get("worker"))
        return result

    def _run_partitioned(self, job: JobConfig, policy: OperatorPolicy) -> RunResult:
        """Run the job here under ``policy``, each of its partitions a task on the cluster; commit here."""
        parallelism = job.source.parallelism
        at_once = None if parallelism == "auto" else int(parallelism)
        runner = DaskPartitionRunner(self.client, at_once=at_once, policy=policy)
        metrics = RunMetrics()
        with tenant_slot(job.tenant, self.per_tenant_limit):
            logger.info("running %s here, its partitions as Dask tasks", job.job_id)
            result = run_job(job, metrics=metrics, policy=policy, partition_runner=runner)
        result.metrics_text = generate_latest(metrics.registry).decode("utf-8")
        return result

    def _wait(self, future: Any, cancel: threading.Event) -> dict[str, Any]:
        while True:
            if cancel.is_set():
                future.cancel()
                raise _Cancelled
            try:
                value: dict[str, Any] = future.result(timeout=self.poll_interval)
                return value
            except TimeoutError:
                continue


class _Cancelled(Exception):
    pass


def _task_error(job: JobFile, exc: Exception) -> DativoError:
    name = type(exc).__name__
    if name == "KilledWorker":
        return DativoError(
            f"the Dask task of {job.tenant}/{job.name} was running on every worker that died under it "
            f"({exc}); Dask gave up. Look at the workers' logs (memory limit, OOM killer), then run again",
            error_code="RUN_FAILED",
        )
    if name in ("CancelledError", "FutureCancelledError") or isinstance(exc, OSError):
        return TransientError(
            f"lost the Dask task of {job.tenant}/{job.name} ({name}: {exc}): the scheduler dropped it or "
            "the connection to it broke. Whatever the task did is committed whole or not at all; run again",
            details={"job": f"{job.tenant}/{job.name}"},
        )
    return DativoError(
        REDACTOR.redact_text(f"the Dask task of {job.tenant}/{job.name} failed: {name}: {exc}"),
        error_code="RUN_FAILED",
    )


def run_jobs_on_dask(
    paths: Sequence[str | Path],
    *,
    scheduler: str | None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    parallel: int | None = None,
    per_tenant_limit: int | None = None,
    shared_paths: Collection[Path] = (),
    metrics: RunMetrics | None = None,
    export: MetricsExport | None = None,
    on_outcome: Callable[[JobOutcome], None] | None = None,
) -> JobsReport:
    """Run job files as Dask tasks, at most ``parallel`` at once, ``per_tenant_limit`` per tenant.

    Args:
        paths: Job files, in the order they should start.
        scheduler: The scheduler's address; ``None`` starts a local cluster for the command.
        connect_timeout: Seconds to wait for the scheduler.
        parallel: This client's jobs on the cluster at once; ``None`` for all of them.
        per_tenant_limit: Jobs of one tenant at once, cluster-wide; ``None`` for no limit.
        shared_paths: Local folders every worker mounts at the same path.
        metrics: Where the runs are recorded.
        export: Serves, pushes and writes the metrics.
        on_outcome: Called with each :class:`JobOutcome` as the job ends.

    Returns:
        The :class:`JobsReport`, outcomes in the order of ``paths``.

    Raises:
        ConfigurationError: If ``distributed`` is missing (exit code 2).
        ConnectionError: If the scheduler does not answer (exit code 75).
    """
    with dask_client(scheduler, connect_timeout=connect_timeout) as client:
        runner = DaskJobRunner(client, per_tenant_limit=per_tenant_limit, shared_paths=list(shared_paths))
        report = run_jobs(
            paths,
            parallel=parallel,
            per_tenant_limit=per_tenant_limit,
            metrics=metrics,
            export=export,
            on_outcome=on_outcome,
            runner=runner,
        )
    if report.exit_code == ExitCode.OK:
        logger.info("%d job(s) ran on the Dask cluster", len(report.outcomes))
    return report
