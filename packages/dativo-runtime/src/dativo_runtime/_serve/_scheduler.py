"""The scheduler of ``serve``: starts due jobs within concurrency limits, one run per job.

Rules, checked on every tick:

* a job whose time has come becomes *pending*; if it is still running or already
  pending, that occurrence is skipped (counted in ``dativo_serve_skipped_runs_total``
  with reason ``overlap``) — there are never two runs of one job at once, and a server
  that was busy or asleep runs a late job once, not once per missed occurrence;
* pending jobs start oldest first while fewer than ``max_parallel`` runs go on in total
  and fewer than the tenant's limit (``tenant_limits``, else ``max_per_tenant``) for
  its tenant;
* :meth:`Scheduler.shutdown` stops starting runs, waits up to the grace period for the
  running ones, then cancels the rest (the runner aborts them cleanly) and waits again.
"""

from __future__ import annotations

import collections
import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from dativo_runtime._batch._child import JobRunner, run_recorded
from dativo_runtime._batch._concurrency import ConcurrencyLimits
from dativo_runtime._engine._outcome import RunStatus
from dativo_runtime._observability import RunMetrics, log_context
from dativo_runtime._serve._jobs import ScheduledJob

__all__ = ["RunRecord", "Scheduler", "ShutdownReport"]

logger = logging.getLogger("dativo.serve")

Clock = Callable[[], datetime.datetime]


def _iso(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """One run of a job, running or finished, as the status API shows it.

    ``status`` is a :attr:`RunStatus.label` (``running``, ``success``, ``failed``,
    ``aborted``): the status API speaks the metrics' words.
    """

    run: int
    scheduled_for: datetime.datetime
    started_at: datetime.datetime
    finished_at: datetime.datetime | None = None
    status: str = RunStatus.RUNNING.label
    exit_code: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "run": self.run,
            "status": self.status,
            "scheduled_for": _iso(self.scheduled_for),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "exit_code": self.exit_code,
            "counts": dict(self.counts),
            "error": self.error,
        }


@dataclass
class ShutdownReport:
    """What :meth:`Scheduler.shutdown` did with the runs still going on."""

    finished: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)


@dataclass
class _Running:
    record: RunRecord
    cancel: threading.Event
    thread: threading.Thread


@dataclass
class _JobState:
    job: ScheduledJob
    next_run: datetime.datetime
    history: collections.deque[RunRecord]
    pending_since: datetime.datetime | None = None
    running: _Running | None = None
    runs: int = 0


