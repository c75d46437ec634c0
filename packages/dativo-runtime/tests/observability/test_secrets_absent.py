"""Secrets from a job's configuration never reach logs, metrics or traces, whatever carries them."""

from __future__ import annotations

import io
import logging

import pytest
from prometheus_client import generate_latest

from dativo_plugin_sdk import AuthenticationError
from dativo_runtime._observability import (
    RunMetrics,
    configure_logging,
    configure_tracing,
    current_trace_ids,
    log_context,
    write_metrics_file,
)
from dativo_runtime._secrets import interpolate

pytest.importorskip("opentelemetry.sdk", reason="the runtime's 'otel' extra is not installed")


@pytest.mark.usefixtures("clean_logging")
def test_config_error_and_plugin_output_secrets_are_absent_everywhere(tmp_path):
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    env_token = "shpat_e2e_env_token_91f0"
    file_secret = "file-secret-pass-7731"
    key_secret = "plain-under-password-key"
    (tmp_path / "db_password").write_text(file_secret + "\n")
    config = interpolate(
        {
            "source": {
                "config": {
                    "api_token": "${SHOP_API_TOKEN}",
                    "dsn": "postgres://app:${file:db_password}@db:5432/shop",
                    "password": key_secret,
                }
            }
        },
        environ={"SHOP_API_TOKEN": env_token},
        base_dir=tmp_path,
    )
    secrets = [env_token, file_secret, key_secret]

    out = io.StringIO()
    configure_logging(stream=out, fmt="json")
    exporter = InMemorySpanExporter()
    tracing = configure_tracing(exporter=exporter)
    metrics = RunMetrics()
    job = metrics.for_job("acme", "orders")
    log = logging.getLogger("dativo_runtime.pipeline")

    job.run_started()
    with (
        log_context(tenant="acme", job="orders", run_id="r-1"),
        pytest.raises(AuthenticationError),
        tracing.run(tenant="acme", job="orders", run_id="r-1"),
    ):
        log.info("starting with configuration", extra={"config": config})
        with tracing.stage("extract", stream="orders") as stage:
            stage.set_attribute("dativo.source.dsn", config["source"]["config"]["dsn"])
            # Plugin output: a log line and a span relayed from the sandbox worker.
            log.info("plugin stderr: retrying GET /orders?access_token=%s", env_token)
            trace_id, span_id = current_trace_ids()
            tracing.import_spans(
                [
                    {
                        "name": f"fetch with {env_token}",
                        "trace_id": trace_id,
                        "span_id": "00000000000000ab",
                        "parent_span_id": span_id,
                        "start_time": 1,
                        "end_time": 2,
                        "attributes": {
                            "http.url": f"https://shop/orders?token={env_token}",
                            "pw": file_secret,
                        },
                        "status": {"code": "ERROR", "description": f"401 for {key_secret}"},
                        "events": [{"name": "log", "attributes": {"line": f"using {file_secret}"}}],
                    }
                ]
            )
            job.batch(f"orders-{env_token}", records_read=3)
            error = AuthenticationError(
                f"shop refused token {env_token} for dsn {config['source']['config']['dsn']}"
            )
            job.error(error, error_code=env_token)
            log.error("extract failed", exc_info=error)
            raise error
    job.run_finished("failed", 1.0)

    path = write_metrics_file(metrics, tmp_path / "m.prom", tenant="acme", job="orders")
    outputs = {
        "logs": out.getvalue(),
        "metrics": generate_latest(metrics.registry).decode(),
        "textfile": path.read_text(),
        "traces": "".join(span.to_json() for span in exporter.get_finished_spans()),
    }
    assert "dativo.stage.extract" in outputs["traces"]
    assert "fetch with ***" in outputs["traces"]
    assert "dativo_records_read_total" in outputs["metrics"]
    assert "extract failed" in outputs["logs"]
    for where, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into {where}"
