"""Opening the plugins of a job in their sandboxes, and choosing the stream to read.

Errors name the side of the job they are about (``source.config.path (csv): ...``), so a
user knows which setting to change; see :func:`in_role`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import Column, ConfigurationError, DativoError, DiscoveredStream, from_dict
from dativo_runtime._engine._host_reach import check_host_reach
from dativo_runtime._engine._mounts import check_plugin_folder, check_read_only_paths, writable_output_dir
from dativo_runtime._engine._retry import RetryPolicy, call_with_retry
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._observability._tracing import Tracing, active_tracing
from dativo_runtime._plugins._config_spec import describe_problems
from dativo_runtime._plugins._environments import (
    EnvironmentProgress,
    ensure_environment,
    environment_spec_for,
)
from dativo_runtime._plugins._ref import PluginRef, is_trusted_builtin
from dativo_runtime._sandbox import ReaderSession, Sandbox, WriterSession, choose_sandbox
from dativo_runtime._sandbox._base import SandboxLimits, SessionMounts
from dativo_runtime._sandbox._plugin_packages import installed_plugin_packages
from dativo_runtime._sandbox._policy import OperatorPolicy
from dativo_runtime.connectors._registry import builtin_connector

__all__ = [
    "QUARANTINE_WRITER",
    "abort_quietly",
    "close_quietly",
    "in_role",
    "open_reader_session",
    "open_writer_session",
    "plugin_environment",
    "plugin_mounts",
    "resolve_stream",
    "session_mounts",
    "writer_columns",
]

log = logging.getLogger("dativo.run")

QUARANTINE_WRITER = "parquet"
"""The built-in writer that writes a job's quarantine dataset (the quarantine names no plugin)."""


def in_role(exc: DativoError, role: str, job: JobConfig) -> DativoError:
    """Say which side of which job a configuration error is about (``source.config.path``).

    Errors about a job-level setting (``details["setting"]``, such as ``sandbox.memory``
    from the sandbox policy) name that setting rather than a plugin's config field.
    """
    if not isinstance(exc, ConfigurationError) or exc.details.get("role"):
        return exc
    setting = exc.details.get("setting")
    field_name = exc.details.get("field")
    where = f"{role}.config.{field_name}" if field_name else role
    if setting:
        where = str(setting)
    # The quarantine has no plugin of its own: it is written by the built-in quarantine writer.
    plugin = getattr(getattr(job, role, None), "plugin", None) or QUARANTINE_WRITER
    data = exc.to_dict()
    data["message"] = f"{job.display_name}: {where} ({plugin}): {exc.message}"
    problems = exc.details.get("problems")
    if exc.details.get("reason") == "config_schema" and isinstance(problems, list):
        # A config the plugin's config_schema refuses: each problem at its full key path.
        count = len(problems)
        data["message"] = (
            f"{job.display_name}: {role}.config ({plugin}) does not match the plugin's config_schema "
            f"({count} problem{'s' if count != 1 else ''}): {describe_problems(problems, f'{role}.config')}"
        )
    data["details"] = {**exc.details, "role": role, "file": job.display_name}
    return from_dict(data)


def plugin_environment(
    ref: PluginRef, config: Mapping[str, Any], *, wheels_only: bool = False
) -> Path | None:
    """The folder of the plugin's environment (what it declares, installed), or ``None`` for none.

    A missing environment is built here (uv, under the store's lock; later runs and other
    jobs declaring the same requirements reuse it); ``DATIVO_FIND_LINKS`` names wheel
    folders for offline machines. ``wheels_only`` (cloud mode, unless the operator allows
    source builds) installs wheels from the index only, so no package code runs on the host.

    Raises:
        ConfigurationError: If the declaration is invalid or the install fails (uv's message).
    """
    spec = environment_spec_for(ref, config)
    if spec is None:
        return None

    def progress(event: EnvironmentProgress) -> None:
        if event.stage == "building":
            log.info(
                "building the plugin environment of %s (%s): first use, later runs reuse it",
                ref.ref,
                ", ".join(spec.requirements),
            )
        elif event.stage == "built":
            log.info("built the plugin environment %s in %.1f s", event.key, event.elapsed_s)

    return ensure_environment(spec, progress=progress, wheels_only=wheels_only).path


