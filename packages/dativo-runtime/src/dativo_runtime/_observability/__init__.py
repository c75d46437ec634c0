"""Observability: Prometheus metrics and their exposition, OpenTelemetry traces, JSON logs.

``prometheus-client`` is a dependency of the runtime; ``opentelemetry`` is the optional
``otel`` extra and is imported only when the ``OTEL_*`` variables turn tracing on.
"""

from ._exposition import (
    PUSH_JOB,
    HttpEndpoint,
    metrics_file_path,
    push_metrics,
    start_metrics_server,
    write_metrics_file,
)
from ._logging import (
    CONTEXT_FIELDS,
    HumanLogFormatter,
    JsonLogFormatter,
    LogContextFilter,
    RedactingFilter,
    configure_logging,
    log_context,
    redact_text,
)
from ._metrics import (
    OTHER,
    OUTCOME_METRICS,
    RUN_STATUSES,
    SANDBOX_FAILURE_REASONS,
    STAGES,
    JobMetrics,
    RunMetrics,
    sandbox_failure_reason,
)
from ._tracing import (
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
    "OTHER",
    "OUTCOME_METRICS",
    "PUSH_JOB",
    "RUN_STATUSES",
    "SANDBOX_FAILURE_REASONS",
    "STAGES",
    "HttpEndpoint",
    "HumanLogFormatter",
    "JobMetrics",
    "JsonLogFormatter",
    "LogContextFilter",
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
