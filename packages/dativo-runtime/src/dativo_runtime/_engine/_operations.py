"""What the CLI's commands other than ``run`` do, as plain importable functions.

``check_job`` (connection checks), ``discover_job`` / ``discover_plugin`` (streams and
schemas), ``validate_job`` (everything short of moving data), ``list_plugins`` /
``inspect_plugin`` (what is installed and whether it fits this SDK), ``committed_files``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import (
    DEFAULT_REQUIRES_SDK,
    PLUGIN_SDK_VERSION,
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
    DiscoveryResult,
    PluginError,
    PluginVersionError,
    TransientError,
    check_compatibility,
)
from dativo_runtime._arrow_batches import arrow_type_for
from dativo_runtime._engine._pipeline import (
    check_incremental_support,
    open_reader_session,
    open_writer_session,
    resolve_stream,
)
from dativo_runtime._engine._retry import RetryPolicy, call_with_retry
from dativo_runtime._exit_codes import ExitCode, exit_code_for, exit_code_for_code, worst_exit_code
from dativo_runtime._jobs._model import JobConfig, is_remote_uri
from dativo_runtime._observability._tracing import active_tracing
from dativo_runtime._plugins._ref import BUILTIN_PLUGINS, ENTRY_POINT_GROUP, PluginRef
from dativo_runtime._sandbox import ReaderSession, WriterSession, choose_sandbox
from dativo_runtime._sandbox._inprocess import describe_plugin
from dativo_runtime._sandbox._policy import OperatorPolicy, run_mode
from dativo_runtime._secrets import REDACTOR
from dativo_runtime._storage._backends import open_storage
from dativo_runtime._storage._s3 import S3_OPTION_KEYS
from dativo_runtime._storage._state_store import StateStore
from dativo_runtime.connectors._dataset import ParquetDataset

__all__ = [
    "CheckReport",
    "ValidationPlan",
    "check_exit_code",
    "check_job",
    "committed_files",
    "discover_job",
    "discover_plugin",
    "inspect_plugin",
    "list_plugins",
    "validate_job",
]

log = logging.getLogger("dativo.run")


def _close_session(session: ReaderSession | WriterSession) -> None:
    """Close a session after its answer is known; a failing ``close`` is logged, not raised."""
    try:
        session.close()
    except Exception as exc:
        log.warning("closing %s failed: %s: %s", session.info.ref, type(exc).__name__, exc)


@dataclass
class CheckReport:
    """The result of checking one side of a job (``source`` or ``target``)."""

    role: str
    plugin: str
    result: ConnectionTestResult
    attempts: int = 1

    @property
    def exit_code(self) -> ExitCode:
        """``OK`` on success, else what the result's code and ``retryable`` map to."""
        if self.result.success:
            return ExitCode.OK
        return exit_code_for_code(self.result.error_code, retryable=self.result.retryable)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON data, secrets masked."""
        data = {"role": self.role, "plugin": self.plugin, "attempts": self.attempts, **self.result.to_dict()}
        data["exit_code"] = int(self.exit_code)
        redacted: dict[str, Any] = REDACTOR.redact(data)
        return redacted


def _failed(exc: DativoError) -> ConnectionTestResult:
    return ConnectionTestResult(
        success=False,
        message=exc.message,
        error_code=exc.error_code,
        details=exc.details,
        retryable=exc.retryable,
    )


class _RetryableCheck(TransientError):
    """Carries a retryable failed check result through :func:`call_with_retry`."""

    def __init__(self, result: ConnectionTestResult) -> None:
        super().__init__(result.message, error_code=result.error_code or "CONNECTION_FAILED")
        self.result = result


def _check_with_retry(
    check: Callable[[], ConnectionTestResult], retry: RetryPolicy, what: str, sleep: Callable[[float], None]
) -> tuple[ConnectionTestResult, int]:
    attempts = 0

    def once() -> ConnectionTestResult:
        nonlocal attempts
        attempts += 1
        result = check()
        if not result.success and result.retryable:
            raise _RetryableCheck(result)
        return result

    try:
        return call_with_retry(once, retry, what=what, sleep=sleep), attempts
    except _RetryableCheck as exc:
        return exc.result, attempts


def check_job(
    job: JobConfig, *, policy: OperatorPolicy | None = None, sleep: Callable[[float], None] = time.sleep
) -> list[CheckReport]:
    """Check the job's source and target connections, retrying retryable failures.

    Args:
        job: The job.
        policy: The operator's sandbox policy.
        sleep: How to wait between retries.

    Returns:
        One :class:`CheckReport` for the source and one for the target. A plugin that
        cannot even be loaded gives a failed report with its error's code.
    """
    retry = RetryPolicy.from_spec(job.retry)
    reports = []
    for role in ("source", "target"):
        plugin = getattr(job, role).plugin
        try:
            if role == "source":
                session: Any
                session, _ = open_reader_session(job, policy=policy)
            else:
                session, _ = open_writer_session(job, schema=job.columns(), policy=policy)
        except DativoError as exc:
            reports.append(CheckReport(role, plugin, _failed(exc)))
            continue
        try:
            with active_tracing().check(role=role) as span:
                result, attempts = _check_with_retry(
                    session.check_connection, retry, f"checking the {role}", sleep
                )
                span.set_attribute("dativo.check.success", result.success)
        except DativoError as exc:
            result, attempts = _failed(exc), 1
        finally:
            _close_session(session)
        reports.append(CheckReport(role, plugin, result, attempts))
    return reports


def check_exit_code(reports: list[CheckReport]) -> ExitCode:
    """The exit code of ``check``: the most serious of the reports' codes."""
    return worst_exit_code(r.exit_code for r in reports)


