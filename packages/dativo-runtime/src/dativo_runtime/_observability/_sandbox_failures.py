"""Why a sandbox stopped a plugin: the reasons a ``SandboxError`` carries, and their metric labels.

One definition for both layers that speak of it. The sandbox backends put one of
:data:`SANDBOX_FAILURE_REASONS` into ``SandboxError.details["reason"]``; the metric
``dativo_sandbox_failures_total`` counts failures under the coarser ``reason`` labels of
:data:`SANDBOX_FAILURE_LABELS`, through the explicit :data:`METRIC_LABEL_BY_REASON`.
Only an error that carries no known reason (a message from elsewhere) is classified by
the words of its message.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from dativo_plugin_sdk import DativoError

__all__ = [
    "METRIC_LABEL_BY_REASON",
    "SANDBOX_FAILURE_LABELS",
    "SANDBOX_FAILURE_REASONS",
    "sandbox_failure_reason",
]

SANDBOX_FAILURE_REASONS = ("oom", "timeout", "disk", "signal", "syscall_blocked", "crash", "startup_failed")
"""Values of ``SandboxError.details["reason"]``."""

SANDBOX_FAILURE_LABELS = ("oom", "timeout", "signal", "syscall_blocked", "other")
"""Why a sandbox stopped a plugin, the ``reason`` label of ``dativo_sandbox_failures_total``."""

METRIC_LABEL_BY_REASON: Mapping[str, str] = types.MappingProxyType(
    {
        "oom": "oom",
        "timeout": "timeout",
        "disk": "other",
        "signal": "signal",
        "syscall_blocked": "syscall_blocked",
        "crash": "other",
        "startup_failed": "other",
    }
)
"""The metric label of each of :data:`SANDBOX_FAILURE_REASONS`."""

# Words in the message of an error without a known reason, by the label they mean (first match wins).
_LABEL_WORDS = (
    ("oom", ("oom", "out of memory", "memoryerror", "memory limit")),
    ("syscall_blocked", ("seccomp", "syscall", "sigsys")),
    ("timeout", ("timeout", "timed out", "time limit", "deadline")),
    ("signal", ("signal", "killed", "sigkill", "sigterm", "sigsegv")),
)


def sandbox_failure_reason(error: BaseException | Mapping[str, Any] | str) -> str:
    """Return the metric label (one of :data:`SANDBOX_FAILURE_LABELS`) of a sandbox failure.

    Args:
        error: A ``SandboxError`` (its ``details["reason"]`` decides when it is one of
            :data:`SANDBOX_FAILURE_REASONS` or of the labels), an error dict from
            ``to_dict``, or a message.

    Returns:
        ``oom``, ``timeout``, ``signal``, ``syscall_blocked`` or ``other``.

    Example:
        >>> sandbox_failure_reason("worker killed by SIGKILL after the time limit")
        'timeout'
    """
    details: Mapping[str, Any] = {}
    if isinstance(error, DativoError):
        details, text = error.details, error.message
    elif isinstance(error, Mapping):
        details = error.get("details") or {}
        text = str(error.get("message", ""))
    else:
        text = str(error)
    reason = str(details.get("reason", "")).lower().replace("-", "_").replace(" ", "_")
    if reason in METRIC_LABEL_BY_REASON:
        return METRIC_LABEL_BY_REASON[reason]
    if reason in SANDBOX_FAILURE_LABELS:
        return reason
    lowered = f"{reason} {text}".lower()
    for label, words in _LABEL_WORDS:
        if any(word in lowered for word in words):
            return label
    return "other"
