"""``validate``: every check short of moving data, each reported as a step of a :class:`ValidationPlan`.

The steps that ``run`` also makes before moving data go through the run's own
:class:`~._preflight.Preflight`, so a job ``run`` would refuse fails here with the same
exit code and message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dativo_plugin_sdk import DativoError
from dativo_plugin_sdk._arrow import arrow_type_for
from dativo_runtime._engine._checks import check_with_retry, close_session, failed_check
from dativo_runtime._engine._preflight import Preflight, StreamChoice
from dativo_runtime._engine._retry import RetryPolicy, call_with_retry
from dativo_runtime._exit_codes import ExitCode, exit_code_for, exit_code_for_code, worst_exit_code
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._observability._plugin_frames import FULL_TRACEBACK, TRACEBACK
from dativo_runtime._sandbox._policy import OperatorPolicy, run_mode
from dativo_runtime._secrets import REDACTOR

__all__ = ["ValidationPlan", "validate_job"]


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

    Goes through the run's preflight (:class:`Preflight`: the state store's lock and
    state, both plugins loaded where they would run so ``requires_sdk`` is enforced, the
    stream), checks both connections, and compares the job's schema with the discovered
    one. A step that ``run`` also makes fails with ``run``'s message and exit code.

    Returns:
        The :class:`ValidationPlan`; ``exit_code`` is the most serious failure's.
    """
    plan = ValidationPlan(job=job.job_id)
    codes: list[int] = []
    mode = run_mode(job.mode, policy)  # A policy that cannot load fails the plugin steps below.
    plan.add("job file", True, f"{job.display_name} is valid", mode=mode, validation=job.validation)
    preflight = Preflight(job, policy=policy)

    def failed(step: str, exc: DativoError) -> None:
        plan.add(step, False, exc.message, error_code=exc.error_code, **_where(exc.details))
        codes.append(exit_code_for(exc))

    reader = writer = None
    stream: StreamChoice | DativoError | None = None
    try:
        try:
            reader, backend = preflight.open_source()
            plan.add(
                "source plugin", True, _loads(reader.info), plugin=reader.info.to_dict(), sandbox=backend
            )
        except DativoError as exc:
            failed("source plugin", exc)
        if reader is not None:
            try:
                stream = preflight.resolve_stream(reader)
            except DativoError as exc:
                stream = exc
        try:
            columns = stream.columns if isinstance(stream, StreamChoice) else job.columns()
            writer, backend = preflight.open_target(columns)
            plan.add(
                "target plugin", True, _loads(writer.info), plugin=writer.info.to_dict(), sandbox=backend
            )
        except DativoError as exc:
            failed("target plugin", exc)
        for role, session in (("source", reader), ("target", writer)):
            if session is not None:
                _check_connection(
                    plan, codes=codes, role=role, session=session, retry=preflight.retry, sleep=sleep
                )
        if isinstance(stream, DativoError):
            failed("stream", stream)
        elif stream is not None and reader is not None:
            _add_stream(plan, job, stream)
            if job.schema_columns is not None and "discover" in reader.info.capabilities:
                try:
                    _compare_schemas(plan, job, reader, preflight.retry)
                except DativoError as exc:
                    failed("stream", exc)
        try:
            saved = preflight.check_state(owner="validate")
            plan.add(
                "state",
                True,
                f"state at {preflight.store.uri(job.tenant, job.name)}",
                streams=sorted(saved.streams),
                incremental=job.source.incremental is not None,
            )
        except DativoError as exc:
            failed("state", exc)
    finally:
        for session in (reader, writer):
            if session is not None:
                close_session(session)
    plan.exit_code = worst_exit_code(codes)
    return plan


def _where(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Where a plugin's error was raised (its frames), for the step it failed."""
    return {k: v for k, v in (details or {}).items() if k in (TRACEBACK, FULL_TRACEBACK)}


def _loads(info: Any) -> str:
    return f"{info.ref} {info.plugin_version or ''} loads"


def _check_connection(
    plan: ValidationPlan,
    *,
    codes: list[int],
    role: str,
    session: Any,
    retry: RetryPolicy,
    sleep: Callable[[float], None],
) -> None:
    try:
        result, _ = check_with_retry(session.check_connection, retry, f"checking the {role}", sleep)
    except DativoError as exc:
        result = failed_check(exc)
    plan.add(
        f"{role} connection",
        result.success,
        result.message,
        error_code=result.error_code,
        **_where(result.details),
    )
    if not result.success:
        codes.append(exit_code_for_code(result.error_code, retryable=result.retryable))


def _add_stream(plan: ValidationPlan, job: JobConfig, stream: StreamChoice) -> None:
    schema = [
        {"name": c.name, "type": c.type.value, "required": not c.nullable} for c in (stream.columns or [])
    ]
    source = (
        "job schema"
        if job.schema_columns is not None
        else ("discovered" if stream.columns else "the data's own types")
    )
    plan.add(
        "stream",
        True,
        f"stream {stream.name or '(default)'}; schema from {source}",
        stream=stream.name,
        schema=schema,
    )


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