def discover_job(job: JobConfig, *, policy: OperatorPolicy | None = None) -> dict[str, Any]:
    """Discover the job's source: its streams and schemas, and which one the job reads.

    Raises:
        DativoError: Loading, discovery or stream-selection errors.
    """
    reader, backend = open_reader_session(job, policy=policy)
    try:
        retry = RetryPolicy.from_spec(job.retry)
        discovery = call_with_retry(reader.discover, retry, what="discovering the source")
        selected = None
        if discovery.objects:
            with contextlib.suppress(DativoError):
                selected, _, _ = resolve_stream(
                    job.model_copy(update={"schema_columns": None}), reader, retry=retry
                )
        return {
            "plugin": reader.info.to_dict(),
            "sandbox": backend,
            "selected_stream": selected,
            **discovery.to_dict(),
        }
    finally:
        _close_session(reader)


def discover_plugin(
    ref_text: str,
    config: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    mode: str = "self_hosted",
    backend: str = "auto",
    policy: OperatorPolicy | None = None,
) -> dict[str, Any]:
    """Discover a source given by reference and config, without a job file.

    Args:
        ref_text: A built-in name or plugin reference.
        config: The reader's configuration (``--set key=value`` pairs).
        base_dir: Folder relative file references are resolved against.
        mode: ``self_hosted`` or ``cloud``.
        backend: The sandbox backend to ask for.
        policy: The operator's sandbox policy.

    Returns:
        The plugin's info and its :class:`DiscoveryResult` as JSON data.
    """
    ref = PluginRef.parse(ref_text, base_dir=base_dir)
    sandbox = choose_sandbox(mode, backend, ref, policy)
    reader = sandbox.open_reader(ref, dict(config))
    try:
        result: DiscoveryResult = reader.discover()
        return {"plugin": reader.info.to_dict(), "sandbox": sandbox.name, **result.to_dict()}
    finally:
        _close_session(reader)


@dataclass
class ValidationPlan:
    """What ``validate`` found: every check short of moving data."""

    job: str
    ok: bool = True
    steps: list[dict[str, Any]] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK

    def add(self, step: str, ok: bool, message: str, **details: Any) -> None:
        """Record one step's outcome."""
        self.steps.append({"step": step, "ok": ok, "message": message, **details})
        if not ok:
            self.ok = False

    def to_dict(self) -> dict[str, Any]:
        """Return the plan as JSON data, secrets masked."""
        data = {"job": self.job, "ok": self.ok, "exit_code": int(self.exit_code), "steps": self.steps}
        redacted: dict[str, Any] = REDACTOR.redact(data)
        return redacted


