"""Prometheus metrics of runs: what was read, written and quarantined, how long, what failed.

Every metric lives in one :class:`RunMetrics` (its own ``CollectorRegistry``, never the
process-wide default one, so a push or a textfile holds Dativo's metrics only). The
pipeline takes a :class:`JobMetrics` handle for its job with :meth:`RunMetrics.for_job`
and reports counts and durations through it; nothing else reaches a label, so record
values can never become label values.

Label sets are bounded. ``stage``, ``status`` and ``reason`` take a fixed set of values
(anything else is a ``ValueError``: a programming mistake); ``tenant``, ``dativo_job``,
``stream``, ``error_code`` and ``backend`` keep the first values they see up to a cap and
fold the rest into ``_other``. The job label is ``dativo_job``, not ``job``: Prometheus
and the Pushgateway reserve ``job`` for the scrape target or push group.

A long-running ``serve`` process runs each job in a child process; the child writes its
metrics as text and :meth:`RunMetrics.absorb` adds them to the parent's, so the parent's
``/metrics`` shows the records and bytes of every run.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dativo_plugin_sdk import get_error_code, is_retryable
from dativo_runtime._observability._absorbed import AbsorbedSamples, ExpositionView
from dativo_runtime._observability._sandbox_failures import (
    METRIC_LABEL_BY_REASON,
    SANDBOX_FAILURE_LABELS,
    sandbox_failure_reason,
)
from dativo_runtime._secrets import MASK, REDACTOR, Redactor
from dativo_runtime._version import __version__

__all__ = [
    "OTHER",
    "OUTCOME_METRICS",
    "RUN_STATUSES",
    "STAGES",
    "JobMetrics",
    "RunMetrics",
]

OTHER = "_other"
"""The label value that values beyond a label's cap are folded into."""

STAGES = ("extract", "validate", "write", "commit")
"""The pipeline stages timed by ``dativo_stage_duration_seconds``."""

RUN_STATUSES = ("success", "failed", "aborted")
"""Final statuses of a run, the ``status`` label of ``dativo_job_runs_total``."""

OUTCOME_METRICS = (
    "dativo_job_runs",
    "dativo_run_duration_seconds",
    "dativo_last_success_timestamp_seconds",
    "dativo_last_run_timestamp_seconds",
    "dativo_runs_in_progress",
)
"""Families a process running jobs in children records itself (so :meth:`RunMetrics.absorb` skips them)."""

_RUN_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)
_STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_COLD_START_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_LIMITS = {
    "tenant": 200,
    "dativo_job": 2000,
    "stream": 500,
    "partition": 200,
    "error_code": 100,
    "backend": 20,
}
_MAX_LABEL_LENGTH = 100
_ERROR_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _LabelBudget:
    """Admits at most ``limit`` distinct values of one label; later ones become ``_other``.

    A value holding a known secret (a plugin naming a stream after its token) becomes
    ``***``; the check runs once per new value, not per call.
    """

    def __init__(self, limit: int, redactor: Redactor) -> None:
        self._limit = limit
        self._redactor = redactor
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, value: object) -> str:
        text = _CONTROL.sub("", str(value)).strip()[:_MAX_LABEL_LENGTH] or OTHER
        if text in self._seen:
            return text
        if self._redactor.redact_text(text) != text:
            return MASK
        with self._lock:
            if text in self._seen:
                return text
            if len(self._seen) < self._limit:
                self._seen.add(text)
                return text
        return OTHER


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")
    return value


