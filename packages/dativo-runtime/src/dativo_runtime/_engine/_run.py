"""Running a job: reader → validation and coercion → writer, then commit, then state.

The engine talks to plugins only through sandbox sessions, only in Arrow, one batch at
a time, so memory does not grow with the number of records. One run is one commit:

1. take the job's lock (two runs of one job never overlap) and settle what a dead run
   left (its pending state: :meth:`._commit.CommitProtocol.settle_pending`);
2. open the reader and writer sessions, resolve the stream and its schema (the
   preflight, :class:`._preflight.Preflight`, which ``validate`` shares);
3. extract from the last committed state, validate each batch, write valid rows (and
   quarantine invalid ones), all staged (the batch loop, :class:`._attempt.Attempt`);
4. commit: quarantine first, then record the pending state, then the target's commit
   (for ``parquet``, an atomic run manifest), then save the state (:mod:`._commit`).

A retryable failure before the commit aborts the staged files and starts again from the
last committed state, within the job's retry budget (:func:`run_job`'s attempt loop).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from dativo_plugin_sdk import DativoError, is_retryable
from dativo_runtime._engine._attempt import Attempt, AttemptOutcome, ProgressEvent
from dativo_runtime._engine._commit import CommitProtocol
from dativo_runtime._engine._observer import RunObserver
from dativo_runtime._engine._outcome import RunResult, RunStatus
from dativo_runtime._engine._partition_task import PartitionRunner
from dativo_runtime._engine._preflight import Preflight
from dativo_runtime._engine._retry import RetryPolicy, call_with_retry
from dativo_runtime._engine._termination import raise_if_requested
from dativo_runtime._exit_codes import exit_code_for
from dativo_runtime._jobs._model import JobConfig, is_remote_uri
from dativo_runtime._observability._logging import log_context
from dativo_runtime._observability._metrics import RunMetrics
from dativo_runtime._observability._plugin_frames import shown_frames
from dativo_runtime._observability._tracing import Tracing, active_tracing
from dativo_runtime._sandbox._policy import OperatorPolicy, run_mode
from dativo_runtime.connectors._dataset import utc_now_iso
from dativo_runtime.connectors._parquet import new_run_id

__all__ = ["run_job"]

log = logging.getLogger("dativo.run")


class _JobRun:
    """One run of one job: its lock, its attempts and their retries."""

    def __init__(
        self,
        job: JobConfig,
        run_id: str,
        *,
        policy: OperatorPolicy | None,
        on_progress: Callable[[ProgressEvent], None] | None,
        sleep: Callable[[float], None],
        observer: RunObserver,
        partition_runner: PartitionRunner | None = None,
    ) -> None:
        self.job = job
        self.partition_runner = partition_runner
        self.run_id = run_id
        self.on_progress = on_progress
        self.sleep = sleep
        self.observer = observer
        self.retry = RetryPolicy.from_spec(job.retry)
        self.preflight = Preflight(
            job,
            policy=policy,
            retry=self.retry,
            tracing=observer.tracing,
            on_retry=observer.retrying,
            on_session=observer.session_started,
        )
        self.store = self.preflight.store
        self.commits = CommitProtocol(job, run_id, self.store, with_retry=self._with_retry)
        self.ingest_date = time.strftime("%Y-%m-%d", time.gmtime())
        self.last_attempt: AttemptOutcome | None = None

    def _with_retry(self, function: Callable[[], Any], what: str) -> Any:
        return call_with_retry(
            function, self.retry, what=what, sleep=self.sleep, on_retry=self.observer.retrying
        )

    def run(self) -> AttemptOutcome:
        with contextlib.ExitStack() as stack:
            lease = self.preflight.lock_state(owner=self.run_id)
            stack.callback(lease.release)
            self.commits.settle_pending(self.preflight.load_pending())
            saved = self.preflight.load_state()
            number = 1
            while True:
                attempt = Attempt(
                    self.job,
                    self.run_id,
                    number,
                    preflight=self.preflight,
                    commits=self.commits,
                    observer=self.observer,
                    ingest_date=self.ingest_date,
                    on_progress=self.on_progress,
                    partition_runner=self.partition_runner,
                )
                self.last_attempt = attempt.outcome
                try:
                    return attempt.run(saved)
                except DativoError as exc:
                    self.observer.attempt_failed(exc)
                    if not is_retryable(exc) or number >= self.retry.max_attempts:
                        raise
                    self._before_retry(number, exc)
                    number += 1
        raise AssertionError("unreachable")  # pragma: no cover

    def _before_retry(self, number: int, exc: DativoError) -> None:
        delay = self.retry.delay(number, exc)
        log.warning(
            "attempt %d of %d failed: %s; retrying from the last committed state in %.2fs",
            number,
            self.retry.max_attempts,
            exc,
            delay,
            extra={"attempt": number, "error_code": exc.error_code, "delay_s": round(delay, 3)},
        )
        self.observer.retrying(number, exc, delay)
        raise_if_requested()
        self.sleep(delay)


def _fill_success(result: RunResult, outcome: AttemptOutcome, job: JobConfig) -> None:
    result.status = RunStatus.SUCCEEDED
    result.attempts = outcome.attempts
    result.stream = outcome.stream
    result.records_read = outcome.records_read
    result.records_written = outcome.records_written
    result.records_quarantined = outcome.records_quarantined
    result.batches = outcome.batches
    result.commit = outcome.commit
    result.files = list(outcome.files.paths)
    result.bytes_written = outcome.files.bytes_written
    result.manifest = outcome.commit.get("manifest")
    result.state = outcome.state if job.source.incremental is not None else None
    result.sandbox = outcome.sandbox
    if outcome.partitions is not None:
        result.partitions = [p.to_dict() for p in outcome.partitions.values()]
    if outcome.report is not None:
        result.validation = outcome.report.to_dict()
        result.records_invalid = outcome.report.records_invalid
    if outcome.quarantine_commit:
        result.quarantine_output = job.quarantine_location()


def _fill_failure(result: RunResult, error: DativoError, last: AttemptOutcome | None) -> None:
    if last is not None:
        # What the failed attempt got through before it failed (nothing of it is committed).
        result.records_read = last.records_read
        result.batches = last.batches
        result.stream = last.stream
        result.sandbox = last.sandbox
        result.attempts = last.attempts
        if last.partitions is not None:
            result.partitions = [p.to_dict() for p in last.partitions.values()]
    result.status = RunStatus.FAILED
    result.exit_code = exit_code_for(error)
    validation = error.details.get("validation")
    if isinstance(validation, dict):
        result.validation = validation
        result.records_invalid = int(validation.get("records_invalid", 0))
    result.attempts = max(result.attempts, 1)


def _output_of(job: JobConfig) -> str | None:
    """A plugin target's output: its local folder, or the URI its ``path`` names."""
    folder = job.output_dir()
    if folder is not None:
        return str(folder)
    path = job.target.config.get("path")
    return path if isinstance(path, str) and is_remote_uri(path) else None