def validate_job(
    job: JobConfig, *, policy: OperatorPolicy | None = None, sleep: Callable[[float], None] = time.sleep
) -> ValidationPlan:
    """Check everything about a job short of moving data.

    Loads both plugins where they would run (so ``requires_sdk`` is enforced), checks
    both connections, discovers the stream, compares the job's schema with the
    discovered one, and reads the saved state.

    Returns:
        The :class:`ValidationPlan`; ``exit_code`` is the most serious failure's.
    """
    plan = ValidationPlan(job=job.job_id)
    codes: list[int] = []
    mode = run_mode(job.mode, policy)  # A policy that cannot load fails the plugin steps below.
    plan.add("job file", True, f"{job.display_name} is valid", mode=mode, validation=job.validation)
    reader = writer = None
    try:
        try:
            reader, backend = open_reader_session(job, policy=policy)
            check_incremental_support(job, reader.info)
            plan.add(
                "source plugin",
                True,
                f"{reader.info.class_name} {reader.info.plugin_version or ''} loads",
                plugin=reader.info.to_dict(),
                sandbox=backend,
            )
        except DativoError as exc:
            plan.add("source plugin", False, exc.message, error_code=exc.error_code)
            codes.append(exit_code_for(exc))
        try:
            writer, backend = open_writer_session(job, schema=job.columns(), policy=policy)
            plan.add(
                "target plugin",
                True,
                f"{writer.info.class_name} {writer.info.plugin_version or ''} loads",
                plugin=writer.info.to_dict(),
                sandbox=backend,
            )
        except DativoError as exc:
            plan.add("target plugin", False, exc.message, error_code=exc.error_code)
            codes.append(exit_code_for(exc))
        retry = RetryPolicy.from_spec(job.retry)
        for role, session in (("source", reader), ("target", writer)):
            if session is None:
                continue
            try:
                result, _ = _check_with_retry(session.check_connection, retry, f"checking the {role}", sleep)
            except DativoError as exc:
                result = _failed(exc)
            plan.add(f"{role} connection", result.success, result.message, error_code=result.error_code)
            if not result.success:
                codes.append(exit_code_for_code(result.error_code, retryable=result.retryable))
        if reader is not None:
            try:
                stream, columns, _ = resolve_stream(job, reader, retry=retry)
                schema = [
                    {"name": c.name, "type": c.type.value, "required": not c.nullable}
                    for c in (columns or [])
                ]
                source = (
                    "job schema"
                    if job.schema_columns is not None
                    else ("discovered" if columns else "the data's own types")
                )
                plan.add(
                    "stream",
                    True,
                    f"stream {stream or '(default)'}; schema from {source}",
                    stream=stream,
                    schema=schema,
                )
                if job.schema_columns is not None and "discover" in reader.info.capabilities:
                    _compare_schemas(plan, job, reader, retry)
            except DativoError as exc:
                plan.add("stream", False, exc.message, error_code=exc.error_code)
                codes.append(exit_code_for(exc))
        try:
            store = StateStore(job.state_location(), job.state_storage_options())
            saved = store.load(job.tenant, job.name)
            plan.add(
                "state",
                True,
                f"state at {store.uri(job.tenant, job.name)}",
                streams=sorted(saved.streams),
                incremental=job.source.incremental is not None,
            )
        except DativoError as exc:
            plan.add("state", False, exc.message, error_code=exc.error_code)
            codes.append(exit_code_for(exc))
    finally:
        for session in (reader, writer):
            if session is not None:
                _close_session(session)
    plan.exit_code = worst_exit_code(codes)
    return plan


