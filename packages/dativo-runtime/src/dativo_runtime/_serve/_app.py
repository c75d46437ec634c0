"""``dativo-run serve``: the scheduler plus one HTTP port for Prometheus, probes and status.

Endpoints (``GET``):

============== ==============================================================================
``/metrics``   Prometheus exposition: run outcomes recorded here, plus each run's own metrics
``/healthz``   200 while the process is alive and the scheduler loop ticked recently, else 503
``/readyz``    200 when every readiness check passes (sandbox backend, state store, targets),
               503 otherwise and during shutdown; the body lists each check
``/api/jobs``  every job: schedule, next run, current run, last runs with status and counts
``/api/jobs/{id}``  one job, by ``tenant/name`` or by ``name`` when that is unique
============== ==============================================================================
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import logging
import signal
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote

from prometheus_client import make_wsgi_app

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._batch._child import JobRunner, SubprocessJobRunner
from dativo_runtime._observability import HttpEndpoint, RunMetrics
from dativo_runtime._secrets import REDACTOR
from dativo_runtime._serve._jobs import ScheduledJob, load_scheduled_jobs
from dativo_runtime._serve._scheduler import Scheduler, ShutdownReport

__all__ = ["ReadinessCheck", "ServeApp", "serve"]

logger = logging.getLogger("dativo.serve")


@dataclass(frozen=True)
class ReadinessCheck:
    """A named readiness check for ``/readyz``.

    Args:
        name: Shown in the ``/readyz`` body (``sandbox``, ``state-store``...).
        check: Raises, or returns ``False``, when not ready.
        timeout: Seconds before the check counts as failed.
    """

    name: str
    check: Callable[[], Any]
    timeout: float = 5.0


def _as_check(value: ReadinessCheck | Callable[[], Any]) -> ReadinessCheck:
    if isinstance(value, ReadinessCheck):
        return value
    return ReadinessCheck(getattr(value, "__name__", None) or type(value).__name__, value)


_Response = tuple[int, Any]
_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    503: "Service Unavailable",
}


class ServeApp:
    """The long-running server: a :class:`Scheduler`, its loop thread and the HTTP endpoint.

    Args:
        jobs: The scheduled jobs.
        runner: Runs one job.
        host: Address to listen on.
        port: TCP port (0 picks a free one; read ``.port`` after :meth:`start`).
        metrics: Where metrics are recorded; a new :class:`RunMetrics` by default.
        readiness_checks: Checks behind ``/readyz``: :class:`ReadinessCheck` objects or
            plain callables (named after the function).
        max_parallel: Runs going on at once, in total.
        max_per_tenant: Runs at once per tenant unless ``tenant_limits`` says.
        tenant_limits: Per-tenant overrides.
        tick_interval: The longest the scheduler sleeps between ticks, in seconds.
        health_stale_after: ``/healthz`` fails when the loop has not ticked for this long.
        clock: The scheduler's clock (time-zone aware).
    """

    def __init__(
        self,
        jobs: Sequence[ScheduledJob],
        runner: JobRunner,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        metrics: RunMetrics | None = None,
        readiness_checks: Iterable[ReadinessCheck | Callable[[], Any]] = (),
        max_parallel: int = 4,
        max_per_tenant: int = 2,
        tenant_limits: Mapping[str, int] | None = None,
        tick_interval: float = 1.0,
        health_stale_after: float = 30.0,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.metrics = metrics or RunMetrics()
        self.scheduler = Scheduler(
            jobs,
            runner,
            metrics=self.metrics,
            max_parallel=max_parallel,
            max_per_tenant=max_per_tenant,
            tenant_limits=tenant_limits,
            clock=clock,
        )
        self.checks = [_as_check(c) for c in readiness_checks]
        self.host = host
        self._port = port
        self.tick_interval = tick_interval
        self.health_stale_after = max(health_stale_after, tick_interval * 3)
        self._metrics_app = make_wsgi_app(self.metrics.registry)
        self._stop = threading.Event()
        self._loop: threading.Thread | None = None
        self._endpoint: HttpEndpoint | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dativo-readyz")

    @property
    def port(self) -> int:
        """The port listened on (the real one once started)."""
        return self._endpoint.port if self._endpoint else self._port

    @property
    def url(self) -> str:
        """The server's base URL."""
        if self._endpoint is None:
            raise RuntimeError("the server is not started")
        return self._endpoint.url

    def start(self) -> None:
        """Bind the port, then start the scheduler loop.

        Raises:
            ConfigurationError: If the port cannot be bound.
        """
        self._endpoint = HttpEndpoint(self.wsgi, host=self.host, port=self._port)
        self._loop = threading.Thread(
            target=self.scheduler.run_forever,
            args=(self._stop,),
            kwargs={"tick_interval": self.tick_interval},
            name="dativo-scheduler",
            daemon=True,
        )
        self._loop.start()

    def stop(
        self,
        *,
        grace_period: float = 30.0,
        abort_grace: float = 60.0,
        abort_now: threading.Event | None = None,
    ) -> ShutdownReport:
        """Shut down: stop scheduling, let runs finish or abort them, then close the port.

        ``/healthz`` keeps answering (and ``/readyz`` says 503) until the runs are done.

        Args:
            grace_period: Seconds running jobs get to finish.
            abort_grace: Seconds aborted jobs get to stop.
            abort_now: Ends the grace period early when set.

        Returns:
            What happened to the running jobs.
        """
        self._stop.set()
        report = self.scheduler.shutdown(
            grace_period=grace_period, abort_grace=abort_grace, abort_now=abort_now
        )
        if self._loop is not None:
            self._loop.join(timeout=5)
        if self._endpoint is not None:
            self._endpoint.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        return report

    # Endpoints ---------------------------------------------------------------------------

    def healthz(self) -> _Response:
        """``/healthz``: alive and the scheduler loop ticking."""
        last = self.scheduler.last_tick
        age = None if last is None else time.monotonic() - last
        loop_alive = self._loop is not None and self._loop.is_alive()
        ticking = age is not None and age <= self.health_stale_after
        healthy = ticking and (loop_alive or self.scheduler.stopping)
        body = {
            "status": "ok" if healthy else "unhealthy",
            "scheduler_loop_alive": loop_alive,
            "seconds_since_tick": None if age is None else round(age, 3),
            "stopping": self.scheduler.stopping,
        }
        return (200 if healthy else 503), body

    def readyz(self) -> _Response:
        """``/readyz``: every readiness check passes and the server is not shutting down."""
        futures = [(check, self._pool.submit(check.check)) for check in self.checks]
        results = []
        for check, future in futures:
            try:
                value = future.result(timeout=check.timeout)
                ok, error = value is not False, (None if value is not False else "check returned false")
            except concurrent.futures.TimeoutError:
                ok, error = False, f"no answer within {check.timeout:g} s"
            except Exception as exc:
                ok, error = False, REDACTOR.redact_text(f"{type(exc).__name__}: {exc}")[:500]
            results.append({"name": check.name, "ok": ok, "error": error})
        stopping = self.scheduler.stopping
        ready = not stopping and all(r["ok"] for r in results)
        return (200 if ready else 503), {"ready": ready, "stopping": stopping, "checks": results}

    def api(self, path: str) -> _Response:
        """``/api/jobs`` and ``/api/jobs/{id}``."""
        if path in ("/api/jobs", "/api/jobs/"):
            return 200, self.scheduler.status()
        wanted = unquote(path[len("/api/jobs/") :]).strip("/")
        ids = self.scheduler.job_ids()
        if wanted in ids:
            return 200, self.scheduler.job_status(wanted)
        matches = [job_id for job_id in ids if job_id.split("/", 1)[1] == wanted]
        if len(matches) == 1:
            return 200, self.scheduler.job_status(matches[0])
        if matches:
            return 409, {"error": f"{wanted!r} is the name of several jobs; ask for one of {matches}"}
        return 404, {"error": f"no scheduled job {wanted!r}", "jobs": ids}

    def wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI application behind the port."""
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return self._json(start_response, 405, {"error": "read-only: use GET"}, method)
        if path == "/metrics":
            return self._metrics_app(environ, start_response)  # type: ignore[no-any-return]
        response: _Response
        if path == "/healthz":
            response = self.healthz()
        elif path == "/readyz":
            response = self.readyz()
        elif path == "/api/jobs" or path.startswith("/api/jobs/"):
            response = self.api(path)
        elif path == "/":
            response = 200, {"endpoints": ["/metrics", "/healthz", "/readyz", "/api/jobs", "/api/jobs/{id}"]}
        else:
            response = 404, {"error": f"no endpoint {path}"}
        status, body = response
        return self._json(start_response, status, body, method)

    @staticmethod
    def _json(start_response: Callable[..., Any], status: int, body: Any, method: str) -> list[bytes]:
        data = json.dumps(body, indent=1).encode() + b"\n"
        start_response(
            f"{status} {_REASONS.get(status, 'Error')}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [b"" if method == "HEAD" else data]


def _clock_for(timezone: str | None) -> Callable[[], datetime.datetime]:
    if not timezone:
        return lambda: datetime.datetime.now().astimezone()
    try:
        zone = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"--timezone {timezone!r} is not a known time zone; use an IANA name such as 'UTC' or "
            "'Europe/Berlin'",
            details={"timezone": timezone},
        ) from None
    return lambda: datetime.datetime.now(zone)


def serve(
    job_dir: str | Path,
    port: int,
    *,
    host: str = "0.0.0.0",
    runner: JobRunner | None = None,
    readiness_checks: Iterable[ReadinessCheck | Callable[[], Any]] = (),
    max_parallel: int = 4,
    max_per_tenant: int = 2,
    tenant_limits: Mapping[str, int] | None = None,
    grace_period: float = 30.0,
    abort_grace: float = 60.0,
    tick_interval: float = 1.0,
    timezone: str | None = None,
    metrics: RunMetrics | None = None,
    on_listening: Callable[[str, int], Any] | None = None,
    install_signal_handlers: bool = True,
    stop: threading.Event | None = None,
) -> int:
    """Run the scheduled jobs of ``job_dir`` until ``SIGTERM``/``SIGINT``; serve HTTP on ``port``.

    The first ``SIGTERM`` (or ``SIGINT``) stops scheduling and gives running jobs
    ``grace_period`` seconds to finish, then aborts them (``SIGTERM`` to each run's
    process, which aborts the target without committing) and waits ``abort_grace``
    more. A second signal skips the rest of the grace period.

    Args:
        job_dir: Folder of job files; those with a ``schedule`` are run.
        port: TCP port for ``/metrics``, ``/healthz``, ``/readyz`` and ``/api/jobs``.
        host: Address to listen on.
        runner: Runs one job; a ``python -m dativo_runtime run`` child process per run by
            default (:class:`SubprocessJobRunner`).
        readiness_checks: Checks behind ``/readyz`` (sandbox backend, state store,
            targets); the default runner adds one that its command exists.
        max_parallel: Runs going on at once, in total.
        max_per_tenant: Runs at once per tenant.
        tenant_limits: Per-tenant overrides of ``max_per_tenant``.
        grace_period: Seconds running jobs get to finish at shutdown.
        abort_grace: Seconds aborted jobs get to stop.
        tick_interval: The longest the scheduler sleeps between ticks.
        timezone: IANA time zone schedules are read in; the server's local one by default.
        metrics: Where metrics are recorded; a new :class:`RunMetrics` by default.
        on_listening: Called with ``(host, port)`` once the port is bound.
        install_signal_handlers: Handle ``SIGTERM``/``SIGINT`` (main thread only).
        stop: Set it to shut down as a signal would (embedding, tests).

    Returns:
        0 after a clean shutdown; 1 when a job did not stop within the abort grace.

    Raises:
        ConfigurationError: If the folder has no valid scheduled job, the time zone is
            unknown, or the port cannot be bound.
    """
    jobs = load_scheduled_jobs(job_dir)
    clock = _clock_for(timezone)
    checks = list(readiness_checks)
    if runner is None:
        default = SubprocessJobRunner()
        runner = default
        checks.insert(0, ReadinessCheck("runner", default.check))
    app = ServeApp(
        jobs,
        runner,
        host=host,
        port=port,
        metrics=metrics,
        readiness_checks=checks,
        max_parallel=max_parallel,
        max_per_tenant=max_per_tenant,
        tenant_limits=tenant_limits,
        tick_interval=tick_interval,
        clock=clock,
    )
    stop_event = stop or threading.Event()
    abort_now = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop_event.is_set():
            abort_now.set()
        stop_event.set()

    if install_signal_handlers and threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        app.start()
        logger.info(
            "serving %d scheduled job(s) on %s: %s",
            len(jobs),
            app.url,
            ", ".join(f"{j.job_id} ({j.schedule})" for j in jobs),
        )
        if on_listening is not None:
            on_listening(host, app.port)
        while not stop_event.wait(0.5):
            pass
        logger.info("shutdown requested")
        report = app.stop(grace_period=grace_period, abort_grace=abort_grace, abort_now=abort_now)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    logger.info(
        "stopped: %d run(s) finished, %d aborted, %d did not stop",
        len(report.finished),
        len(report.aborted),
        len(report.abandoned),
        extra={"finished": report.finished, "aborted": report.aborted, "abandoned": report.abandoned},
    )
    return 1 if report.abandoned else 0
