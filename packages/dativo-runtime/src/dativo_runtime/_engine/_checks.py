"""``check``: the job's source and target connections, each retried within the job's budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dativo_plugin_sdk import ConnectionTestResult, DativoError, TransientError
from dativo_runtime._engine._retry import RetryPolicy, call_with_retry
from dativo_runtime._engine._sessions import open_reader_session, open_writer_session
from dativo_runtime._exit_codes import ExitCode, exit_code_for_code, worst_exit_code
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._observability._tracing import active_tracing
from dativo_runtime._sandbox import ReaderSession, WriterSession
from dativo_runtime._sandbox._policy import OperatorPolicy
from dativo_runtime._secrets import REDACTOR

__all__ = ["CheckReport", "check_exit_code", "check_job", "check_with_retry", "close_session", "failed_check"]

log = logging.getLogger("dativo.run")


def close_session(session: ReaderSession | WriterSession) -> None:
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


def failed_check(exc: DativoError) -> ConnectionTestResult:
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


def check_with_retry(
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
            reports.append(CheckReport(role, plugin, failed_check(exc)))
            continue
        try:
            with active_tracing().check(role=role) as span:
                result, attempts = check_with_retry(
                    session.check_connection, retry, f"checking the {role}", sleep
                )
                span.set_attribute("dativo.check.success", result.success)
        except DativoError as exc:
            result, attempts = failed_check(exc), 1
        finally:
            close_session(session)
        reports.append(CheckReport(role, plugin, result, attempts))
    return reports


def check_exit_code(reports: list[CheckReport]) -> ExitCode:
    """The exit code of ``check``: the most serious of the reports' codes."""
    return worst_exit_code(r.exit_code for r in reports)
