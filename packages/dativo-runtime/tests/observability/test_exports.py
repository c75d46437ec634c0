"""The exported surface of the observability and serve packages: deliberate, sorted, complete."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "dativo_runtime._observability": [
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
    ],
    "dativo_runtime._serve": [
        "RUN_COMMAND",
        "CallableJobRunner",
        "JobFile",
        "JobRunner",
        "NotReadyError",
        "ReadinessCheck",
        "RunRecord",
        "RunResult",
        "ScheduledJob",
        "Scheduler",
        "ServeApp",
        "ShutdownReport",
        "SubprocessJobRunner",
        "job_readiness_checks",
        "load_scheduled_jobs",
        "normalise_result",
        "read_scheduled_job",
        "run_recorded",
        "serve",
    ],
}


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_exported_names_are_the_expected_ones_and_sorted(module_name):
    module = importlib.import_module(module_name)
    assert module.__all__ == EXPECTED[module_name]
    assert module.__all__ == sorted(module.__all__, key=lambda n: (not n.isupper(), n))
    for name in module.__all__:
        assert getattr(module, name) is not None