def check_builtin_egress(ref: PluginRef, config: Mapping[str, Any], limits: SandboxLimits) -> None:
    """Refuse to sandbox a built-in that must reach its server over a network the sandbox lacks.

    Such a built-in (``postgres``) runs sandboxed only in cloud mode, where the operator's
    egress policy must apply to it; without ``sandbox.network`` it could only fail to connect.

    Raises:
        ConfigurationError: If the connector needs the network and the job gives it none.
    """
    spec = builtin_connector(ref.ref) if ref.kind == "builtin" else None
    if spec is None or not spec.reaches_network or limits.network or spec.options is None:
        return
    if not spec.options.from_config(config).needs_network():
        return  # a unix socket folder, which the job mounts with sandbox.read_only_paths
    raise ConfigurationError(
        f"the {ref.ref} {spec.kind} connects to the server its config names; in cloud mode it runs "
        "in the sandbox, where the operator's egress policy applies, and the sandbox has no network "
        "unless the job sets sandbox.network: true (which the operator's policy must allow with "
        "allow_network: true)",
        details={"setting": "sandbox.network", "plugin": ref.ref},
    )


def session_mounts(
    job: JobConfig,
    ref: PluginRef,
    config: Mapping[str, Any],
    sandbox: Sandbox,
    policy: OperatorPolicy | None = None,
) -> SessionMounts:
    """What a plugin's session mounts: its environment, its installed package, the job's read-only paths.

    Raises:
        ConfigurationError: If a read-only path would expose the runtime's own files
            (:func:`check_read_only_paths`), or the environment cannot be built.
    """
    read_only = check_read_only_paths(job) if sandbox.isolated else ()
    builds = (policy if policy is not None else OperatorPolicy.load()).allows_source_builds(job.mode)
    return plugin_mounts(ref, config, sandbox, read_only_paths=read_only, wheels_only=not builds)


def plugin_mounts(
    ref: PluginRef,
    config: Mapping[str, Any],
    sandbox: Sandbox,
    *,
    read_only_paths: tuple[Path, ...] = (),
    wheels_only: bool = False,
) -> SessionMounts:
    """What a plugin's session mounts, with or without a job: its environment and its installed package.

    ``wheels_only``: build the environment from wheels on the index only (see :func:`plugin_environment`).
    """
    if is_trusted_builtin(ref) and not sandbox.isolated:
        return SessionMounts()  # the runtime's own code, in its process (postgres is sandboxed in cloud mode)
    return SessionMounts(
        environment=plugin_environment(ref, config, wheels_only=wheels_only),
        read_only_paths=read_only_paths,
        packages=installed_plugin_packages(ref) if sandbox.isolated and ref.kind != "builtin" else (),
        tool_environment=ref.kind == "builtin",  # singer/airbyte start their tap from it
    )


def open_reader_session(job: JobConfig, *, policy: OperatorPolicy | None = None) -> tuple[ReaderSession, str]:
    """Start the job's source plugin in the sandbox the job and the mode call for.

    Returns:
        The session and the name of the backend running it.

    Raises:
        DativoError: Loading, version or sandbox errors (configuration errors name ``source``).
    """
    try:
        policy = policy if policy is not None else OperatorPolicy.load()
        check_host_reach(job, policy)  # every command that opens a session: run, check, discover...
        ref = job.source_ref()
        limits = job.sandbox.to_limits()
        sandbox = choose_sandbox(
            job.mode, job.sandbox.backend, ref, policy, limits=limits, read_only_paths=job.read_only_paths()
        )
        if sandbox.isolated:
            check_plugin_folder(job, ref)
        config = job.source_config()
        if sandbox.isolated:
            check_builtin_egress(ref, config, limits)
        mounts = session_mounts(job, ref, config, sandbox, policy)
        return sandbox.open_reader(ref, config, limits=limits, mounts=mounts), sandbox.name
    except DativoError as exc:
        raise in_role(exc, "source", job) from exc


