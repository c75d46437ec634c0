"""Fixtures for the observability and serve tests: HTTP helpers, a Pushgateway receiver, scripts."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dativo_runtime._secrets import REDACTOR

DATA = Path(__file__).parent / "data"


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def _http(url: str, *, method: str = "GET", timeout: float = 10.0) -> HttpResult:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpResult(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return HttpResult(exc.code, dict(exc.headers), exc.read())


@pytest.fixture
def http() -> Callable[..., HttpResult]:
    """GET (or another method) a URL with urllib; HTTP errors come back as results, not raised."""
    return _http


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


@pytest.fixture
def parse_samples() -> Callable[[str], dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """Parse an exposition with prometheus-client's parser into {(sample name, labels): value}."""
    return _samples


def _wait_for(predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """Poll a predicate until it is truthy (bounded: fails after ``timeout`` seconds)."""
    return _wait_for


@dataclass
class Push:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushgatewayReceiver:
    """A local HTTP server that accepts pushes the way a Pushgateway does and keeps them."""

    url: str
    pushes: list[Push] = field(default_factory=list)


@pytest.fixture
def pushgateway() -> Iterator[PushgatewayReceiver]:
    """A Pushgateway-compatible receiver on 127.0.0.1 (PUT/POST /metrics/job/...; 400 on bad text)."""
    receiver = PushgatewayReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _receive(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if not self.path.startswith("/metrics/job/"):
                self.send_response(404)
                self.end_headers()
                return
            try:
                list(text_string_to_metric_families(body.decode("utf-8")))
            except (ValueError, UnicodeDecodeError) as exc:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(str(exc).encode())
                return
            receiver.pushes.append(Push(self.command, self.path, dict(self.headers), body))
            self.send_response(200 if self.command == "PUT" else 202)
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


@pytest.fixture
def data_dir() -> Path:
    """Folder of the helper scripts the tests run as separate processes."""
    return DATA


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after a test that configures logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)


@pytest.fixture
def secrets() -> list[str]:
    """Known secret values registered with the process-wide redactor, as a job file's would be.

    They stay registered after the test: masking a few more made-up strings harms nothing,
    while clearing the redactor could unmask another test's secrets.
    """
    values = ["hunter2-secret-Value", "AKIAFAKESECRETKEY123", "tok_live_8f2b9c1d"]
    for value in values:
        REDACTOR.add(value)
    return values