def _internal_error(exc: Exception) -> DativoError:
    log.debug("unexpected error", exc_info=True)
    return DativoError(
        f"internal error: {type(exc).__name__}: {exc}",
        error_code="INTERNAL_ERROR",
        details={"exception_type": type(exc).__name__},
    )


def _log_end(result: RunResult) -> None:
    if result.succeeded:
        log.info(
            "run succeeded: %d read, %d written, %d invalid, %d file(s)",
            result.records_read,
            result.records_written,
            result.records_invalid,
            len(result.files),
            extra={
                "records_read": result.records_read,
                "records_written": result.records_written,
                "duration_s": round(result.duration_s, 3),
            },
        )
    else:
        assert result.error is not None
        extra: dict[str, Any] = {"error_code": result.error.error_code, "exit_code": int(result.exit_code)}
        frames = shown_frames(result.error.details)
        if frames:
            extra["traceback"] = frames  # Where the plugin failed (every frame at debug level).
        log.error("run failed: %s", result.error.message, extra=extra)


def run_job(
    job: JobConfig,
    *,
    run_id: str | None = None,
    policy: OperatorPolicy | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    metrics: RunMetrics | None = None,
    tracing: Tracing | None = None,
    partition_runner: PartitionRunner | None = None,
) -> RunResult:
    """Run one job to completion: extract, validate, write, commit, save state.

    Never raises for a failed run: the returned :class:`RunResult` says ``failed``, holds
    the error and the exit code it maps to. A ``SystemExit`` or ``KeyboardInterrupt``
    (``SIGTERM``, Ctrl-C) aborts the run, nothing committed, is counted as ``aborted``
    and propagates.

    Args:
        job: The validated job (from :func:`load_job`).
        run_id: The run's id; a new time-ordered one by default.
        policy: The operator's sandbox policy.
        on_progress: Called after each batch with a :class:`ProgressEvent`.
        sleep: How to wait between retries (tests pass a fake).
        metrics: Where the run's Prometheus metrics go (a private registry by default).
        tracing: Where its spans go; the process's active tracing (off unless the
            ``OTEL_*`` variables ask for it) by default.
        partition_runner: Stages the job's partitions on other machines (a Dask cluster;
            see :mod:`._partition_task`); they are read on this machine by default.

    Returns:
        The run's :class:`RunResult`.
    """
    run_id = run_id or new_run_id()
    observer = RunObserver(
        (metrics or RunMetrics()).for_job(job.tenant, job.name), tracing or active_tracing()
    )
    result = RunResult(
        run_id=run_id,
        tenant=job.tenant,
        job=job.name,
        job_file=str(job.source_file) if job.source_file else None,
        started_at=utc_now_iso(),
        source=job.source.plugin,
        target=job.target.plugin,
        output=job.target_location() or _output_of(job),
    )
    mode = run_mode(job.mode, policy)
    with log_context(tenant=job.tenant, job=job.name, run_id=run_id), observer.run(result, mode) as span:
        log.info(
            "run started: %s -> %s",
            job.source.plugin,
            job.target.plugin,
            extra={"job_file": result.job_file, "mode": mode},
        )
        execution: _JobRun | None = None
        try:
            execution = _JobRun(
                job,
                run_id,
                policy=policy,
                on_progress=on_progress,
                sleep=sleep,
                observer=observer,
                partition_runner=partition_runner,
            )
            result.state_uri = execution.store.uri(job.tenant, job.name)
            outcome = execution.run()
        except DativoError as exc:
            result.error = exc
        except Exception as exc:  # A bug, here or in a library: report it, do not crash the caller.
            result.error = _internal_error(exc)
        except BaseException:
            observer.run_aborted()
            log.warning("run aborted: nothing of it was committed", extra={"status": "aborted"})
            raise
        else:
            _fill_success(result, outcome, job)
        if result.error is not None:
            _fill_failure(result, result.error, execution.last_attempt if execution is not None else None)
        result.finished_at = utc_now_iso()
        result.duration_s = observer.elapsed()
        observer.run_finished(result, span)
        _log_end(result)
    return result
