"""Observability end to end, through the real `dativo-run`: metrics three ways, `serve`, traces, secrets.

* `run --metrics-port` is scraped with a real HTTP client while a slow run is going on;
* `run --pushgateway` pushes to a local Pushgateway-compatible receiver that parses what it gets;
* `run --metrics-file` leaves a node-exporter textfile that keeps the last success across a failure;
* `serve` runs two scheduled jobs, is scraped, and is stopped with SIGTERM in the middle of a
  run: nothing half-committed, every committed run's records exactly once;
* a run in the `process` sandbox yields one span tree, the plugin's own spans included;
* known secrets put in config, errors, logs and spans by a sandboxed plugin reach none of
  the logs, metrics and traces.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def _wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met within {timeout} s"
        time.sleep(0.05)


def _require_process_sandbox() -> None:
    from dativo_runtime._sandbox import BubblewrapSandbox

    available, why = BubblewrapSandbox.availability()
    if available:
        return
    if os.environ.get("DATIVO_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"DATIVO_REQUIRE_SANDBOX=1 but the process sandbox is not available: {why}")
    pytest.skip(f"the process sandbox is not available here: {why}")


class _Running:
    """`python -m dativo_runtime ARGS` (what `dativo-run` runs), its stderr lines collected as they come."""

    def __init__(self, args: list[str], *, cwd: Path) -> None:
        self.stdout_path = cwd / f"stdout-{time.monotonic_ns()}.txt"
        self._stdout = self.stdout_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATIVO_", "OTEL_"))}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dativo_runtime", *args],
            cwd=cwd,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=self._stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def url_in_logs(self, pattern: str) -> str:
        def found() -> str | None:
            assert self.process.poll() is None, "\n".join(self.lines)
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match.group(1)
            return None

        url: str = _wait_for(found, what=f"a log line matching {pattern!r}")
        return url

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        code = self.process.wait(timeout=timeout)
        self._close()
        return code, self.stdout_path.read_text(), "\n".join(self.lines)

    def _close(self) -> None:
        self._reader.join(timeout=10)
        self._stdout.close()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._close()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Callable[..., _Running]]:
    processes: list[_Running] = []

    def start(*args: str) -> _Running:
        running = _Running(list(args), cwd=tmp_path)
        processes.append(running)
        return running

    yield start
    for running in processes:
        running.kill()


@dataclass
class _Pushgateway:
    url: str
    pushes: list[tuple[str, str, bytes]] = field(default_factory=list)


@pytest.fixture
def pushgateway() -> Iterator[_Pushgateway]:
    """A Pushgateway-compatible receiver: PUT/POST /metrics/job/...; 400 for a body it cannot parse."""
    receiver = _Pushgateway(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _receive(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                list(text_string_to_metric_families(body.decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                self.send_response(400)
                self.end_headers()
                return
            receiver.pushes.append((self.command, self.path, body))
            self.send_response(202 if self.path.startswith("/metrics/job/") else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_PUT = _receive
        do_POST = _receive

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _numbers_job(write_job: Any, plugins: Path, *, name: str, count: int, delay: float) -> Path:
    return write_job(
        f"""
        tenant: acme
        name: {name}
        source:
          plugin: {plugins}:NumbersReader
          config: {{count: {count}, batch_size: 10, delay: {delay}}}
        target:
          plugin: parquet
          config: {{path: out/{name}}}
        sandbox: {{backend: none}}
        """,
        name=f"{name}.yaml",
    )


# Metrics, three ways ---------------------------------------------------------------------------


def test_metrics_port_is_scraped_while_the_run_goes_on(
    write_job: Any, test_plugins: Path, started: Callable[..., _Running]
) -> None:
    job = _numbers_job(write_job, test_plugins, name="slow", count=80, delay=0.1)
    run = started("run", "--config", str(job), "--metrics-port", "0", "--json", "--log-format", "json")
    base = run.url_in_logs(r"serving metrics on (http://127\.0\.0\.1:\d+)/metrics")
    slow = _labels(tenant="acme", dativo_job="slow")

    def mid_run_scrape() -> Samples | None:
        status, body = _get(f"{base}/metrics")
        assert status == 200
        samples = _samples(body.decode())
        read = samples.get(("dativo_records_read_total", slow | {("stream", "numbers")}), 0)
        return samples if read >= 20 else None

    samples = _wait_for(mid_run_scrape, what="records in /metrics")
    assert run.process.poll() is None, "the scrape must happen while the run is going on"
    assert samples[("dativo_runs_in_progress", slow)] == 1
    assert ("dativo_job_runs_total", slow | {("status", "success")}) not in samples
    assert samples[("dativo_runtime_info", _labels(version="0.1.0"))] == 1

    code, stdout, stderr = run.finish()
    assert code == 0, stderr
    assert json.loads(stdout)["records_written"] == 80


def test_pushgateway_gets_each_run_and_an_unreachable_one_only_warns(
    write_job: Any, test_plugins: Path, run_cli: Any, pushgateway: _Pushgateway
) -> None:
    job = _numbers_job(write_job, test_plugins, name="pushed", count=30, delay=0)
    result = run_cli("run", "--config", str(job), "--pushgateway", pushgateway.url)
    assert result.returncode == 0, result.stderr
    [(method, path, body)] = pushgateway.pushes
    assert method == "POST"
    assert path.startswith("/metrics/job/dativo/")
    assert "/tenant/acme" in path
    assert "/dativo_job/pushed" in path
    samples = _samples(body.decode())
    job_labels = _labels(tenant="acme", dativo_job="pushed")
    assert samples[("dativo_records_written_total", job_labels | {("stream", "numbers")})] == 30
    assert samples[("dativo_job_runs_total", job_labels | {("status", "success")})] == 1
    assert samples[("dativo_last_success_timestamp_seconds", job_labels)] > 1_600_000_000

    unreachable = run_cli("run", "--config", str(job), "--pushgateway", "http://127.0.0.1:9/")
    assert unreachable.returncode == 0, unreachable.stderr
    warnings = [json.loads(line) for line in unreachable.stderr.splitlines() if "could not push" in line]
    assert warnings
    assert warnings[0]["level"] == "WARNING"


def test_metrics_file_is_the_textfile_format_and_keeps_the_last_success(
    tmp_path: Path, write_job: Any, run_cli: Any
) -> None:
    (tmp_path / "orders.csv").write_text("id,region\n1,eu\n2,us\n3,eu\n")
    job = write_job(
        """
        tenant: acme
        name: orders
        source: {plugin: csv, config: {path: orders.csv}}
        target: {plugin: parquet, config: {path: out/orders}}
        """
    )
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    pattern = str(textfiles / "dativo_{tenant}_{job}.prom")
    assert run_cli("run", "--config", str(job), "--metrics-file", pattern).returncode == 0
    written = textfiles / "dativo_acme_orders.prom"
    first = _samples(written.read_text())
    labels = _labels(tenant="acme", dativo_job="orders")
    assert first[("dativo_records_written_total", labels | {("stream", "orders")})] == 3
    assert first[("dativo_batches_total", labels | {("stream", "orders")})] == 1
    stages = {dict(key)["stage"] for name, key in first if name == "dativo_stage_duration_seconds_count"}
    assert stages == {"extract", "validate", "write", "commit"}
    last_success = first[("dativo_last_success_timestamp_seconds", labels)]

    (tmp_path / "orders.csv").unlink()
    failed = run_cli("run", "--config", str(job), "--metrics-file", pattern)
    assert failed.returncode == 2, failed.stderr
    second = _samples(written.read_text())
    assert second[("dativo_job_runs_total", labels | {("status", "failed")})] == 1
    assert second[("dativo_last_success_timestamp_seconds", labels)] == last_success
    assert [p.name for p in textfiles.iterdir()] == ["dativo_acme_orders.prom"], "no temporary file is left"

    missing = run_cli("run", "--config", str(job), "--metrics-file", str(tmp_path / "nope" / "m.prom"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr


# serve ----------------------------------------------------------------------------------------------


def _committed_runs(out: Path) -> dict[str, list[int]]:
    """Ids of each committed run (by its manifest), read with pyarrow."""
    runs = {}
    for manifest in sorted((out / "_dativo" / "manifests").glob("*.json")):
        data = json.loads(manifest.read_text())
        files = [str(out / f["path"]) for f in data["files"]]
        table = ds.dataset(files, format="parquet").to_table()
        runs[data["run_id"]] = sorted(table.column("id").to_pylist())
        assert table.num_rows == data["record_count"]
    return runs


def test_serve_runs_two_scheduled_jobs_and_stops_mid_run_without_half_commits(
    tmp_path: Path, write_job: Any, test_plugins: Path, started: Callable[..., _Running]
) -> None:
    jobs = tmp_path / "jobs"
    (tmp_path / "numbers.csv").write_text("id\n" + "\n".join(str(n) for n in range(5)) + "\n")
    write_job(
        """
        tenant: alpha
        name: quick
        schedule: '* * * * * *'
        source: {plugin: csv, config: {path: ../numbers.csv}}
        target: {plugin: parquet, config: {path: ../out/quick}}
        """,
        name="quick.yaml",
        folder=jobs,
    )
    write_job(
        f"""
        tenant: beta
        name: slow
        schedule: '* * * * * *'
        source:
          plugin: {test_plugins}:NumbersReader
          config: {{count: 40, batch_size: 10, delay: 0.25}}
        target: {{plugin: parquet, config: {{path: ../out/slow, row_group_size: 10, target_file_size: 1}}}}
        sandbox: {{backend: none}}
        """,
        name="slow.yaml",
        folder=jobs,
    )
    write_job("name: manual\nsource: {plugin: csv}\n", name="unscheduled.yaml", folder=jobs)
    server = started(
        "serve", "--job-dir", str(jobs), "--port", "0", "--host", "127.0.0.1", "--grace-period", "0",
        "--log-format", "json",
    )  # fmt: skip
    base = server.url_in_logs(r"scheduled job\(s\) on (http://127\.0\.0\.1:\d+)")
    staging = tmp_path / "out" / "slow" / "_dativo" / "staging"

    def slow_committed_and_running_again() -> bool:
        status = {j["id"]: j for j in json.loads(_get(f"{base}/api/jobs")[1])["jobs"]}
        slow = status["beta/slow"]
        done = [r for r in slow["last_runs"] if r["status"] == "success"]
        return bool(done) and slow["running"] and any(staging.rglob("*.staged"))

    _wait_for(
        slow_committed_and_running_again, timeout=60, what="a committed slow run and another one staging"
    )
    status = {j["id"]: j for j in json.loads(_get(f"{base}/api/jobs")[1])["jobs"]}
    assert set(status) == {"alpha/quick", "beta/slow"}
    quick_done = [r for r in status["alpha/quick"]["last_runs"] if r["status"] == "success"]
    assert quick_done
    assert quick_done[0]["counts"]["records_written"] == 5
    assert _get(f"{base}/healthz")[0] == 200
    ready_status, ready = _get(f"{base}/readyz")
    assert ready_status == 200, ready
    assert {c["name"] for c in json.loads(ready)["checks"]} >= {"sandbox", "state-store", "targets"}
    samples = _samples(_get(f"{base}/metrics")[1].decode())
    quick = _labels(tenant="alpha", dativo_job="quick")
    quick_runs = samples[("dativo_job_runs_total", quick | {("status", "success")})]
    assert quick_runs >= 1
    # The children's own metrics were added to the server's.
    assert samples[("dativo_records_written_total", quick | {("stream", "numbers")})] == 5 * quick_runs
    assert samples[("dativo_runs_in_progress", _labels(tenant="beta", dativo_job="slow"))] == 1

    server.process.send_signal(signal.SIGTERM)
    code, _, stderr = server.finish()
    assert code == 0, stderr
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    stopped = next(event for event in logs if event["message"].startswith("stopped:"))
    # The slow job was mid-run; the quick one may have been too (a zero grace period aborts both).
    assert "beta/slow" in stopped["aborted"]
    assert stopped["abandoned"] == []
    assert any(e["message"].startswith("run aborted") and e.get("job") == "slow" for e in logs)

    # Nothing half-committed: the aborted run left no staged file and no manifest, and every
    # committed run holds all its records, exactly once.
    assert not list(staging.rglob("*.staged"))
    slow_runs = _committed_runs(tmp_path / "out" / "slow")
    assert slow_runs
    assert all(ids == list(range(40)) for ids in slow_runs.values())
    quick_runs_on_disk = _committed_runs(tmp_path / "out" / "quick")
    assert quick_runs_on_disk
    assert all(ids == list(range(5)) for ids in quick_runs_on_disk.values())
    folder = ds.dataset(tmp_path / "out" / "slow", format="parquet").to_table()
    assert folder.num_rows == 40 * len(slow_runs)


# Traces and secrets ---------------------------------------------------------------------------------


@pytest.fixture
def in_memory_tracing() -> Iterator[Any]:
    pytest.importorskip("opentelemetry.sdk", reason="the runtime's 'otel' extra is not installed")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dativo_runtime._observability import configure_tracing

    exporter = InMemorySpanExporter()
    tracing = configure_tracing(exporter=exporter)
    try:
        yield exporter, tracing
    finally:
        tracing.shutdown()
        configure_tracing(environ={})  # Back to the process's default: off.


def test_a_sandboxed_run_is_one_span_tree_with_the_plugin_spans(
    write_job: Any, test_plugins: Path, in_memory_tracing: Any
) -> None:
    _require_process_sandbox()
    from dativo_runtime import load_job, run_job
    from dativo_runtime._observability import RunMetrics

    exporter, tracing = in_memory_tracing
    job = load_job(
        write_job(
            f"""
            tenant: acme
            name: traced
            source:
              plugin: {test_plugins}:TracedReader
              config: {{count: 30, batch_size: 10}}
            target: {{plugin: parquet, config: {{path: out}}}}
            sandbox: {{backend: process, timeout: 120}}
            """
        )
    )
    metrics = RunMetrics()
    result = run_job(job, tracing=tracing, metrics=metrics)
    assert result.succeeded, result.error
    assert result.sandbox["source"] == "process"

    spans = exporter.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    [root] = by_name["dativo.run"]
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    ids = {s.context.span_id: s for s in spans}

    def parent(span: Any) -> str:
        return ids[span.parent.span_id].name

    [extract] = by_name["dativo.stage.extract"]
    assert parent(extract) == "dativo.run"
    assert parent(by_name["dativo.discover"][0]) == "dativo.run"
    assert parent(by_name["dativo.commit"][0]) == "dativo.run"
    assert [parent(s) for s in by_name["dativo.batch"]] == ["dativo.stage.extract"] * 3
    assert {parent(s) for s in by_name["dativo.stage.validate"] + by_name["dativo.stage.write"]} == {
        "dativo.batch"
    }
    plugin_spans = by_name["plugin.fetch_page"]
    assert len(plugin_spans) == 3
    for span in plugin_spans:
        assert span.parent.span_id == extract.context.span_id
        assert span.attributes["dativo.sandboxed"] is True
        assert span.instrumentation_scope.name == "traced_reader"
    assert sorted(s.attributes["page.first_id"] for s in plugin_spans) == [0, 10, 20]
    for span in (root, extract):
        assert span.attributes["dativo.tenant"] == "acme"
        assert span.attributes["dativo.job"] == "traced"
        assert span.attributes["dativo.run_id"] == result.run_id

    from prometheus_client import generate_latest

    samples = _samples(generate_latest(metrics.registry).decode())
    labels = _labels(tenant="acme", dativo_job="traced")
    assert samples[("dativo_sandbox_starts_total", labels | {("backend", "process")})] == 1
    assert samples[("dativo_sandbox_cold_start_seconds_count", _labels(backend="process"))] == 1


def test_secrets_reach_no_log_metric_or_trace_of_a_sandboxed_run(
    tmp_path: Path, write_job: Any, test_plugins: Path, run_cli: Any
) -> None:
    _require_process_sandbox()
    pytest.importorskip("opentelemetry.sdk", reason="the runtime's 'otel' extra is not installed")
    env_token = "tok_e2e_env_8c1f2a9b"
    file_secret = "file-secret-e2e-5d7e"
    (tmp_path / "db_password").write_text(file_secret + "\n")
    job = write_job(
        f"""
        tenant: acme
        name: leaky
        source:
          plugin: {test_plugins}:TracedReader
          config:
            count: 20
            token: ${{SHOP_API_TOKEN}}
            fail: true
            dsn: postgres://app:${{file:db_password}}@db:5432/shop
        target: {{plugin: parquet, config: {{path: out}}}}
        sandbox: {{backend: process, timeout: 120}}
        """
    )
    metrics_file = tmp_path / "leaky.prom"
    result = run_cli(
        "run", "--config", str(job), "--json", "--metrics-file", str(metrics_file), "--log-level", "debug",
        env={"SHOP_API_TOKEN": env_token, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "e2e"},
    )  # fmt: skip
    assert result.returncode == 77, result.stderr
    outputs = {"stdout": result.stdout, "stderr": result.stderr, "metrics": metrics_file.read_text()}
    # The run's spans (the plugin's included) went to stderr through the console exporter.
    assert '"name": "dativo.run"' in result.stderr
    assert '"name": "plugin.fetch_page"' in result.stderr
    assert "api_token" in result.stderr
    assert "refused token ***" in result.stdout
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith('{"ts"')]
    assert any("fetching with token ***" in event["message"] for event in logs)
    assert {event.get("trace_id") for event in logs if event.get("job") == "leaky"} - {None}
    errors = _samples(outputs["metrics"])
    assert errors[
        ("dativo_errors_total", _labels(tenant="acme", dativo_job="leaky", error_code="AUTHENTICATION_FAILED",
                                        retryable="false"))
    ] == 1  # fmt: skip
    for where, text in outputs.items():
        for secret in (env_token, file_secret):
            assert secret not in text, f"{secret!r} leaked into {where}"
