"""The three ways out: /metrics over HTTP, a Pushgateway push, the node-exporter textfile."""

from __future__ import annotations

import base64
import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dativo_plugin_sdk import ConfigurationError, DativoConnectionError
from dativo_runtime._observability import (
    RunMetrics,
    metrics_file_path,
    push_metrics,
    start_metrics_server,
    write_metrics_file,
)

JOB = frozenset({"tenant": "acme", "dativo_job": "orders"}.items())
STREAM = JOB | {("stream", "orders")}


def _metrics_after_run(status: str = "success", records: int = 10) -> RunMetrics:
    metrics = RunMetrics()
    job = metrics.for_job("acme", "orders")
    job.run_started()
    job.batch("orders", records_read=records, records_written=records, bytes_written=records * 100)
    job.run_finished(status, 2.0, finished_at=1_700_000_000.0 if status == "success" else None)
    return metrics


def test_metrics_port_serves_the_run_in_progress(http, parse_samples):
    metrics = RunMetrics()
    job = metrics.for_job("acme", "orders")
    job.run_started()
    with start_metrics_server(metrics, 0, host="127.0.0.1") as endpoint:
        first = http(f"{endpoint.url}/metrics")
        assert first.status == 200
        assert first.headers["Content-Type"].startswith("text/plain")
        samples = parse_samples(first.text)
        assert samples[("dativo_runs_in_progress", JOB)] == 1
        job.batch("orders", records_read=42)
        samples = parse_samples(http(f"{endpoint.url}/metrics").text)
        assert samples[("dativo_records_read_total", STREAM)] == 42
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", endpoint.port), timeout=1):
        pass


def test_metrics_port_in_use_is_a_clear_configuration_error():
    with start_metrics_server(RunMetrics(), 0, host="127.0.0.1") as endpoint:
        port = endpoint.port
        with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{port}"):
            start_metrics_server(RunMetrics(), port, host="127.0.0.1")


def test_push_goes_to_the_jobs_group_and_parses(pushgateway):
    push_metrics(_metrics_after_run(), pushgateway.url, tenant="acme", job="orders")
    [push] = pushgateway.pushes
    assert push.method == "POST"
    assert push.path == "/metrics/job/dativo/dativo_job/orders/tenant/acme"
    families = {f.name: f for f in text_string_to_metric_families(push.body.decode())}
    [sample] = families["dativo_records_written"].samples
    assert sample.value == 10
    assert sample.labels == {"tenant": "acme", "dativo_job": "orders", "stream": "orders"}
    assert families["dativo_last_success_timestamp_seconds"].samples[0].value == 1_700_000_000.0
    assert not any(name.endswith("_created") for name in families)


def test_with_several_jobs_each_push_and_file_holds_its_own_job(pushgateway, tmp_path):
    metrics = _metrics_after_run()
    other = metrics.for_job("beta", "users")
    other.batch("users", records_read=99)
    metrics.for_job("beta", "users").sandbox_started("process", cold_start_s=0.5)
    push_metrics(metrics, pushgateway.url, tenant="beta", job="users")
    path = write_metrics_file(metrics, tmp_path / "{tenant}_{job}.prom", tenant="acme", job="orders")
    pushed = {
        (s.name, s.labels.get("dativo_job"))
        for f in text_string_to_metric_families(pushgateway.pushes[0].body.decode())
        for s in f.samples
    }
    written = {
        (s.name, s.labels.get("dativo_job"))
        for f in text_string_to_metric_families(path.read_text())
        for s in f.samples
    }
    assert {job for _, job in pushed} == {"users", None}
    assert {job for _, job in written} == {"orders", None}
    assert ("dativo_runtime_info", None) in pushed
    assert ("dativo_sandbox_cold_start_seconds_count", None) in pushed


def test_push_after_a_failed_run_leaves_the_last_success_time_alone(pushgateway):
    push_metrics(_metrics_after_run("failed"), pushgateway.url, tenant="acme", job="orders")
    [push] = pushgateway.pushes
    names = {f.name for f in text_string_to_metric_families(push.body.decode())}
    # POST replaces only the families pushed, so the previous success time survives.
    assert "dativo_last_success_timestamp_seconds" not in push.body.decode()
    assert "dativo_job_runs" in names


def test_push_sends_url_credentials_as_basic_auth_and_never_in_errors(pushgateway):
    url = pushgateway.url.replace("http://", "http://ops:s3cret-push-pw@")
    push_metrics(_metrics_after_run(), url, tenant="acme", job="orders")
    [push] = pushgateway.pushes
    expected = base64.b64encode(b"ops:s3cret-push-pw").decode()
    assert push.headers["Authorization"] == f"Basic {expected}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(DativoConnectionError) as info:
        push_metrics(
            _metrics_after_run(), f"http://ops:s3cret-push-pw@127.0.0.1:{closed_port}", tenant="a", job="b"
        )
    assert "s3cret-push-pw" not in str(info.value)
    assert info.value.retryable
    assert f"127.0.0.1:{closed_port}" in str(info.value)


def test_textfile_is_written_atomically_and_parses(tmp_path, parse_samples):
    path = write_metrics_file(
        _metrics_after_run(), tmp_path / "dativo_{tenant}_{job}.prom", tenant="acme", job="orders"
    )
    assert path == tmp_path / "dativo_acme_orders.prom"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dativo_acme_orders.prom"], "no temporary file left"
    samples = parse_samples(path.read_text())
    assert samples[("dativo_records_written_total", STREAM)] == 10
    assert samples[("dativo_last_success_timestamp_seconds", JOB)] == 1_700_000_000.0


def test_textfile_keeps_the_previous_last_success_across_a_failed_run(tmp_path, parse_samples):
    path = tmp_path / "orders.prom"
    write_metrics_file(_metrics_after_run("success"), path, tenant="acme", job="orders")
    write_metrics_file(_metrics_after_run("failed", records=3), path, tenant="acme", job="orders")
    samples = parse_samples(path.read_text())
    assert samples[("dativo_last_success_timestamp_seconds", JOB)] == 1_700_000_000.0
    assert samples[("dativo_job_runs_total", JOB | {("status", "failed")})] == 1
    assert samples[("dativo_records_written_total", STREAM)] == 3


def test_textfile_in_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="does not exist; create it"):
        write_metrics_file(RunMetrics(), tmp_path / "nope" / "x.prom", tenant="a", job="b")


def test_textfile_without_prom_suffix_warns(tmp_path, caplog):
    write_metrics_file(RunMetrics(), tmp_path / "metrics.txt", tenant="a", job="b")
    assert "only reads *.prom files" in caplog.text


def test_metrics_file_path_placeholders():
    assert str(metrics_file_path("/t/{tenant}-{job}.prom", tenant="a", job="b")) == "/t/a-b.prom"