class Scheduler:
    """Runs scheduled jobs through a :class:`JobRunner`.

    Args:
        jobs: The jobs.
        runner: Runs one job.
        metrics: Where run outcomes (and the runner's metrics text) are recorded.
        max_parallel: Runs going on at once, in total.
        max_per_tenant: Runs going on at once per tenant, unless ``tenant_limits`` says.
        tenant_limits: Per-tenant overrides of ``max_per_tenant``.
        clock: Returns the current time, time-zone aware (``datetime.now().astimezone()``).
        history: Finished runs kept per job for the status API.
    """

    def __init__(
        self,
        jobs: Sequence[ScheduledJob],
        runner: JobRunner,
        *,
        metrics: RunMetrics,
        max_parallel: int = 4,
        max_per_tenant: int = 2,
        tenant_limits: Mapping[str, int] | None = None,
        clock: Clock | None = None,
        history: int = 20,
    ) -> None:
        self.limits = ConcurrencyLimits(max_parallel, max_per_tenant, tenant_limits)
        self.runner = runner
        self.metrics = metrics
        self.max_parallel = max_parallel
        self.max_per_tenant = max_per_tenant
        self.tenant_limits = self.limits.tenant_limits
        self.clock: Clock = clock or (lambda: datetime.datetime.now().astimezone())
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self.last_tick: float | None = None
        now = self.clock()
        self._states = {
            job.job_id: _JobState(job, job.next_after(now), collections.deque(maxlen=history)) for job in jobs
        }
        registry = metrics.source_registry
        self._skipped = Counter(
            "dativo_serve_skipped_runs",
            "Scheduled occurrences not run: overlap (the job was still running or waiting), shutdown.",
            ["tenant", "dativo_job", "reason"],
            registry=registry,
        )
        self._next_run = Gauge(
            "dativo_serve_next_run_timestamp_seconds",
            "Unix time of the job's next scheduled run.",
            ["tenant", "dativo_job"],
            registry=registry,
        )
        self._tick_gauge = Gauge(
            "dativo_serve_last_tick_timestamp_seconds",
            "Unix time the scheduler loop last ran.",
            registry=registry,
        )
        Gauge("dativo_serve_scheduled_jobs", "Jobs serve schedules.", registry=registry).set(len(jobs))
        for state in self._states.values():
            self._publish_next_run(state)

    # Scheduling ---------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether :meth:`shutdown` has begun."""
        return self._stopping

    def _publish_next_run(self, state: _JobState) -> None:
        handle = self.metrics.for_job(state.job.tenant, state.job.name)
        self._next_run.labels(tenant=handle.tenant, dativo_job=handle.job).set(state.next_run.timestamp())

    def _skip(self, state: _JobState, reason: str) -> None:
        handle = self.metrics.for_job(state.job.tenant, state.job.name)
        self._skipped.labels(tenant=handle.tenant, dativo_job=handle.job, reason=reason).inc()

    def tick(self, now: datetime.datetime | None = None) -> list[str]:
        """Mark due jobs pending and start what the limits allow.

        Args:
            now: The time to schedule against; the clock's by default.

        Returns:
            The ids (``tenant/name``) of the jobs started.
        """
        now = self.clock() if now is None else now
        started: list[str] = []
        with self._lock:
            self.last_tick = time.monotonic()
            self._tick_gauge.set(time.time())
            if self._stopping:
                return started
            for state in self._states.values():
                if now < state.next_run:
                    continue
                if state.running is not None or state.pending_since is not None:
                    self._skip(state, "overlap")
                    logger.info(
                        "skipping a scheduled run of %s: the previous one is still %s",
                        state.job.job_id,
                        "running" if state.running else "waiting for a free slot",
                        extra={"tenant": state.job.tenant, "job": state.job.name},
                    )
                else:
                    state.pending_since = state.next_run
                state.next_run = state.job.next_after(now)
                self._publish_next_run(state)
            pending = sorted(
                (s for s in self._states.values() if s.pending_since is not None),
                key=lambda s: (s.pending_since, s.job.job_id),
            )
            running_tenants = [s.job.tenant for s in self._states.values() if s.running is not None]
            for state in self.limits.startable(
                pending, running_tenants=running_tenants, tenant_of=lambda s: s.job.tenant
            ):
                self._start(state, now)
                started.append(state.job.job_id)
        return started

    def _start(self, state: _JobState, now: datetime.datetime) -> None:
        state.runs += 1
        assert state.pending_since is not None
        record = RunRecord(run=state.runs, scheduled_for=state.pending_since, started_at=now)
        state.pending_since = None
        cancel = threading.Event()
        thread = threading.Thread(
            target=self._execute,
            args=(state, record, cancel),
            name=f"dativo-run-{state.job.job_id}",
            daemon=True,
        )
        state.running = _Running(record, cancel, thread)
        thread.start()

    def _execute(self, state: _JobState, record: RunRecord, cancel: threading.Event) -> None:
        job = state.job
        with log_context(tenant=job.tenant, job=job.name, run_id=f"serve-{record.run}"):
            logger.info("run %d of %s started", record.run, job.job_id)
            result, duration = run_recorded(self.runner, job, cancel, self.metrics)
            record.status = result.status.label
            record.exit_code = result.exit_code
            record.counts = result.counts
            record.error = result.error_message
            record.duration_s = duration
            record.finished_at = self.clock()
            level = logging.INFO if result.succeeded else logging.WARNING
            logger.log(
                level,
                "run %d of %s ended: %s (exit code %d) in %.1f s",
                record.run,
                job.job_id,
                result.status.label,
                result.exit_code,
                duration,
                extra={"counts": record.counts, "run_error": record.error},
            )
        with self._lock:
            state.running = None
            state.history.appendleft(record)
        self._wake.set()

    def run_forever(self, stop: threading.Event, *, tick_interval: float = 1.0) -> None:
        """Tick until ``stop`` is set (or :meth:`shutdown` begins), sleeping until the next due time.

        Args:
            stop: Set it to end the loop.
            tick_interval: The longest sleep between ticks, in seconds.
        """
        while not stop.is_set() and not self._stopping:
            try:
                self.tick()
            except Exception:  # Keep ticking; /healthz shows if it stops.
                logger.exception("scheduler tick failed")
            self._wake.wait(self._sleep_for(tick_interval))
            self._wake.clear()

    def _sleep_for(self, tick_interval: float) -> float:
        now = self.clock()
        with self._lock:
            due = [(s.next_run - now).total_seconds() for s in self._states.values()]
        return max(0.01, min([tick_interval, *due]))

    # Shutdown ----------------------------------------------------------------------------

    def _running(self) -> list[tuple[str, _Running]]:
        with self._lock:
            return [(s.job.job_id, s.running) for s in self._states.values() if s.running is not None]

    def shutdown(
        self,
        *,
        grace_period: float = 30.0,
        abort_grace: float = 60.0,
        abort_now: threading.Event | None = None,
    ) -> ShutdownReport:
        """Stop starting runs; let running ones finish, then abort those still going.

        Args:
            grace_period: Seconds running jobs get to finish on their own.
            abort_grace: Seconds cancelled jobs get to abort cleanly.
            abort_now: When set (a second ``SIGTERM``), the grace period ends at once.

        Returns:
            Which jobs finished, were aborted, or were still going at the end.
        """
        with self._lock:
            self._stopping = True
            for state in self._states.values():
                if state.pending_since is not None:
                    self._skip(state, "shutdown")
                    state.pending_since = None
        self._wake.set()
        report = ShutdownReport()
        running = self._running()
        if running:
            logger.info(
                "shutting down: waiting up to %.0f s for %d running job(s): %s",
                grace_period,
                len(running),
                ", ".join(job_id for job_id, _ in running),
            )
        deadline = time.monotonic() + grace_period
        for _, run in running:
            while run.thread.is_alive() and time.monotonic() < deadline:
                if abort_now is not None and abort_now.is_set():
                    break
                run.thread.join(timeout=min(0.1, max(deadline - time.monotonic(), 0)))
        late = [(job_id, run) for job_id, run in running if run.thread.is_alive()]
        report.finished = [job_id for job_id, run in running if not run.thread.is_alive()]
        if late:
            logger.warning("aborting %d job(s) still running: %s", len(late), ", ".join(j for j, _ in late))
            for _, run in late:
                run.cancel.set()
            deadline = time.monotonic() + abort_grace
            for _, run in late:
                run.thread.join(timeout=max(deadline - time.monotonic(), 0))
            for job_id, run in late:
                (report.abandoned if run.thread.is_alive() else report.aborted).append(job_id)
        if report.abandoned:
            logger.error("job(s) did not stop in time: %s", ", ".join(report.abandoned))
        return report

    # Status ------------------------------------------------------------------------------

    def job_ids(self) -> list[str]:
        """The ids of the scheduled jobs, in file order."""
        return list(self._states)

    def job_status(self, job_id: str) -> dict[str, Any]:
        """Return one job's status: schedule, next run, current run and last runs.

        Raises:
            KeyError: If there is no such job.
        """
        with self._lock:
            state = self._states[job_id]
            job = state.job
            return {
                "id": job.job_id,
                "tenant": job.tenant,
                "name": job.name,
                "file": str(job.path),
                "schedule": job.schedule,
                "next_run": None if self._stopping else _iso(state.next_run),
                "pending": state.pending_since is not None,
                "running": state.running is not None,
                "current_run": state.running.record.to_dict() if state.running else None,
                "last_runs": [r.to_dict() for r in state.history],
            }

    def status(self) -> dict[str, Any]:
        """Return every job's status and the scheduler's state."""
        jobs = [self.job_status(job_id) for job_id in self.job_ids()]
        return {
            "jobs": jobs,
            "scheduler": {
                "stopping": self._stopping,
                "running": sum(1 for j in jobs if j["running"]),
                "max_parallel": self.max_parallel,
                "max_per_tenant": self.max_per_tenant,
                "tenant_limits": dict(self.tenant_limits),
            },
        }
