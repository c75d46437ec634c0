"""What ``/readyz`` checks for the jobs ``serve`` runs, read afresh from their files at each probe.

* ``job-files``: every scheduled job file is a valid job (a run would fail at once otherwise);
* ``sandbox``: the sandbox backend each job's plugins need works here (bubblewrap can
  create its namespaces, the Docker daemon answers and holds the sandbox image), within
  the operator's policy;
* ``state-store``: each job's state store is reachable and writable (S3: the bucket
  answers ``HEAD`` and takes a probe object; a folder: a probe file is written and removed);
* ``targets``: likewise for each parquet target, and the local folder of other writers.

Each check names every job that fails it; the checks never start a plugin.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dativo_plugin_sdk import DativoError
from dativo_runtime._batch._child import JobFile
from dativo_runtime._jobs._model import JobConfig, load_job
from dativo_runtime._sandbox._policy import OperatorPolicy, choose_sandbox
from dativo_runtime._serve._app import ReadinessCheck
from dativo_runtime._storage._backends import S3Storage, open_storage
from dativo_runtime._storage._s3 import s3_options

__all__ = ["NotReadyError", "job_readiness_checks"]


class NotReadyError(RuntimeError):
    """A readiness check failed; the message names each job and why."""


def _load_all(jobs: Sequence[JobFile]) -> tuple[list[JobConfig], list[str]]:
    loaded, problems = [], []
    for job in jobs:
        try:
            loaded.append(load_job(job.path))
        except DativoError as exc:
            problems.append(f"{job.tenant}/{job.name}: {exc.message}")
    return loaded, problems


def _fail_on(problems: list[str]) -> None:
    if problems:
        raise NotReadyError("; ".join(problems))


def _check_job_files(jobs: Sequence[JobFile]) -> None:
    _fail_on(_load_all(jobs)[1])


def _check_sandboxes(jobs: Sequence[JobFile], policy: OperatorPolicy | None) -> None:
    loaded, _ = _load_all(jobs)
    policy = policy if policy is not None else OperatorPolicy.load()
    problems = []
    for job in loaded:
        for role in ("source", "target"):
            try:
                ref = job.source_ref() if role == "source" else job.target_ref()
                choose_sandbox(job.mode, job.sandbox.backend, ref, policy, limits=job.sandbox.to_limits())
            except DativoError as exc:
                problems.append(f"{job.job_id} ({role}): {exc.message}")
    _fail_on(problems)


def _probe(location: str, options: Mapping[str, Any], probe_folder: str) -> None:
    storage = open_storage(location, options)
    if isinstance(storage, S3Storage):
        storage.check_bucket()
    probe = f"{probe_folder}.ready-probe-{uuid.uuid4().hex[:8]}"
    storage.write_bytes(probe, b"dativo readiness probe")
    storage.delete(probe)


def _check_locations(
    jobs: Sequence[JobFile], where: Callable[[JobConfig], tuple[str, Mapping[str, Any], str] | None]
) -> None:
    loaded, _ = _load_all(jobs)
    seen: dict[str, str | None] = {}
    problems = []
    for job in loaded:
        found = where(job)
        if found is None:
            continue
        location, options, probe_folder = found
        if location not in seen:
            try:
                _probe(location, options, probe_folder)
                seen[location] = None
            except DativoError as exc:
                seen[location] = exc.message
        if seen[location] is not None:
            problems.append(f"{job.job_id}: {location}: {seen[location]}")
    _fail_on(problems)


def _state_store(job: JobConfig) -> tuple[str, Mapping[str, Any], str]:
    return job.state_location(), job.state_storage_options(), ""


def _target(job: JobConfig) -> tuple[str, Mapping[str, Any], str] | None:
    location = job.target_location()
    if location is not None:
        config = job.target.config
        return location, s3_options(config), "_dativo/"
    folder = job.output_dir()
    return None if folder is None else (str(folder), {}, "")


def job_readiness_checks(
    jobs: Sequence[JobFile], *, policy: OperatorPolicy | None = None, timeout: float = 15.0
) -> list[ReadinessCheck]:
    """Return the ``/readyz`` checks for ``jobs``: job files, sandboxes, state stores, targets.

    Args:
        jobs: The scheduled jobs.
        policy: The operator's sandbox policy; read from ``DATIVO_RUNTIME_CONFIG`` at each
            probe by default.
        timeout: Seconds each check may take (an unreachable S3 endpoint takes a while).

    Returns:
        Four :class:`ReadinessCheck` objects; each raises :class:`NotReadyError` naming
        the jobs that fail it.
    """
    return [
        ReadinessCheck("job-files", lambda: _check_job_files(jobs), timeout),
        ReadinessCheck("sandbox", lambda: _check_sandboxes(jobs, policy), timeout),
        ReadinessCheck("state-store", lambda: _check_locations(jobs, _state_store), timeout),
        ReadinessCheck("targets", lambda: _check_locations(jobs, _target), timeout),
    ]