class RunMetrics:
    """Every metric of issue 7 in one registry, with bounded labels.

    Args:
        max_label_values: Overrides of the per-label caps (``tenant``, ``dativo_job``,
            ``stream``, ``error_code``, ``backend``).
        redactor: Label values holding one of its secrets become ``***``.

    Attributes:
        registry: What to expose (HTTP, Pushgateway, textfile): the metrics below plus
            absorbed child metrics, without ``_created`` series.
        source_registry: Where the metrics are registered; register extra metrics here.
    """

    def __init__(
        self, *, max_label_values: Mapping[str, int] | None = None, redactor: Redactor = REDACTOR
    ) -> None:
        limits = {**_LIMITS, **(max_label_values or {})}
        self._budgets = {name: _LabelBudget(limit, redactor) for name, limit in limits.items()}
        self.source_registry = CollectorRegistry(auto_describe=True)
        self._absorbed = AbsorbedSamples()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ExpositionView(self.source_registry, self._absorbed))
        reg = self.source_registry
        job = ["tenant", "dativo_job"]
        stream = [*job, "stream"]
        self.records_read = Counter(
            "dativo_records_read", "Records the source plugin produced.", stream, registry=reg
        )
        self.records_written = Counter(
            "dativo_records_written", "Records the target committed.", stream, registry=reg
        )
        self.records_quarantined = Counter(
            "dativo_records_quarantined",
            "Invalid records sent to the quarantine dataset.",
            stream,
            registry=reg,
        )
        self.bytes_written = Counter(
            "dativo_bytes_written", "Bytes of files the target wrote.", stream, registry=reg
        )
        self.batches = Counter(
            "dativo_batches", "Batches that went through the pipeline.", stream, registry=reg
        )
        self.partition_records_read = Counter(
            "dativo_partition_records_read",
            "Records read per partition of a partitioned stream (past 200 partitions, '_other').",
            [*stream, "partition"],
            registry=reg,
        )
        self.partitions_extracted = Counter(
            "dativo_partitions_extracted",
            "Partitions of a partitioned stream extracted to their end.",
            stream,
            registry=reg,
        )
        self.partitions_in_progress = Gauge(
            "dativo_partitions_in_progress", "Partitions being extracted now.", job, registry=reg
        )
        self.stage_duration = Histogram(
            "dativo_stage_duration_seconds",
            "Time spent in one pipeline stage (extract, validate, write, commit) of a run.",
            [*stream, "stage"],
            buckets=_STAGE_BUCKETS,
            registry=reg,
        )
        self.errors = Counter(
            "dativo_errors",
            "Errors, by error_code and whether they were retryable.",
            [*job, "error_code", "retryable"],
            registry=reg,
        )
        self.retries = Counter(
            "dativo_retries",
            "Retries of an operation after a retryable error.",
            [*job, "error_code"],
            registry=reg,
        )
        self.sandbox_starts = Counter(
            "dativo_sandbox_starts", "Plugin sandboxes started.", [*job, "backend"], registry=reg
        )
        self.sandbox_failures = Counter(
            "dativo_sandbox_failures",
            "Sandboxes that stopped a plugin or failed to start, by reason (oom, timeout, signal, "
            "syscall_blocked, other).",
            [*job, "backend", "reason"],
            registry=reg,
        )
        self.sandbox_cold_start = Histogram(
            "dativo_sandbox_cold_start_seconds",
            "Time from starting a sandbox to the plugin being ready.",
            ["backend"],
            buckets=_COLD_START_BUCKETS,
            registry=reg,
        )
        self.run_duration = Histogram(
            "dativo_run_duration_seconds",
            "Wall-clock time of a run, any status.",
            job,
            buckets=_RUN_BUCKETS,
            registry=reg,
        )
        self.job_runs = Counter("dativo_job_runs", "Runs by final status.", [*job, "status"], registry=reg)
        self.last_success = Gauge(
            "dativo_last_success_timestamp_seconds",
            "Unix time the job last finished successfully.",
            job,
            registry=reg,
        )
        self.last_run = Gauge(
            "dativo_last_run_timestamp_seconds",
            "Unix time the job last finished, any status.",
            job,
            registry=reg,
        )
        self.runs_in_progress = Gauge(
            "dativo_runs_in_progress", "Runs of the job going on now.", job, registry=reg
        )
        info = Gauge(
            "dativo_runtime_info", "The runtime's version (value is always 1).", ["version"], registry=reg
        )
        info.labels(version=__version__).set(1)

    def label(self, name: str, value: object) -> str:
        """Return ``value`` as admitted for label ``name`` (``_other`` past the cap)."""
        if name == "error_code" and not _ERROR_CODE.match(str(value)):
            return OTHER
        return self._budgets[name].admit(value)

    def for_job(self, tenant: str, job: str) -> JobMetrics:
        """Return the handle the pipeline reports one job's runs through.

        Args:
            tenant: The job's tenant.
            job: The job's name (unique within the tenant).

        Returns:
            A :class:`JobMetrics` bound to ``tenant`` and ``job``.
        """
        return JobMetrics(self, self.label("tenant", tenant), self.label("dativo_job", job))

    def absorb(self, text: str, *, skip: Iterable[str] = OUTCOME_METRICS) -> None:
        """Add metrics a child process wrote (Prometheus text format) to these.

        Counters and histograms add up; gauges take the child's value. ``_created``
        series and the families in ``skip`` are ignored (by default the run-outcome
        metrics, which the parent records itself, crashes included).

        Args:
            text: The child's exposition, e.g. the file it wrote with ``--metrics-file``.
            skip: Family names to ignore.

        Raises:
            ValueError: If ``text`` is not in the Prometheus text format.
        """
        self._absorbed.add(text, skip=frozenset(skip))


