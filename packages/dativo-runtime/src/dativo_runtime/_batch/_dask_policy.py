"""The operator's policy across a Dask cluster: the client's holds on every worker its tasks run on.

The client (``run --executor dask``, ``serve``) reads its policy (``DATIVO_RUNTIME_CONFIG``)
for each job and first judges the job by it alone (:func:`check_client_policy`): a job its
policy forbids is refused before anything is submitted, with the message and exit code a run
without Dask gives. It then sends the policy with every task (the job's, or each of its
partitions'), and the worker runs the task under :func:`task_policy`: the stricter of its own
policy and the client's (:meth:`OperatorPolicy.stricter`). A worker that cannot honour the
result (no isolated backend for a cloud task, policies that contradict each other) fails the
task with a ``SandboxError`` or ``ConfigurationError``; it never runs a plugin in-process that
the client's policy would sandbox.
"""

from __future__ import annotations

from dativo_plugin_sdk import ConfigurationError, SandboxError
from dativo_runtime._engine._host_reach import check_host_reach
from dativo_runtime._engine._sessions import in_role
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._sandbox._policy import OperatorPolicy, choose_sandbox

__all__ = ["check_client_policy", "task_policy"]


def check_client_policy(job: JobConfig, policy: OperatorPolicy) -> None:
    """Refuse a job the client's policy forbids, as a local run refuses it (exit code 2).

    Only the policy's verdict counts here (host paths or servers a cloud job may not name,
    ``none`` in cloud mode, a backend not allowed, a limit above a ceiling, egress or
    read-only host paths not allowed): whether a backend
    works is for the worker that runs the job to say.

    Args:
        job: The job.
        policy: The client's operator policy.

    Raises:
        ConfigurationError: Naming the setting and the side (source or target), as ``run`` does.
    """
    check_host_reach(job, policy)
    for role in ("source", "target"):
        try:
            ref = job.source_ref() if role == "source" else job.target_ref()
            choose_sandbox(
                job.mode,
                job.sandbox.backend,
                ref,
                policy,
                limits=job.sandbox.to_limits(),
                read_only_paths=job.read_only_paths(),
            )
        except SandboxError:
            continue  # No backend works on the client's machine; the worker's may.
        except ConfigurationError as exc:
            raise in_role(exc, role, job) from exc


def task_policy(client: OperatorPolicy | None, job: JobConfig) -> OperatorPolicy:
    """The policy a task runs under on this worker: its own, made as strict as the client's.

    Args:
        client: The policy the client sent with the task (``None``: the worker's alone).
        job: The job (its ``mode`` and its folder).

    Returns:
        The stricter of this worker's policy (``DATIVO_RUNTIME_CONFIG``) and ``client``.

    Raises:
        ConfigurationError: If this worker's policy is invalid, or no policy honours both.
    """
    own = OperatorPolicy.load()
    return own if client is None else own.stricter(client, job_mode=job.mode, base_dir=job.base_dir)
