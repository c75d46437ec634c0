"""Observability: Prometheus metrics and their exposition, OpenTelemetry traces, JSON logs.

``prometheus-client`` is a dependency of the runtime; ``opentelemetry`` is the optional
``otel`` extra and is imported only when the ``OTEL_*`` variables turn tracing on.

Names are imported on first use (PEP 562): a process that only traces never imports
prometheus-client. The worker's side of tracing (:class:`SpanRelay`,
:func:`extract_context`) lives in ``dativo_runtime._worker._span_relay`` and is
re-exported here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dativo_runtime._observability._exposition import (
        PUSH_JOB,
        HttpEndpoint,
        MetricsExport,
        metrics_file_path,
        push_metrics,
        start_metrics_server,
        write_metrics_file,
    )
    from dativo_runtime._observability._logging import (
        CONTEXT_FIELDS,
        HumanLogFormatter,
        JsonLogFormatter,
        LogContextFilter,
        RedactingFilter,
        configure_logging,
        log_context,
        redact_text,
    )
    from dativo_runtime._observability._metrics import (
        OTHER,
        OUTCOME_METRICS,
        RUN_STATUSES,
        STAGES,
        JobMetrics,
        RunMetrics,
    )
    from dativo_runtime._observability._sandbox_failures import (
        METRIC_LABEL_BY_REASON,
        SANDBOX_FAILURE_LABELS,
        SANDBOX_FAILURE_REASONS,
        sandbox_failure_reason,
    )
    from dativo_runtime._observability._tracing import (
        SpanHandle,
        SpanRelay,
        Tracing,
        active_tracing,
        configure_tracing,
        current_trace_ids,
        extract_context,
        inject_context,
        tracing_requested,
    )

__all__ = [
    "CONTEXT_FIELDS",
    "METRIC_LABEL_BY_REASON",
    "OTHER",
    "OUTCOME_METRICS",
    "PUSH_JOB",
    "RUN_STATUSES",
    "SANDBOX_FAILURE_LABELS",
    "SANDBOX_FAILURE_REASONS",
    "STAGES",
    "HttpEndpoint",
    "HumanLogFormatter",
    "JobMetrics",
    "JsonLogFormatter",
    "LogContextFilter",
    "MetricsExport",
    "RedactingFilter",
    "RunMetrics",
    "SpanHandle",
    "SpanRelay",
    "Tracing",
    "active_tracing",
    "configure_logging",
    "configure_tracing",
    "current_trace_ids",
    "extract_context",
    "inject_context",
    "log_context",
    "metrics_file_path",
    "push_metrics",
    "redact_text",
    "sandbox_failure_reason",
    "start_metrics_server",
    "tracing_requested",
    "write_metrics_file",
]

# Searched in this order, lightest first.
_SUBMODULES = ("._tracing", "._logging", "._sandbox_failures", "._metrics", "._exposition")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for home in _SUBMODULES:
            module = importlib.import_module(home, __name__)
            if name in module.__all__:
                value = getattr(module, name)
                globals()[name] = value
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