def open_writer_session(
    job: JobConfig,
    *,
    config: dict[str, Any] | None = None,
    schema: list[Column] | None = None,
    policy: OperatorPolicy | None = None,
    ref: PluginRef | None = None,
    role: str = "target",
) -> tuple[WriterSession, str]:
    """Start the job's target plugin (or another writer, such as the quarantine's).

    A sandboxed target may write to its ``path`` folder only (see
    :func:`writable_output_dir`); the quarantine writer is the built-in parquet writer
    and gets no folder.

    Returns:
        The session and the name of the backend running it.

    Raises:
        DativoError: Loading, version or sandbox errors (configuration errors name ``target``).
    """
    try:
        policy = policy if policy is not None else OperatorPolicy.load()
        check_host_reach(job, policy)
        writer_ref = ref or job.target_ref()
        limits = job.sandbox.to_limits()
        sandbox = choose_sandbox(
            job.mode,
            job.sandbox.backend,
            writer_ref,
            policy,
            limits=limits,
            read_only_paths=job.read_only_paths(),
        )
        output_dir = None
        if sandbox.isolated:
            check_plugin_folder(job, writer_ref, role=role)
        if role == "target":
            output_dir = writable_output_dir(job) if sandbox.isolated else job.output_dir()
        config = config if config is not None else job.target_config()
        session = sandbox.open_writer(
            writer_ref,
            config,
            schema=schema,
            limits=limits,
            output_dir=output_dir,
            mounts=session_mounts(job, writer_ref, config, sandbox, policy),
        )
        return session, sandbox.name
    except DativoError as exc:
        raise in_role(exc, role, job) from exc


def resolve_stream(
    job: JobConfig,
    reader: ReaderSession,
    *,
    retry: RetryPolicy | None = None,
    tracing: Tracing | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> tuple[str | None, list[Column] | None, DiscoveredStream | None]:
    """Pick the stream to read and the columns to validate against.

    The job's ``schema`` wins; otherwise the discovered stream's schema when the reader
    discovers one; otherwise ``None`` (the data's own types).

    Returns:
        ``(stream name, columns, discovered stream)``.

    Args:
        job: The job.
        reader: Its source session.
        retry: The budget for retrying ``discover``.
        tracing: Where the ``dativo.discover`` span goes; the active tracing by default.
        on_retry: Called before each retry of ``discover`` (metrics).

    Raises:
        ConfigurationError: If ``source.stream`` names no discovered stream, or the source
            has several streams and the job names none.
    """
    columns = job.columns()
    wanted = job.source.stream
    if columns is not None or "discover" not in reader.info.capabilities:
        return wanted, columns, None
    with (tracing or active_tracing()).discover():
        discovery = call_with_retry(
            reader.discover,
            retry or RetryPolicy(max_attempts=1),
            what="discovering the source",
            on_retry=on_retry,
        )
    streams = discovery.objects
    if not streams:
        return wanted, None, None
    if wanted is not None:
        match = next((s for s in streams if s.name == wanted), None)
        if match is None:
            raise ConfigurationError(
                f"{job.display_name}: source.stream {wanted!r} is not offered by {job.source.plugin!r}; "
                f"available streams: {', '.join(s.name for s in streams)}",
                details={"field": "source.stream", "role": "source", "streams": [s.name for s in streams]},
            )
    elif len(streams) == 1:
        match = streams[0]
    else:
        raise ConfigurationError(
            f"{job.display_name}: the source offers several streams ({', '.join(s.name for s in streams)}); "
            "set source.stream to the one this job reads",
            details={"field": "source.stream", "role": "source", "streams": [s.name for s in streams]},
        )
    return match.name, (list(match.schema) or None), match


def writer_columns(columns: list[Column] | None, mode: str) -> list[Column] | None:
    if columns is None:
        return None
    if mode != "warn":
        return columns
    # In warn mode an invalid value becomes null, so no column can be declared required.
    return [Column(c.name, c.type, nullable=True, description=c.description) for c in columns]


def close_quietly(session: ReaderSession | WriterSession, role: str) -> None:
    try:
        session.close()
    except Exception as exc:
        log.warning("closing the %s plugin failed: %s", role, exc)


def abort_quietly(session: WriterSession, role: str) -> None:
    try:
        session.abort()
    except Exception as exc:
        log.warning("discarding the %s's staged files failed: %s (the next run cleans them up)", role, exc)
