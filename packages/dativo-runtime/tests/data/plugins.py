"""Plugins used by the runtime's tests, loaded by path (``plugins.py:ClassName``).

Each exists to exercise one behaviour of the runtime: retries, crashes, state, secrets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import (
    AuthenticationError,
    BaseReader,
    BaseWriter,
    Batch,
    Column,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    State,
    TransientError,
    records_from_batch,
)


class RecordsReader(BaseReader):
    """Yields ``config["records"]`` in batches of ``batch_size``, resuming from state ``offset``."""

    __version__ = "1.0.0"
    supports_incremental = True

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(True, "in memory")

    def extract(self, state: State | None = None) -> Iterator[Any]:
        records = list(self.config.get("records") or [])
        size = int(self.config.get("batch_size", 2))
        start = int(state.get("offset", 0)) if state is not None else 0
        for low in range(start, len(records), size):
            yield records[low : low + size]
            if state is not None:
                state.set("offset", min(low + size, len(records)))


class NumbersReader(BaseReader):
    """``count`` records ``{"id": n}`` in batches; ``delay`` seconds between batches; resumes by id."""

    __version__ = "1.0.0"
    supports_incremental = True

    def discover(self) -> DiscoveryResult:
        return DiscoveryResult([DiscoveredStream("numbers", (Column("id", "integer", nullable=False),))])

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(True, "nothing to reach")

    def extract(self, state: State | None = None) -> Iterator[Any]:
        import pyarrow as pa

        count = int(self.config.get("count", 100))
        size = int(self.config.get("batch_size", 10))
        delay = float(self.config.get("delay", 0))
        start = int(state.get("next", 0)) if state is not None else 0
        for low in range(start, count, size):
            high = min(low + size, count)
            yield pa.record_batch({"id": pa.array(range(low, high), pa.int64())})
            if state is not None:
                state.set("next", high)
            if delay:
                time.sleep(delay)


class FlakyReader(BaseReader):
    """Fails with a retryable error mid-stream the first ``failures`` times (counted in a file)."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        counter = Path(self.config["counter_file"])
        seen = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(seen + 1))
        yield [{"id": 1}, {"id": 2}]
        if seen < int(self.config.get("failures", 1)):
            raise TransientError("the source hiccupped", retry_after=float(self.config.get("retry_after", 0)))
        yield [{"id": 3}]


