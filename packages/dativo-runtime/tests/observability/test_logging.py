"""Structured logs: one JSON event per line with the run's ids, human lines on a TTY, no secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import AuthenticationError
from dativo_runtime._observability import configure_logging, log_context, redact_text
from dativo_runtime._secrets import Redactor

pytestmark = pytest.mark.usefixtures("clean_logging")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _events(stream: io.StringIO) -> list[dict]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_json_lines_carry_tenant_job_and_run_ids():
    out = io.StringIO()
    configure_logging(stream=out, fmt="auto")
    log = logging.getLogger("dativo_runtime.pipeline")
    with log_context(tenant="acme", job="orders", run_id="run-42"):
        log.info("extracted %d records", 10, extra={"stream": "orders", "batch": 3})
    log.warning("outside a run")
    first, second = _events(out)
    assert first["message"] == "extracted 10 records"
    assert first["level"] == "INFO"
    assert first["logger"] == "dativo_runtime.pipeline"
    assert (first["tenant"], first["job"], first["run_id"]) == ("acme", "orders", "run-42")
    assert (first["stream"], first["batch"]) == ("orders", 3)
    assert first["ts"].endswith("+00:00")
    assert "tenant" not in second


def test_json_lines_carry_trace_ids_inside_a_span():
    pytest.importorskip("opentelemetry.sdk", reason="the runtime's 'otel' extra is not installed")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dativo_runtime._observability import configure_tracing

    exporter = InMemorySpanExporter()
    out = io.StringIO()
    configure_logging(stream=out, fmt="json")
    tracing = configure_tracing(exporter=exporter)
    with tracing.run(tenant="acme", job="orders", run_id="r1"), tracing.stage("extract"):
        logging.getLogger("x").info("inside")
    [event] = _events(out)
    stage = next(s for s in exporter.get_finished_spans() if s.name == "dativo.stage.extract")
    assert event["trace_id"] == f"{stage.context.trace_id:032x}"
    assert event["span_id"] == f"{stage.context.span_id:016x}"


def test_human_format_on_a_terminal():
    out = _Terminal()
    configure_logging(stream=out, fmt="auto")
    with log_context(tenant="acme", job="orders", run_id="r1"):
        logging.getLogger("x").info("hello", extra={"records": 5})
    line = out.getvalue().strip()
    assert not line.startswith("{")
    assert "INFO" in line
    assert "acme/orders" in line
    assert "[run r1]" in line
    assert "hello" in line
    assert "records=5" in line


def test_configuring_twice_keeps_one_handler():
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first, fmt="json")
    configure_logging(stream=second, fmt="json")
    logging.getLogger("x").info("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_secrets_never_reach_the_log(secrets):
    out = io.StringIO()
    extra_secret = "given-only-to-the-filter"
    configure_logging(stream=out, fmt="json", secrets=[extra_secret])
    log = logging.getLogger("dativo_runtime.pipeline")
    with log_context(tenant="acme", job="orders", run_id="r"):
        log.info("connecting with %s and %s", secrets[0], extra_secret)
        log.info("config: password=%s api_key: '%s'", "plainpass1", "plainkey22")
        log.info("GET https://bob:urlpassw0rd@api.example.com/v1 with Authorization: Bearer abcdef123456")
        log.info(
            "plugin said",
            extra={
                "output": f"token {secrets[1]} accepted",
                "config": {"password": "nested-pass", "host": "db", "deeper": {"secret_token": "deep-tok"}},
                "aws_secret_access_key": "raw-aws-secret",
                "items": [secrets[2]],
            },
        )
        try:
            raise AuthenticationError(f"credentials {secrets[0]} refused; password=tracebackpass")
        except AuthenticationError:
            log.exception("run failed")
    text = out.getvalue()
    for value in [*secrets, extra_secret, "plainpass1", "plainkey22", "urlpassw0rd", "abcdef123456"]:
        assert value not in text, value
    for value in ["nested-pass", "deep-tok", "raw-aws-secret", "tracebackpass"]:
        assert value not in text, value
    events = _events(out)
    assert events[3]["config"]["host"] == "db"
    assert events[3]["aws_secret_access_key"] == "***"
    error = events[4]["error"]
    assert error["type"] == "AuthenticationError"
    assert error["error_code"] == "AUTHENTICATION_FAILED"
    assert error["retryable"] is False
    assert "Traceback" in error["traceback"]
    assert "credentials *** refused" in error["message"]


def test_redaction_keeps_ordinary_text():
    text = "wrote key=orders/2024/part-0.parquet (12 rows) in 0.5s; error: connection refused"
    assert redact_text(text, Redactor()) == text


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=4, max_size=40))
def test_any_registered_secret_is_masked_wherever_it_appears(secret):
    redactor = Redactor()
    redactor.add(secret)
    assert secret not in redact_text(f"before {secret} after ({secret})", redactor)
