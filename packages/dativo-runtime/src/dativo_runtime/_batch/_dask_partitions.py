"""A job's partitions as Dask tasks: the engine's ``partition_runner`` hook over a ``distributed.Client``.

For a job with ``source.parallelism`` above 1 (and a target the engine can stage remotely, see
:func:`~dativo_runtime._engine._partition_task.can_stage_remotely`), ``--executor dask`` runs the
job's :func:`~dativo_runtime._engine._run.run_job` in the client process with a
:class:`DaskPartitionRunner`: the client takes the job's lock, lists the partitions, and each
partition becomes one task (:func:`stage_partition_task`) on a worker, which extracts, validates
and stages it into the client's target run, under the stricter of the worker's operator policy
and the client's (:func:`~dativo_runtime._batch._dask_policy.task_policy`). The client adopts
what each task staged and commits every partition's files and state in one commit. A worker that
dies mid-partition makes Dask run that partition again elsewhere; the dead copy's files are never
adopted.

At most ``parallelism`` partitions of a job are on the cluster at once (``auto``: all of them,
the workers' threads bound how many run).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from dativo_plugin_sdk import DativoError
from dativo_runtime._batch._dask_cluster import import_distributed
from dativo_runtime._batch._dask_policy import task_policy
from dativo_runtime._engine._partition_task import (
    PartitionRequest,
    PartitionStaged,
    can_stage_remotely,
    stage_partition,
)
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._sandbox._policy import OperatorPolicy

__all__ = ["DaskPartitionRunner", "partitions_on_cluster", "stage_partition_task"]

logger = logging.getLogger("dativo.dask")


def partitions_on_cluster(job: JobConfig) -> bool:
    """Whether ``--executor dask`` spreads this job's partitions over the workers.

    Yes when the job asks for ``source.parallelism`` above 1 (or ``auto``) and its target can
    be staged on other machines; otherwise the whole job is one task.
    """
    if job.source.parallelism == 1:
        return False
    ok, why = can_stage_remotely(job)
    if not ok:
        logger.info("%s runs as one Dask task, its partitions on one worker: %s", job.job_id, why)
    return ok


def stage_partition_task(request: PartitionRequest, policy: OperatorPolicy | None = None) -> PartitionStaged:
    """Stage one partition on this worker under the stricter of its policy and the client's ``policy``.

    Raises:
        DativoError: Whatever failed, such as a ``SandboxError`` when this worker has no backend
            the combined policy allows (the partition never runs in-process then).
    """
    return stage_partition(request, policy=task_policy(policy, request.job))


class DaskPartitionRunner:
    """Stages partition requests as Dask tasks and yields what each staged, as they finish.

    Args:
        client: A connected ``distributed.Client``.
        at_once: Partitions on the cluster at once; ``None`` for all of them.
        policy: The client's operator policy, sent with every partition's task.
    """

    def __init__(
        self, client: Any, *, at_once: int | None = None, policy: OperatorPolicy | None = None
    ) -> None:
        self.client = client
        self.at_once = at_once
        self.policy = policy

    def __call__(self, requests: Sequence[PartitionRequest]) -> Iterator[PartitionStaged]:
        """Submit the requests (at most ``at_once`` at a time); raise the first partition's error."""
        distributed = import_distributed()
        waiting = list(requests)
        window = self.at_once or len(waiting) or 1
        running = distributed.as_completed()
        futures: list[Any] = []

        def submit() -> None:
            request = waiting.pop(0)
            future = self.client.submit(
                stage_partition_task,
                request,
                self.policy,
                key=f"dativo-partition-{request.run_id}-{request.tag}-{uuid.uuid4().hex[:8]}",
                pure=False,
            )
            futures.append(future)
            running.add(future)

        try:
            for _ in range(min(window, len(waiting))):
                submit()
            for future in running:
                yield _staged(future)
                if waiting:
                    submit()
        finally:
            for future in futures:
                future.cancel()


def _staged(future: Any) -> PartitionStaged:
    try:
        staged: PartitionStaged = future.result()
    except DativoError:
        raise
    except Exception as exc:  # KilledWorker, a lost scheduler: the run fails, nothing is committed.
        retryable = isinstance(exc, OSError) or type(exc).__name__ in (
            "CancelledError",
            "FutureCancelledError",
        )
        raise DativoError(
            f"a partition's Dask task failed ({type(exc).__name__}: {exc}); nothing of the run is committed",
            error_code="RUN_FAILED",
            retryable=retryable,
        ) from exc
    return staged