class JobMetrics:
    """One job's view of :class:`RunMetrics`: the calls the pipeline makes."""

    def __init__(self, metrics: RunMetrics, tenant: str, job: str) -> None:
        self._m = metrics
        self.tenant = tenant
        self.job = job
        self._job = {"tenant": tenant, "dativo_job": job}

    def _stream(self, stream: str | None) -> dict[str, str]:
        return {**self._job, "stream": self._m.label("stream", stream or "default")}

    def run_started(self) -> None:
        """Count a run as in progress (call once at the start of a run)."""
        self._m.runs_in_progress.labels(**self._job).inc()

    def run_finished(self, status: str, duration_s: float, *, finished_at: float | None = None) -> None:
        """Record the end of a run.

        Args:
            status: ``success``, ``failed`` or ``aborted``.
            duration_s: Wall-clock seconds the run took.
            finished_at: Unix time it ended; now by default.

        Raises:
            ValueError: If ``status`` is not one of :data:`RUN_STATUSES`.
        """
        status = _check(status, RUN_STATUSES, "run status")
        now = time.time() if finished_at is None else finished_at
        self._m.runs_in_progress.labels(**self._job).dec()
        self._m.run_duration.labels(**self._job).observe(max(duration_s, 0.0))
        self._m.job_runs.labels(**self._job, status=status).inc()
        self._m.last_run.labels(**self._job).set(now)
        if status == "success":
            self._m.last_success.labels(**self._job).set(now)

    def set_last_success(self, timestamp: float) -> None:
        """Set the last-success time (carried over from an earlier process's textfile)."""
        self._m.last_success.labels(**self._job).set(timestamp)

    def batch(
        self,
        stream: str | None = None,
        *,
        records_read: int = 0,
        records_written: int = 0,
        records_quarantined: int = 0,
        bytes_written: int = 0,
    ) -> None:
        """Count one batch and what happened to its records.

        Args:
            stream: The stream's name (``default`` when ``None``).
            records_read: Records the source produced in this batch.
            records_written: Records the target accepted.
            records_quarantined: Records sent to quarantine.
            bytes_written: Bytes of files written for this batch.
        """
        labels = self._stream(stream)
        self._m.batches.labels(**labels).inc()
        for counter, amount in (
            (self._m.records_read, records_read),
            (self._m.records_written, records_written),
            (self._m.records_quarantined, records_quarantined),
            (self._m.bytes_written, bytes_written),
        ):
            counter.labels(**labels).inc(max(int(amount), 0))

    def partition_read(self, partition: str, rows: int, *, stream: str | None = None) -> None:
        """Count ``rows`` read by partition ``partition`` of a partitioned stream."""
        labels = {**self._stream(stream), "partition": self._m.label("partition", partition)}
        self._m.partition_records_read.labels(**labels).inc(max(int(rows), 0))

    def partition_started(self) -> None:
        """Count a partition as being extracted."""
        self._m.partitions_in_progress.labels(**self._job).inc()

    def partition_finished(self, *, stream: str | None = None, complete: bool) -> None:
        """Count a partition as no longer extracted (``complete``: it reached its end)."""
        self._m.partitions_in_progress.labels(**self._job).dec()
        if complete:
            self._m.partitions_extracted.labels(**self._stream(stream)).inc()

    def records_written(self, count: int, *, stream: str | None = None, bytes_written: int = 0) -> None:
        """Count records (and bytes) that became durable at commit time, outside a batch."""
        labels = self._stream(stream)
        self._m.records_written.labels(**labels).inc(max(int(count), 0))
        self._m.bytes_written.labels(**labels).inc(max(int(bytes_written), 0))

    def records_quarantined(self, count: int, *, stream: str | None = None) -> None:
        """Count invalid records committed to the quarantine dataset, outside a batch."""
        self._m.records_quarantined.labels(**self._stream(stream)).inc(max(int(count), 0))

    def observe_stage(self, stage: str, seconds: float, *, stream: str | None = None) -> None:
        """Record time spent in a stage (``extract``, ``validate``, ``write``, ``commit``).

        Raises:
            ValueError: If ``stage`` is not one of :data:`STAGES`.
        """
        stage = _check(stage, STAGES, "stage")
        self._m.stage_duration.labels(**self._stream(stream), stage=stage).observe(max(seconds, 0.0))

    @contextlib.contextmanager
    def time_stage(self, stage: str, *, stream: str | None = None) -> Iterator[None]:
        """Time the ``with`` block as ``stage``, whether it raises or not."""
        _check(stage, STAGES, "stage")
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_stage(stage, time.perf_counter() - start, stream=stream)

    def error(
        self,
        exc: BaseException | None = None,
        *,
        error_code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        """Count an error, by its code and retryability.

        Args:
            exc: The exception (its ``error_code`` and ``retryable`` are used).
            error_code: The code, when there is no exception object (a result dict).
            retryable: The flag, likewise.
        """
        code = error_code if error_code is not None else (get_error_code(exc) if exc else "UNEXPECTED_ERROR")
        flag = retryable if retryable is not None else (is_retryable(exc) if exc else False)
        self._m.errors.labels(
            **self._job, error_code=self._m.label("error_code", code), retryable=str(bool(flag)).lower()
        ).inc()

    def retry(self, exc: BaseException | None = None, *, error_code: str | None = None) -> None:
        """Count one retry after a retryable error."""
        code = error_code if error_code is not None else (get_error_code(exc) if exc else "UNEXPECTED_ERROR")
        self._m.retries.labels(**self._job, error_code=self._m.label("error_code", code)).inc()

    def sandbox_started(self, backend: str, cold_start_s: float | None = None) -> None:
        """Count a sandbox start and, when known, its cold-start time (start to plugin ready)."""
        name = self._m.label("backend", backend)
        self._m.sandbox_starts.labels(**self._job, backend=name).inc()
        if cold_start_s is not None:
            self._m.sandbox_cold_start.labels(backend=name).observe(max(cold_start_s, 0.0))

    def sandbox_failed(self, backend: str, reason: str | BaseException) -> None:
        """Count a sandbox failure.

        Args:
            backend: The backend's name.
            reason: The ``SandboxError`` (labelled with :func:`sandbox_failure_reason`),
                one of :data:`SANDBOX_FAILURE_REASONS` (labelled through
                :data:`METRIC_LABEL_BY_REASON`), or one of :data:`SANDBOX_FAILURE_LABELS`.

        Raises:
            ValueError: If ``reason`` is a string outside both.
        """
        if isinstance(reason, BaseException):
            text = sandbox_failure_reason(reason)
        else:
            text = METRIC_LABEL_BY_REASON.get(reason, reason)
        _check(text, SANDBOX_FAILURE_LABELS, "sandbox failure reason")
        self._m.sandbox_failures.labels(
            **self._job, backend=self._m.label("backend", backend), reason=text
        ).inc()
