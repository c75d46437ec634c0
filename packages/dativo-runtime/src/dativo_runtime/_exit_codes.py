"""Exit codes of ``dativo-run``, and which one an error maps to.

====  =================  ==========================================================
code  name               meaning
====  =================  ==========================================================
0     OK                 success
1     FAILURE            a failure that retrying will not fix (plugin crashed...)
2     USAGE              usage or configuration error (job file, plugin reference,
                         incompatible ``requires_sdk``, unreadable file)
65    DATA_INVALID       data validation failure (``strict`` mode), as ``EX_DATAERR``
75    RETRYABLE          a retryable failure after the retry budget, as ``EX_TEMPFAIL``:
                         what an orchestrator should retry later
77    AUTHENTICATION     credentials refused, as ``EX_NOPERM``
====  =================  ==========================================================
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from dativo_plugin_sdk import (
    AuthenticationError,
    ConfigurationError,
    DativoError,
    PluginVersionError,
    ValidationError,
    is_retryable,
)

__all__ = ["ExitCode", "exit_code_for", "exit_code_for_code", "worst_exit_code"]


class ExitCode(enum.IntEnum):
    """The documented exit codes of ``dativo-run``."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    DATA_INVALID = 65
    RETRYABLE = 75
    AUTHENTICATION = 77


_BY_ERROR_CODE = {
    "AUTHENTICATION_FAILED": ExitCode.AUTHENTICATION,
    "CONFIGURATION_ERROR": ExitCode.USAGE,
    "PLUGIN_VERSION_INCOMPATIBLE": ExitCode.USAGE,
    "VALIDATION_FAILED": ExitCode.DATA_INVALID,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """Return the exit code for an exception that ended a command.

    Args:
        exc: The exception.

    Returns:
        ``AUTHENTICATION`` for :class:`AuthenticationError`, ``USAGE`` for configuration
        and plugin-version errors, ``DATA_INVALID`` for :class:`ValidationError`,
        ``RETRYABLE`` for any retryable error, ``FAILURE`` for the rest.
    """
    if isinstance(exc, AuthenticationError):
        return ExitCode.AUTHENTICATION
    if isinstance(exc, (ConfigurationError, PluginVersionError)):
        return ExitCode.USAGE
    if isinstance(exc, ValidationError):
        return ExitCode.DATA_INVALID
    if isinstance(exc, DativoError) and not exc.retryable and exc.error_code in _BY_ERROR_CODE:
        return _BY_ERROR_CODE[exc.error_code]
    if is_retryable(exc):
        return ExitCode.RETRYABLE
    return ExitCode.FAILURE


def exit_code_for_code(error_code: str | None, *, retryable: bool = False) -> ExitCode:
    """Return the exit code for a failed check result's ``error_code`` and ``retryable`` flag."""
    if error_code in _BY_ERROR_CODE:
        return _BY_ERROR_CODE[error_code]
    return ExitCode.RETRYABLE if retryable else ExitCode.FAILURE


# When several jobs fail, the code that needs a human wins over "retry later".
_PRECEDENCE = (
    ExitCode.USAGE,
    ExitCode.AUTHENTICATION,
    ExitCode.DATA_INVALID,
    ExitCode.FAILURE,
    ExitCode.RETRYABLE,
    ExitCode.OK,
)


def worst_exit_code(codes: Iterable[int]) -> ExitCode:
    """Combine the exit codes of several jobs into one.

    Args:
        codes: Exit codes of each job.

    Returns:
        ``OK`` when every job succeeded; otherwise the first present of ``USAGE``,
        ``AUTHENTICATION``, ``DATA_INVALID``, ``FAILURE``, ``RETRYABLE`` (a failure a
        human must fix outranks one that retrying may fix).
    """
    present = {ExitCode(c) for c in codes}
    for code in _PRECEDENCE:
        if code in present:
            return code
    return ExitCode.OK
