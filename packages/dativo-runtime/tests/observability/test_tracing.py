"""OpenTelemetry: off and free by default, a run's span tree, propagation into a worker process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the runtime's 'otel' extra is not installed")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, format_span_id

from dativo_plugin_sdk import TransientError
from dativo_runtime._observability import (
    configure_tracing,
    current_trace_ids,
    inject_context,
    tracing_requested,
)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_SERVICE_NAME": "x"}, False),
    ],
)
def test_tracing_is_requested_only_by_the_standard_variables(env, expected):
    assert tracing_requested(env) is expected


def test_without_otel_variables_tracing_is_off_and_imports_nothing():
    code = (
        "import sys\n"
        "from dativo_runtime._observability import configure_tracing, inject_context, configure_logging\n"
        "import logging\n"
        "configure_logging(fmt='json')\n"
        "t = configure_tracing()\n"
        "with t.run(tenant='a', job='b', run_id='r'):\n"
        "    with t.stage('extract'):\n"
        "        with t.batch(0):\n"
        "            logging.getLogger('x').info('hi')\n"
        "    assert inject_context() == {}\n"
        "assert not t.enabled\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(), timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_run_produces_the_span_tree(exporter):
    tracing = configure_tracing(exporter=exporter, batch_sample_first=2, batch_sample_every=5)
    with tracing.run(tenant="acme", job="orders", run_id="run-1"):
        with tracing.check(role="source"):
            pass
        with tracing.discover():
            pass
        with tracing.stage("extract", stream="orders"):
            for index in range(12):
                with tracing.batch(index, stream="orders", records=100):
                    pass
        with tracing.commit(stream="orders"):
            pass
    spans = exporter.get_finished_spans()
    by_name: dict[str, list] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    [run] = by_name["dativo.run"]
    assert run.parent is None
    trace_id = run.context.trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}
    for name in ("dativo.check", "dativo.discover", "dativo.stage.extract", "dativo.commit"):
        [span] = by_name[name]
        assert span.parent.span_id == run.context.span_id, name
    [stage] = by_name["dativo.stage.extract"]
    batches = by_name["dativo.batch"]
    # Sampled: batches 0 and 1, then every 5th (5, 10).
    assert sorted(s.attributes["dativo.batch.index"] for s in batches) == [0, 1, 5, 10]
    assert all(s.parent.span_id == stage.context.span_id for s in batches)
    for span in spans:
        assert span.attributes["dativo.tenant"] == "acme"
        assert span.attributes["dativo.job"] == "orders"
        assert span.attributes["dativo.run_id"] == "run-1"
    assert stage.attributes["dativo.stage"] == "extract"
    assert stage.attributes["dativo.stream"] == "orders"


def test_an_error_marks_the_span_failed_without_leaking_secrets(exporter, secrets):
    tracing = configure_tracing(exporter=exporter)
    with (
        pytest.raises(TransientError),
        tracing.run(tenant="acme", job="orders", run_id="r"),
        tracing.stage("write") as stage,
    ):
        stage.set_attribute("dativo.endpoint", f"https://api.example.com?token={secrets[2]}")
        raise TransientError(f"upstream refused key {secrets[0]}")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    write = spans["dativo.stage.write"]
    assert write.status.status_code is StatusCode.ERROR
    assert "TransientError" in write.status.description
    assert write.attributes["dativo.error_code"] == "TRANSIENT_ERROR"
    assert write.attributes["dativo.retryable"] is True
    [event] = write.events
    assert event.name == "exception"
    assert "upstream refused key ***" in event.attributes["exception.message"]
    assert spans["dativo.run"].status.status_code is StatusCode.ERROR
    dumped = "".join(s.to_json() for s in exporter.get_finished_spans())
    for secret in secrets:
        assert secret not in dumped


def test_context_crosses_into_a_worker_process_and_plugin_spans_join_the_trace(exporter, data_dir, secrets):
    """The span tree of a sandboxed run: run > stage > batch > plugin spans (from another process) and commit."""
    tracing = configure_tracing(exporter=exporter)
    with tracing.run(tenant="acme", job="orders", run_id="r"):
        with tracing.stage("extract", stream="orders"), tracing.batch(0, stream="orders"):
            host_trace, batch_id = current_trace_ids()
            carrier = inject_context()
            assert carrier["traceparent"].startswith(f"00-{host_trace}-{batch_id}-")
            worker = subprocess.run(
                [sys.executable, str(data_dir / "otel_worker.py")],
                input=json.dumps({"carrier": carrier, "secret": secrets[1]}),
                capture_output=True,
                text=True,
                env=_clean_env(),
                timeout=60,
                check=True,
            )
            relayed = json.loads(worker.stdout)["spans"]
            # The worker's spans carry the host's trace id before anything is imported.
            assert {s["trace_id"] for s in relayed} == {host_trace}
            assert tracing.import_spans(relayed) == 2
        with tracing.commit(stream="orders"):
            pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    run, stage, batch, commit = (
        spans[n] for n in ("dativo.run", "dativo.stage.extract", "dativo.batch", "dativo.commit")
    )
    fetch, parse = spans["plugin.fetch_page"], spans["plugin.parse"]
    assert stage.parent.span_id == run.context.span_id
    assert commit.parent.span_id == run.context.span_id
    assert batch.parent.span_id == stage.context.span_id
    assert fetch.parent.span_id == batch.context.span_id
    assert format_span_id(fetch.parent.span_id) == batch_id
    assert parse.parent.span_id == fetch.context.span_id
    assert {s.context.trace_id for s in spans.values()} == {run.context.trace_id}
    assert fetch.attributes["dativo.sandboxed"] is True
    assert fetch.attributes["page"] == 1
    assert fetch.attributes["api_token"] == "***"
    assert fetch.instrumentation_scope.name == "example_plugin"
    assert secrets[1] not in "".join(s.to_json() for s in exporter.get_finished_spans())


def test_a_worker_without_a_carrier_imports_no_opentelemetry(data_dir):
    worker = subprocess.run(
        [sys.executable, str(data_dir / "otel_worker.py")],
        input=json.dumps({"carrier": {}, "secret": "x"}),
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=60,
        check=True,
    )
    assert json.loads(worker.stdout) == {"spans": [], "otel_imported": False}


def test_imported_spans_are_checked(exporter):
    tracing = configure_tracing(exporter=exporter)
    with tracing.run(tenant="a", job="b", run_id="r"):
        trace_id, run_span_id = current_trace_ids()
        good = {
            "name": "plugin.ok",
            "trace_id": trace_id,
            "span_id": "00000000000000aa",
            "parent_span_id": run_span_id,
            "start_time": 1,
            "end_time": 2,
            "attributes": {"n": 1, "nested": {"not": "allowed"}},
        }
        foreign = {**good, "trace_id": "1" * 32, "name": "plugin.foreign"}
        broken = [
            None,
            "x",
            {**good, "span_id": "zz"},
            {**good, "start_time": "soon"},
            {**good, "trace_id": None},
        ]
        assert tracing.import_spans([good, foreign, *broken]) == 1
    imported = [s for s in exporter.get_finished_spans() if s.name.startswith("plugin.")]
    assert [s.name for s in imported] == ["plugin.ok"]
    assert dict(imported[0].attributes) == {"n": 1, "dativo.sandboxed": True}


def test_the_last_configured_tracing_is_the_active_one(exporter):
    from dativo_runtime._observability import active_tracing

    tracing = configure_tracing(exporter=exporter)
    assert active_tracing() is tracing
    disabled = configure_tracing(environ={})
    assert active_tracing() is disabled


def test_disabled_tracing_ignores_imports_and_returns_no_context():
    tracing = configure_tracing(environ={})
    assert not tracing.enabled
    with tracing.run(tenant="a", job="b", run_id="r") as handle:
        handle.set_attribute("x", 1)
        assert not handle.recording
    assert tracing.import_spans([{"name": "x"}]) == 0


def test_everything_imports_and_runs_without_opentelemetry_installed():
    # A meta-path finder hides opentelemetry, as in an install without the 'otel' extra.
    code = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'opentelemetry':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import io, logging\n"
        "import dativo_runtime._serve\n"
        "from dativo_runtime._observability import configure_logging, configure_tracing, SpanRelay, inject_context\n"
        "out = io.StringIO()\n"
        "configure_logging(stream=out, fmt='json')\n"
        "t = configure_tracing(environ={'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://collector:4318'})\n"
        "assert not t.enabled\n"
        "with t.run(tenant='a', job='b', run_id='r'):\n"
        "    assert inject_context() == {}\n"
        "assert SpanRelay.start({'traceparent': '00-' + '1' * 32 + '-' + '2' * 16 + '-01'}) is None\n"
        "print(out.getvalue())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_clean_env(), timeout=60, check=True
    )
    [warning] = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert warning["level"] == "WARNING"
    assert "pip install 'dativo-runtime[otel]'" in warning["message"]
