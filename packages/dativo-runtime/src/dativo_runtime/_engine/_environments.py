"""The plugin environments of jobs: built ahead of time, listed, pruned (``dativo-run plugins install|envs``).

The environment machinery itself lives in :mod:`dativo_runtime._plugins._environments`; this
module only asks it about the source and target of each job.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from dativo_plugin_sdk import DativoError
from dativo_runtime._exit_codes import ExitCode, exit_code_for, worst_exit_code
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._plugins._environments import (
    EnvironmentSpec,
    EnvironmentStore,
    PluginEnvironment,
    ProgressCallback,
    PruneReport,
    ensure_environment,
    environment_spec_for,
)
from dativo_runtime._sandbox._policy import OperatorPolicy

__all__ = [
    "InstallReport",
    "InstalledEnvironment",
    "install_environments",
    "job_environment_specs",
    "list_environments",
    "prune_environments",
]

Role = Literal["source", "target"]
InstallStatus = Literal["built", "reused", "none", "failed"]


def job_environment_specs(job: JobConfig) -> list[tuple[Role, str, EnvironmentSpec | None]]:
    """The environment each plugin of a job needs: ``(role, plugin reference, spec or None)``.

    Raises:
        ConfigurationError: If a plugin reference or its declared requirements are invalid.
    """
    return [
        ("source", job.source.plugin, environment_spec_for(job.source_ref(), job.source.config)),
        ("target", job.target.plugin, environment_spec_for(job.target_ref(), job.target.config)),
    ]


@dataclass
class InstalledEnvironment:
    """One plugin of one job and what ``plugins install`` did for it.

    Args:
        job: ``tenant/name``.
        job_file: The job file, when loaded from one.
        role: ``source`` or ``target``.
        plugin: The plugin reference as written.
        status: ``built``, ``reused``, ``none`` (it declares no requirement) or ``failed``.
        spec: What it declares (``None`` for ``none``, or when reading it failed).
        environment: The environment (``built``/``reused``).
        error: Why it failed.
    """

    job: str
    job_file: str | None
    role: Role
    plugin: str
    status: InstallStatus
    spec: EnvironmentSpec | None = None
    environment: PluginEnvironment | None = None
    error: DativoError | None = None

    def size_bytes(self) -> int | None:
        """The environment's disk usage, if there is one."""
        return None if self.environment is None else self.environment.size_bytes()

    def to_dict(self) -> dict[str, Any]:
        """JSON data of the row (what ``plugins install --json`` prints for it)."""
        spec = self.spec
        return {
            "job": self.job,
            "job_file": self.job_file,
            "role": self.role,
            "plugin": self.plugin,
            "status": self.status,
            "env_key": spec.key if spec is not None else None,
            "requirements": list(spec.requirements) if spec is not None else [],
            "origin": spec.origin if spec is not None else None,
            "path": str(self.environment.path) if self.environment is not None else None,
            "size_bytes": self.size_bytes(),
            "error": self.error.to_dict() if self.error is not None else None,
        }


@dataclass
class InstallReport:
    """What ``plugins install`` did for each plugin of each job.

    Args:
        store: The store's folder.
        rows: One per plugin of each job, in job order (source, then target).
    """

    store: Path
    rows: list[InstalledEnvironment] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """``OK``, else the worst exit code of the failures (``USAGE`` for a failing install)."""
        return worst_exit_code(exit_code_for(r.error) for r in self.rows if r.error is not None)

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "exit_code", "store", "environments": [...]}``."""
        return {
            "ok": self.exit_code is ExitCode.OK,
            "exit_code": int(self.exit_code),
            "store": str(self.store),
            "environments": [row.to_dict() for row in self.rows],
        }


def install_environments(
    jobs: Iterable[JobConfig],
    *,
    find_links: Path | Collection[Path] | None = None,
    progress: ProgressCallback | None = None,
    store: EnvironmentStore | None = None,
    policy: OperatorPolicy | None = None,
) -> InstallReport:
    """Build (or reuse) the environment of each job's source and target.

    A plugin whose environment fails to build is reported and the others are still built.
    A job in cloud mode gets wheels from the index only, unless the operator's policy allows
    source builds (:meth:`OperatorPolicy.allows_source_builds`).

    Args:
        jobs: The jobs.
        find_links: Wheel folders to install from with ``--no-index`` (default: ``DATIVO_FIND_LINKS``).
        progress: Called with each step of each build.
        store: The store (default: ``$DATIVO_HOME/envs``).
        policy: The operator's policy (default: :meth:`OperatorPolicy.load`).

    Returns:
        One row per plugin of each job.

    Raises:
        ConfigurationError: If the operator's policy cannot be loaded.
    """
    store = store or EnvironmentStore()
    policy = policy if policy is not None else OperatorPolicy.load()
    report = InstallReport(store=store.root)
    for job in jobs:
        file = str(job.source_file) if job.source_file else None
        plugins: list[tuple[Role, str, dict[str, Any]]] = [
            ("source", job.source.plugin, job.source.config),
            ("target", job.target.plugin, job.target.config),
        ]
        for role, plugin, config in plugins:
            row = InstalledEnvironment(job=job.job_id, job_file=file, role=role, plugin=plugin, status="none")
            report.rows.append(row)
            try:
                ref = job.source_ref() if role == "source" else job.target_ref()
                row.spec = environment_spec_for(ref, config)
                if row.spec is None:
                    continue
                row.environment = ensure_environment(
                    row.spec,
                    find_links=find_links,
                    progress=progress,
                    store=store,
                    wheels_only=not policy.allows_source_builds(job.mode),
                )
                row.status = "built" if row.environment.built else "reused"
            except DativoError as exc:
                row.status, row.error = "failed", exc
    return report


def list_environments(store: EnvironmentStore | None = None) -> dict[str, Any]:
    """Every environment of the store with its size and last use (``plugins envs``).

    Returns:
        ``{"store": path, "environments": [{key, requirements, origin, size_bytes, created,
        last_used, ...}]}``, oldest first.
    """
    store = store or EnvironmentStore()
    return {
        "store": str(store.root),
        "environments": [{**env.to_dict(), "size_bytes": env.size_bytes()} for env in store.list()],
    }


def prune_environments(
    jobs: Sequence[JobConfig] = (),
    *,
    older_than_days: float | None = 30,
    dry_run: bool = False,
    store: EnvironmentStore | None = None,
) -> PruneReport:
    """Remove environments the given jobs do not need and that were not used for a while.

    An environment is removed when no job given needs it (any, when no job is given) **and** its
    last use is older than ``older_than_days`` (``0`` or ``None``: whatever its last use).
    Environments being built or in use by a run are never removed.

    Args:
        jobs: Jobs whose environments are kept.
        older_than_days: Days without use before an environment may go.
        dry_run: Report, remove nothing.
        store: The store (default: ``$DATIVO_HOME/envs``).

    Returns:
        What was removed and what was left.

    Raises:
        ConfigurationError: If a job's plugin requirements cannot be read (its environment
            could not be told apart, so nothing is removed).
        ValueError: If ``older_than_days`` is negative.
    """
    if older_than_days is not None and older_than_days < 0:
        raise ValueError(f"older_than_days must be 0 or more, not {older_than_days}")
    keep = {spec.key for job in jobs for _, _, spec in job_environment_specs(job) if spec is not None}
    older_than = timedelta(days=older_than_days) if older_than_days else None
    return (store or EnvironmentStore()).prune(keep=keep, older_than=older_than, dry_run=dry_run)