class CrashingReader(BaseReader):
    """Raises an unexpected exception after one batch."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"id": 1}]
        raise RuntimeError("boom in the plugin")


class LeakyReader(BaseReader):
    """Puts its token in an error message, a log line and raw prints (the runtime must mask it)."""

    __version__ = "1.0.0"

    def check_connection(self) -> ConnectionTestResult:
        import sys

        print(f"checking with token {self.config['token']}")  # on stdout: must not corrupt --json
        print(f"checking with token {self.config['token']}", file=sys.stderr)
        return ConnectionTestResult(False, f"refused token {self.config['token']}", "AUTHENTICATION_FAILED")

    def extract(self, state: State | None = None) -> Iterator[Any]:
        import logging

        print(f"extracting with token {self.config['token']}")
        logging.getLogger("leaky").warning("using token %s", self.config["token"])
        yield [{"id": 1, "note": f"token={self.config['token']}"}]
        raise AuthenticationError(
            f"token {self.config['token']} was refused", details={"token": self.config["token"]}
        )


class IncompatibleReader(BaseReader):
    """Declares an SDK range this runtime does not satisfy."""

    __version__ = "3.0.0"
    requires_sdk = ">=2.0,<3"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield []


class NotAPlugin:
    """Neither a reader nor a writer."""


class TwoStreamsReader(BaseReader):
    """Offers two streams, so jobs must pick one."""

    __version__ = "1.0.0"

    def discover(self) -> DiscoveryResult:
        return DiscoveryResult([DiscoveredStream("a", (Column("x", "integer"),)), DiscoveredStream("b")])

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"x": 1 if state is None or state.stream == "a" else 2}]


class MemoryWriter(BaseWriter):
    """Collects committed records into a JSON-lines file at ``config["path"]``."""

    __version__ = "1.0.0"

    def __init__(self, config: Any, schema: Any = None) -> None:
        super().__init__(config, schema)
        self.staged: list[dict[str, Any]] = []

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        rows = records_from_batch(records)
        self.staged.extend(rows)
        return [{"path": "memory", "record_count": len(rows), "size_bytes": 0}]

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        import json

        with open(self.config["path"], "a", encoding="utf-8") as handle:
            for row in self.staged:
                handle.write(json.dumps(row, default=str) + "\n")
        count = len(self.staged)
        self.staged = []
        if os.environ.get("DATIVO_TEST_FAIL_AFTER_COMMIT"):
            raise TransientError("connection lost after the commit")
        return {"files_committed": 1, "record_count": count}

    def abort(self) -> None:
        self.staged = []


class TracedReader(BaseReader):
    """``count`` records in batches, each fetched in a span made with the plain OpenTelemetry API.

    With ``token`` it also puts that secret where plugins leak them: a span attribute and
    event, a log line, and (``fail: true``) the message of the error that ends the run.
    """

    __version__ = "1.0.0"

    def discover(self) -> DiscoveryResult:
        return DiscoveryResult([DiscoveredStream("numbers", (Column("id", "integer", nullable=False),))])

    def extract(self, state: State | None = None) -> Iterator[Any]:
        import logging

        from opentelemetry import trace

        tracer = trace.get_tracer("traced_reader")
        token = str(self.config.get("token", ""))
        count, size = int(self.config.get("count", 20)), int(self.config.get("batch_size", 10))
        for low in range(0, count, size):
            with tracer.start_as_current_span("plugin.fetch_page") as span:
                span.set_attribute("page.first_id", low)
                if token:
                    span.set_attribute("api_token", token)
                    span.set_attribute("http.url", f"https://api.example/orders?token={token}")
                    span.add_event("request", {"line": f"GET with {token}"})
                    logging.getLogger("traced_reader").warning("fetching with token %s", token)
                records = [{"id": n} for n in range(low, min(low + size, count))]
            yield records
        if self.config.get("fail"):
            raise AuthenticationError(f"the API refused token {token}")


class MarkerReader(BaseReader):
    """Appends ``start``/``end`` lines for its job to ``config["log"]``, for concurrency tests.

    With ``wait_for`` it waits (at most 60 s) until the log holds a ``start`` line of that
    tenant: two such jobs finish only if they run at the same time. ``fail: true`` raises.
    """

    __version__ = "1.0.0"

    def _mark(self, event: str) -> None:
        fd = os.open(self.config["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{event} {self.config['job']}\n".encode())
        finally:
            os.close(fd)

    def extract(self, state: State | None = None) -> Iterator[Any]:
        self._mark("start")
        wanted = self.config.get("wait_for")
        deadline = time.monotonic() + 60
        while wanted and time.monotonic() < deadline:
            lines = Path(self.config["log"]).read_text().splitlines()
            if any(line.startswith(f"start {wanted}/") for line in lines):
                break
            time.sleep(0.02)
        if self.config.get("fail"):
            self._mark("end")
            raise RuntimeError("the marker reader was told to fail")
        yield [{"id": n} for n in range(int(self.config.get("count", 3)))]
        self._mark("end")


class StateTamperingWriter(BaseWriter):
    """Tries to overwrite ``config["target_file"]``; records what happened in its own output folder."""

    __version__ = "1.0.0"

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        outcome = "written"
        try:
            with open(self.config["target_file"], "w", encoding="utf-8") as handle:
                handle.write("tampered")
        except OSError as exc:
            outcome = f"refused: {type(exc).__name__} errno {exc.errno}"
        report = Path(self.config["path"]) / "tamper-report.txt"
        report.write_text(outcome)
        return [{"path": str(report), "record_count": len(records_from_batch(records)), "size_bytes": 0}]

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        return {"files_committed": len(file_metadata)}
