"""What a run tells its metrics and its trace: one object the engine reports run events to.

The batch loop, the commit and the retry loop call :class:`RunObserver` ("a batch was
read", "the commit begins", "attempt 2 failed") instead of calling Prometheus and
OpenTelemetry themselves; this module decides which counter, histogram and span each event
becomes (the names are in docs/observability.md).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import DativoError, SandboxError
from dativo_runtime._engine._outcome import RunResult
from dativo_runtime._observability._metrics import JobMetrics
from dativo_runtime._observability._tracing import SpanHandle, Tracing
from dativo_runtime._sandbox import ReaderSession, WriterSession

__all__ = ["RunObserver", "StageClock"]


class StageClock:
    """Seconds one attempt spends in each stage, observed once per attempt."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(("extract", "validate", "write"), 0.0)

    @contextlib.contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Add the time the block takes to ``stage``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


class RunObserver:
    """Turns the events of one run into its metrics and spans.

    Args:
        metrics: The job's metrics.
        tracing: Where the run's spans go.
    """

    def __init__(self, metrics: JobMetrics, tracing: Tracing) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self._started = time.monotonic()

    @property
    def tracing_enabled(self) -> bool:
        """Whether spans are recorded (a traced run writes each batch inline, inside its span)."""
        return self.tracing.enabled

    # The run ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def run(self, result: RunResult, mode: str) -> Iterator[SpanHandle]:
        """The run's span (``dativo.run``); counts the run as in progress."""
        self._started = time.monotonic()
        self.metrics.run_started()
        with self.tracing.run(
            tenant=result.tenant,
            job=result.job,
            run_id=result.run_id,
            **{"dativo.source": result.source, "dativo.target": result.target, "dativo.mode": mode},
        ) as span:
            yield span

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self._started

    def run_aborted(self) -> None:
        """Record a run stopped by a signal (nothing committed)."""
        self.metrics.run_finished("aborted", self.elapsed())

    def run_finished(self, result: RunResult, span: SpanHandle) -> None:
        """Record how the run ended: its status, duration, error and counts on the span."""
        if result.error is not None:
            self.metrics.error(result.error)
            span.record_error(result.error)
        self.metrics.run_finished(result.status.label, result.duration_s)
        span.set_attribute("dativo.status", result.status.value)
        span.set_attribute("dativo.records_read", result.records_read)
        span.set_attribute("dativo.records_written", result.records_written)

    # Attempts and retries ----------------------------------------------------------------

    def retrying(self, attempt: int, exc: BaseException, delay: float) -> None:
        """Count an error that is about to be retried (checks, discovery, state writes, attempts)."""
        self.metrics.error(exc)
        self.metrics.retry(exc)

    def attempt_failed(self, exc: DativoError) -> None:
        """Count a failed attempt's sandbox failure, if a sandbox failed."""
        if isinstance(exc, SandboxError):
            self.metrics.sandbox_failed(str(exc.details.get("backend") or "unknown"), exc)

    def session_started(self, session: ReaderSession | WriterSession, backend: str, began: float) -> None:
        """Count a sandbox start and its cold start (in-process sessions are not sandboxes)."""
        if backend != "none":
            cold_start = getattr(session, "startup_seconds", None)
            self.metrics.sandbox_started(
                backend, cold_start if cold_start is not None else time.monotonic() - began
            )

    # Batches ----------------------------------------------------------------------------

    def extracting(self, stream: str | None) -> contextlib.AbstractContextManager[Any]:
        """The span of the whole extract stage."""
        return self.tracing.stage("extract", stream=stream)

    def batch_read(self, stream: str | None, rows: int) -> None:
        """Count one non-empty batch and its records."""
        self.metrics.batch(stream, records_read=rows)

    def partition_read(self, partition: str, stream: str | None, rows: int) -> None:
        """Count records one partition of a partitioned stream read."""
        self.metrics.partition_read(partition, rows, stream=stream)

    def partition_started(self) -> None:
        """Count a partition as being extracted."""
        self.metrics.partition_started()

    def partition_finished(self, stream: str | None, *, complete: bool) -> None:
        """Count a partition as done (``complete``) or stopped."""
        self.metrics.partition_finished(stream=stream, complete=complete)

    def batch(self, index: int, stream: str | None, rows: int) -> contextlib.AbstractContextManager[Any]:
        """The span of batch ``index`` (sampled: see :meth:`Tracing.batch_sampled`)."""
        return self.tracing.batch(index, stream=stream, records=rows)

    def batch_stage(
        self, index: int, stage: str, stream: str | None
    ) -> contextlib.AbstractContextManager[Any]:
        """The span of a stage of a sampled batch (``validate``, ``write``), else nothing."""
        if self.tracing.enabled and self.tracing.batch_sampled(index):
            return self.tracing.stage(stage, stream=stream)
        return contextlib.nullcontext()

    def stages_timed(self, clock: StageClock, stream: str | None) -> None:
        """Record the seconds an attempt spent in each stage."""
        for stage, seconds in clock.seconds.items():
            self.metrics.observe_stage(stage, seconds, stream=stream)

    # The commit -------------------------------------------------------------------------

    @contextlib.contextmanager
    def committing(self, stream: str | None) -> Iterator[None]:
        """The commit's span and its stage time."""
        with self.tracing.commit(stream=stream), self.metrics.time_stage("commit", stream=stream):
            yield

    def committed(self, stream: str | None, *, written: int, bytes_written: int, quarantined: int) -> None:
        """Count the records and bytes that became durable, and those quarantined."""
        self.metrics.records_written(written, stream=stream, bytes_written=bytes_written)
        self.metrics.records_quarantined(quarantined, stream=stream)