def _compare_schemas(plan: ValidationPlan, job: JobConfig, reader: Any, retry: RetryPolicy) -> None:
    discovery = call_with_retry(reader.discover, retry, what="discovering the source")
    streams = discovery.objects
    stream = next(
        (s for s in streams if s.name == job.source.stream), streams[0] if len(streams) == 1 else None
    )
    if stream is None or not stream.schema:
        return
    found = {c.name: c for c in stream.schema}
    notes = []
    for column in job.schema_columns or []:
        seen = found.get(column.name)
        if seen is None:
            required = "; it is required" if column.required else ""
            notes.append(f"{column.name}: not in the source (will be null{required})")
        elif arrow_type_for(seen.type) != arrow_type_for(column.type):
            notes.append(f"{column.name}: source looks like {seen.type.value}, job says {column.type.value}")
    extra = [n for n in found if n not in {c.name for c in job.schema_columns or []}]
    if extra:
        notes.append(f"not in the job schema (will not be written): {', '.join(extra)}")
    plan.add(
        "schema",
        True,
        "; ".join(notes) if notes else "job schema matches the discovered columns",
        differences=notes,
    )


def list_plugins() -> list[dict[str, Any]]:
    """List the built-in connectors and the plugins installed under ``dativo.plugins``.

    Returns:
        One entry per plugin: ``name``, ``kind`` (``builtin``/``entry_point``), ``target``
        (``module:Class``) and ``distribution``. Nothing is imported.
    """
    plugins: list[dict[str, Any]] = [
        {"name": name, "kind": "builtin", "target": target, "distribution": "dativo-runtime"}
        for name, target in sorted(BUILTIN_PLUGINS.items())
    ]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        plugins.append(
            {
                "name": ep.name,
                "kind": "entry_point",
                "target": ep.value,
                "distribution": f"{dist.name} {dist.version}" if dist is not None else None,
            }
        )
    return plugins


def inspect_plugin(ref_text: str, *, base_dir: Path | None = None) -> dict[str, Any]:
    """Describe a plugin: version, ``requires_sdk``, compatibility with this SDK, capabilities.

    The plugin's module is imported in this process (a sandboxed runtime routes this
    through a worker instead).

    Raises:
        ConfigurationError: If the reference names nothing.
        PluginError: If the module cannot be imported or names no plugin class.
    """
    ref = PluginRef.parse(ref_text, base_dir=base_dir)
    info, cls = describe_plugin(ref)
    data = info.to_dict()
    data["kind"] = ref.kind
    # What the runtime enforces: the declared range, or the SDK's default when none is declared.
    data["effective_requires_sdk"] = info.requires_sdk or DEFAULT_REQUIRES_SDK
    try:
        check_compatibility(cls, PLUGIN_SDK_VERSION)
    except PluginVersionError as exc:
        data["compatible"] = False
        # A file plugin's module has a generated name; say the reference the user wrote.
        data["incompatibility"] = exc.message.replace(f"{cls.__module__}.{cls.__qualname__}", repr(ref.ref))
    except PluginError as exc:  # pragma: no cover  (defensive)
        data["compatible"] = False
        data["incompatibility"] = exc.message
    else:
        data["compatible"] = True
    data["doc"] = (cls.__doc__ or "").strip().split("\n", 1)[0]
    return data


def committed_files(job: JobConfig) -> dict[str, Any]:
    """List the files committed to a parquet target, from its run manifests.

    Raises:
        ConfigurationError: If the job's target is not the built-in parquet writer.
    """
    location = job.target_location()
    if location is None:
        raise ConfigurationError(
            f"{job.display_name}: `files` lists what the parquet target committed; this job's target is "
            f"{job.target.plugin!r}",
            details={"field": "target.plugin"},
        )
    options = {k: job.target.config[k] for k in S3_OPTION_KEYS if job.target.config.get(k)}
    dataset = ParquetDataset(open_storage(location, options))
    manifests = dataset.manifests()
    return {
        "location": location,
        "local": not is_remote_uri(location),
        "runs": [
            {
                "run_id": m.run_id,
                "committed_at": m.committed_at,
                "record_count": m.record_count,
                "files": len(m.files),
            }
            for m in manifests
        ],
        "record_count": sum(m.record_count for m in manifests),
        "files": [dataset.storage.location(f.path) for m in manifests for f in m.files],
    }
