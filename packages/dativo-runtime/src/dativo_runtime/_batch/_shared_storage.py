"""Whether a job's output is reachable by every Dask worker: S3, or a folder every worker mounts.

On a cluster whose workers run on more than one machine, a job whose target, quarantine or
state is a local folder would write to whichever worker's disk ran it: the next run, on another
machine, would find neither the files nor the state. Such a job is refused unless the folder
lies under a ``--shared-path`` (a folder the operator says every worker mounts at the same
path, such as an NFS mount). Workers all on the client's machine count as one machine.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._jobs._model import JobConfig, is_remote_uri

__all__ = ["check_shared_storage", "unshared_locations"]


def _locations(job: JobConfig) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    output = job.output_dir()
    if output is not None:
        found.append(("target", str(output)))
    quarantine = job.quarantine_location()
    if quarantine is not None:
        found.append(("quarantine", quarantine))
    found.append(("state", job.state_location()))
    return found


def _under(path: Path, folders: Sequence[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def unshared_locations(job: JobConfig, shared_paths: Sequence[Path]) -> list[tuple[str, str]]:
    """The job's local folders (``target``, ``quarantine``, ``state``) under no shared path.

    Args:
        job: The job.
        shared_paths: Folders every worker mounts at the same path.

    Returns:
        ``(what, folder)`` pairs, in that order; empty when everything is on S3 or shared.
    """
    shared = [Path(p).resolve() for p in shared_paths]
    return [
        (what, location)
        for what, location in _locations(job)
        if not is_remote_uri(location) and not _under(Path(location).resolve(), shared)
    ]


def check_shared_storage(job: JobConfig, *, hosts: Collection[str], shared_paths: Sequence[Path]) -> None:
    """Refuse a job whose output stays on one worker's disk when the workers span machines.

    Args:
        job: The job.
        hosts: The machines the cluster's workers run on (:func:`worker_hosts`).
        shared_paths: Folders every worker mounts at the same path (``--shared-path``).

    Raises:
        ConfigurationError: If the workers run on more than one machine and the job writes
            to a local folder under no shared path (exit code 2).
    """
    if len(hosts) <= 1:
        return
    unshared = unshared_locations(job, shared_paths)
    if not unshared:
        return
    what, folder = unshared[0]
    others = "".join(f", its {w} to {f!r}" for w, f in unshared[1:])
    machines = ", ".join(sorted(hosts))
    raise ConfigurationError(
        f"job {job.job_id} writes its {what} to the local folder {folder!r}{others}, but the Dask "
        f"workers run on {len(hosts)} machines ({machines}): each run would land on whichever machine "
        "ran it. Put the target (and state) on S3, or, if every worker mounts that folder at the same "
        "path (NFS, a shared volume), say so with --shared-path FOLDER",
        details={
            "option": "--shared-path",
            "job": job.job_id,
            "unshared": dict(unshared),
            "hosts": sorted(hosts),
        },
    )
