"""Turn the error a connection check ran into into a :class:`ConnectionTestResult`."""

from __future__ import annotations

from dativo_plugin_sdk import ConnectionTestResult, DativoError, get_error_code, is_retryable

__all__ = ["result_from_error"]


def result_from_error(exc: BaseException, *, prefix: str = "") -> ConnectionTestResult:
    """Describe a failed check: message, the error's code, details and ``retryable``.

    Args:
        exc: What the check raised.
        prefix: Text put before the message (what was checked).

    Returns:
        A failed :class:`ConnectionTestResult`.
    """
    message = exc.message if isinstance(exc, DativoError) else f"{type(exc).__name__}: {exc}"
    details = dict(exc.details) if isinstance(exc, DativoError) else {"exception_type": type(exc).__name__}
    return ConnectionTestResult(
        success=False,
        message=f"{prefix}{message}",
        error_code=get_error_code(exc),
        details=details,
        retryable=is_retryable(exc),
    )
