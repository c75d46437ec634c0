"""What runs on a Dask worker for one job: :func:`run_job_task`.

The task is the runtime's own run of one job, the same one ``dativo-run run --config JOB``
does, under the stricter of this worker's operator policy and the one the client sent
(:func:`~dativo_runtime._batch._dask_policy.task_policy`): it loads the job file (at the same
path on every worker), checks that the job's sandbox backend works on this worker under that
policy, takes a lease of the tenant's cluster-wide
``distributed.Semaphore`` when there is a per-tenant limit, then calls
:func:`~dativo_runtime._engine._run.run_job`. It returns plain data, never raises for a failed
run: the run's :meth:`RunResult.to_record`, the run's metrics as Prometheus text and the
worker's address.

A worker killed mid-task (``kill -9``) loses the run; Dask runs the task again on another
worker, whose run settles the killed run's pending commit and takes the job's lock (a local
folder's ``flock`` dies with its process; an S3 lease expires after its time to live), so
the job commits exactly once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from dativo_plugin_sdk import ConfigurationError, DativoError, from_dict
from dativo_runtime._batch._dask_cluster import import_distributed
from dativo_runtime._batch._dask_policy import task_policy
from dativo_runtime._engine._outcome import RunResult, RunStatus
from dativo_runtime._engine._run import run_job
from dativo_runtime._exit_codes import exit_code_for
from dativo_runtime._jobs._model import JobConfig, load_job
from dativo_runtime._observability._metrics import RunMetrics
from dativo_runtime._sandbox._policy import OperatorPolicy, choose_sandbox

__all__ = ["TENANT_SEMAPHORE_PREFIX", "check_sandbox", "run_job_task", "tenant_semaphore_name", "tenant_slot"]

logger = logging.getLogger("dativo.dask")

TENANT_SEMAPHORE_PREFIX = "dativo-tenant-"
"""The name of a tenant's ``distributed.Semaphore`` is this prefix plus the tenant."""


def tenant_semaphore_name(tenant: str) -> str:
    """The name of ``tenant``'s semaphore on the scheduler (shared by every client of the cluster)."""
    return f"{TENANT_SEMAPHORE_PREFIX}{tenant}"


@contextlib.contextmanager
def tenant_slot(tenant: str, limit: int | None) -> Iterator[None]:
    """Hold one of ``limit`` leases of the tenant's cluster-wide semaphore (no limit: nothing).

    The semaphore lives on the scheduler, so the limit holds across workers and across
    clients. A lease of a worker that died is released by the scheduler after
    ``distributed.scheduler.locks.lease-timeout`` (30 s by default).
    """
    if limit is None:
        yield
        return
    distributed = import_distributed()
    semaphore = distributed.Semaphore(max_leases=limit, name=tenant_semaphore_name(tenant))
    semaphore.acquire()
    try:
        yield
    finally:
        semaphore.release()


def check_sandbox(job: JobConfig, policy: OperatorPolicy | None = None) -> None:
    """Check that this machine can run the job's plugins in the sandbox the job and policy call for.

    Args:
        job: The job.
        policy: The operator's policy; this machine's (``DATIVO_RUNTIME_CONFIG``) by default.

    Raises:
        SandboxError: If no backend the job may use works here (the message is the one
            ``sandbox doctor`` gives: why, and how to fix it).
        ConfigurationError: If the job asks for what the operator's policy forbids.
    """
    limits = job.sandbox.to_limits()
    for ref in (job.source_ref(), job.target_ref()):
        choose_sandbox(
            job.mode, job.sandbox.backend, ref, policy, limits=limits, read_only_paths=job.read_only_paths()
        )


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):  # Called outside a Dask worker (tests, embedding).
        return "local"


def _on_worker(exc: DativoError, why: str, worker: str) -> DativoError:
    """The same error (same class, exit code, retryability), its message saying which worker refused."""
    data = exc.to_dict()
    data["message"] = f"{why}: {exc.message}"
    data["details"] = {**exc.details, "worker": worker}
    return from_dict(data)


def _refused(job_file: str, exc: DativoError, worker: str, job: JobConfig | None = None) -> dict[str, Any]:
    result = RunResult(
        tenant="" if job is None else job.tenant,
        job="" if job is None else job.name,
        job_file=job_file,
        status=RunStatus.FAILED,
        exit_code=int(exit_code_for(exc)),
        error=exc,
    )
    return {"result": result.to_record(), "metrics": None, "worker": worker}


def run_job_task(
    job_file: str, *, per_tenant_limit: int | None = None, policy: OperatorPolicy | None = None
) -> dict[str, Any]:
    """Run one job on this worker; the Dask task of ``--executor dask``.

    Args:
        job_file: The job file's absolute path (the same on every worker).
        per_tenant_limit: Runs of one tenant at once across the cluster; ``None`` for no limit.
        policy: The client's operator policy; the job runs under the stricter of it and this
            worker's own (``None``: this worker's alone).

    Returns:
        ``{"result": RunResult.to_record(), "metrics": text or None, "worker": address}``.
    """
    worker = _worker_address()
    if not Path(job_file).is_file():
        missing = ConfigurationError(
            f"the job file {job_file!r} is not on Dask worker {worker}; every worker must see the job "
            "folder at the same path as the client (a shared mount, or the same checkout on each machine)",
            details={"job_file": job_file, "worker": worker},
        )
        return _refused(job_file, missing, worker)
    try:
        job = load_job(job_file)
    except DativoError as exc:
        return _refused(job_file, exc, worker)
    try:
        effective = task_policy(policy, job)
        check_sandbox(job, effective)
    except DativoError as exc:
        refusal = _on_worker(exc, f"Dask worker {worker} cannot run job {job.job_id}", worker)
        logger.warning("%s", refusal.message)
        return _refused(job_file, refusal, worker, job)
    metrics = RunMetrics()
    with tenant_slot(job.tenant, per_tenant_limit):
        logger.info("running %s on Dask worker %s", job.job_id, worker)
        result = run_job(job, metrics=metrics, policy=effective)
    text = generate_latest(metrics.registry).decode("utf-8")
    return {"result": result.to_record(), "metrics": text, "worker": worker}
