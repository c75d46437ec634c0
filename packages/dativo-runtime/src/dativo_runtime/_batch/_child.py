"""How ``serve`` runs one job: a ``dativo-run run`` child process, or a function.

:class:`SubprocessJobRunner` is the default and the robust one: each run is its own
process, so a crash, a leak or a hung plugin cannot take the server down, and aborting
a run is ``SIGTERM`` to the child, which aborts the target and exits without committing
(``SIGKILL`` to its process group if it ignores that for ``kill_after`` seconds). The
child writes its metrics with ``--metrics-file``; the scheduler adds them to its own.

:class:`CallableJobRunner` runs a function in the scheduler's worker thread; it suits
tests and embedding. A thread cannot be killed, so aborting relies on the function
watching the ``cancel`` event it may accept.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.parser import text_string_to_metric_families

from dativo_runtime._observability import RunMetrics
from dativo_runtime._secrets import REDACTOR

__all__ = [
    "COUNT_METRICS",
    "RUN_COMMAND",
    "CallableJobRunner",
    "JobFile",
    "JobRunner",
    "RunResult",
    "SubprocessJobRunner",
    "counts_from_metrics",
    "normalise_result",
    "run_recorded",
]

logger = logging.getLogger("dativo_runtime.serve")

RUN_COMMAND = (sys.executable, "-m", "dativo_runtime", "run", "--no-progress")
"""``dativo-run run`` with this interpreter: how one run starts as a child process."""

COUNT_METRICS = {
    "dativo_records_read": "records_read",
    "dativo_records_written": "records_written",
    "dativo_records_quarantined": "records_quarantined",
    "dativo_bytes_written": "bytes_written",
    "dativo_batches": "batches",
}
"""Counter families summed into a run's ``counts``, by the key they get."""

_STATUS_WORDS = {
    "success": "success",
    "succeeded": "success",
    "ok": "success",
    "completed": "success",
    "failed": "failed",
    "failure": "failed",
    "error": "failed",
    "aborted": "aborted",
    "cancelled": "aborted",
    "canceled": "aborted",
}


@dataclass
class RunResult:
    """How one run ended.

    Args:
        status: ``success``, ``failed`` or ``aborted``.
        exit_code: The ``dativo-run`` exit code (``128 + n`` when killed by signal ``n``).
        counts: ``records_read``, ``records_written``, ``records_quarantined``,
            ``bytes_written``, ``batches`` (what is known).
        error: A one-line, redacted reason when it did not succeed.
        metrics_text: The run's metrics in the Prometheus text format, to add to the
            server's (``None`` when the runner recorded them directly).
        summary: What ``dativo-run run --json`` printed (the run's result), when asked for.
    """

    status: str
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    metrics_text: str | None = None
    summary: dict[str, Any] | None = None


class JobFile(Protocol):
    """What a runner needs to know of a job: its file, tenant and name (a :class:`ScheduledJob`)."""

    @property
    def path(self) -> Path:
        """The job file."""

    @property
    def tenant(self) -> str:
        """The job's tenant."""

    @property
    def name(self) -> str:
        """The job's name."""


class JobRunner(Protocol):
    """Runs one job to the end; called from a scheduler worker thread."""

    def run(self, job: JobFile, cancel: threading.Event) -> RunResult:
        """Run ``job``; abort cleanly (nothing half-committed) soon after ``cancel`` is set."""


def run_recorded(
    runner: JobRunner, job: JobFile, cancel: threading.Event, metrics: RunMetrics
) -> tuple[RunResult, float]:
    """Run one job through ``runner`` and record it in ``metrics``.

    The run counts as in progress while it lasts; its outcome (status, duration, last
    success) is recorded here, crashes included, and the metrics the run wrote itself
    (records, bytes, stages, errors, sandboxes) are added to ``metrics``.

    Args:
        runner: Runs the job.
        job: The job.
        cancel: Set it to abort the run cleanly.
        metrics: Where the run is recorded.

    Returns:
        The run's result and its wall-clock duration in seconds.
    """
    handle = metrics.for_job(job.tenant, job.name)
    start = time.perf_counter()
    handle.run_started()
    try:
        result = runner.run(job, cancel)
    except Exception as exc:  # A runner bug must not kill the caller's loop.
        result = RunResult("failed", 1, error=REDACTOR.redact_text(f"{type(exc).__name__}: {exc}"))
        logger.exception("the runner failed on %s/%s", job.tenant, job.name)
    duration = time.perf_counter() - start
    if result.metrics_text:
        try:
            metrics.absorb(result.metrics_text)
        except ValueError:
            logger.warning("the run of %s/%s left unreadable metrics; ignored", job.tenant, job.name)
    handle.run_finished(result.status, duration)
    return result, duration


def normalise_result(value: Any) -> RunResult:
    """Turn what a run function returned into a :class:`RunResult`.

    Accepts a :class:`RunResult`, an object or mapping with ``status``/``exit_code``/
    ``counts`` (``error``, ``metrics_text`` optional; without ``counts``, attributes named
    ``records_read``, ``records_written``... as the pipeline's result has), an ``int`` exit
    code, or ``None`` (success).
    """
    if isinstance(value, RunResult):
        return value
    if value is None:
        return RunResult("success", 0)
    if isinstance(value, int) and not isinstance(value, bool):
        return RunResult("success" if value == 0 else "failed", value)

    def get(name: str) -> Any:
        return value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)

    raw_code = get("exit_code")
    exit_code = int(raw_code) if isinstance(raw_code, int) else None
    raw_status = str(get("status") or "").strip().lower()
    status = _STATUS_WORDS.get(raw_status)
    if status is None:
        status = "success" if exit_code in (0, None) else "failed"
    if exit_code is None:
        exit_code = 0 if status == "success" else 1
    counts_value = get("counts")
    if counts_value is None:
        # The pipeline's own RunResult keeps its counts as attributes.
        counts_value = {key: get(key) for key in COUNT_METRICS.values()}
    counts = {
        str(k): int(v)
        for k, v in dict(counts_value).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    error = get("error")
    return RunResult(
        status,
        exit_code,
        counts,
        None if error is None else REDACTOR.redact_text(str(error)),
        get("metrics_text"),
    )


def counts_from_metrics(text: str, *, tenant: str, job: str) -> dict[str, int]:
    """Sum a run's record, byte and batch counters (see :data:`COUNT_METRICS`) for one job.

    Args:
        text: Prometheus text exposition.
        tenant: The job's tenant.
        job: The job's name.

    Returns:
        The counts found (keys absent when the run wrote no such counter).
    """
    counts: dict[str, int] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:
        return counts
    for family in families:
        key = COUNT_METRICS.get(family.name)
        if key is None:
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_total")
                and labels.get("tenant") == tenant
                and labels.get("dativo_job") == job
            ):
                counts[key] = counts.get(key, 0) + int(sample.value)
    return counts


class CallableJobRunner:
    """Runs ``run_one(job_path)`` (or ``run_one(job_path, cancel)``) in the worker thread.

    Args:
        run_one: Runs one job file and returns its result (see :func:`normalise_result`).
            When it accepts a second argument it gets the ``cancel`` event.
    """

    def __init__(self, run_one: Callable[..., Any]) -> None:
        self._run_one = run_one
        try:
            self._takes_cancel = len(inspect.signature(run_one).parameters) >= 2
        except (TypeError, ValueError):
            self._takes_cancel = False

    def run(self, job: JobFile, cancel: threading.Event) -> RunResult:
        """Call the function; an exception becomes a ``failed`` result with a redacted message."""
        try:
            value = self._run_one(job.path, cancel) if self._takes_cancel else self._run_one(job.path)
        except Exception as exc:
            from dativo_runtime._exit_codes import exit_code_for

            return RunResult(
                "failed", int(exit_code_for(exc)), error=REDACTOR.redact_text(f"{type(exc).__name__}: {exc}")
            )
        result = normalise_result(value)
        if cancel.is_set() and result.status == "failed":
            result.status = "aborted"
        return result


class SubprocessJobRunner:
    """Runs ``<command> --config JOB --metrics-file TMP`` as a child process.

    Args:
        command: The command before ``--config``; :data:`RUN_COMMAND` (``python -m
            dativo_runtime run`` with this interpreter) by default.
        kill_after: Seconds between ``SIGTERM`` and ``SIGKILL`` once a run is cancelled.
        env: The child's environment; this process's by default.
        poll_interval: Seconds between checks of the child and the cancel event.
        json_summary: Also pass ``--json`` and keep what the child prints
            (:attr:`RunResult.summary`, and the error's message in :attr:`RunResult.error`).
    """

    def __init__(
        self,
        command: Sequence[str] = RUN_COMMAND,
        *,
        kill_after: float = 30.0,
        env: Mapping[str, str] | None = None,
        poll_interval: float = 0.1,
        json_summary: bool = False,
    ) -> None:
        if not command:
            raise ValueError("command must name a program")
        self.command = tuple(command)
        self.kill_after = kill_after
        self.env = None if env is None else dict(env)
        self.poll_interval = poll_interval
        self.json_summary = json_summary

    def check(self) -> None:
        """Readiness: raise ``RuntimeError`` if the command's program cannot be found."""
        program = self.command[0]
        if os.sep in program:
            if not os.access(program, os.X_OK):
                raise RuntimeError(f"{program} is not an executable file")
        elif shutil.which(program) is None:
            raise RuntimeError(f"{program} is not on PATH")

    def run(self, job: JobFile, cancel: threading.Event) -> RunResult:
        """Run the job in a child process; on ``cancel``, ``SIGTERM`` it, then ``SIGKILL``."""
        with tempfile.TemporaryDirectory(prefix="dativo-serve-") as folder:
            metrics_file = Path(folder) / "run.prom"
            summary_file = Path(folder) / "summary.json"
            config = str(Path(job.path).resolve())  # The child runs in the job file's folder.
            argv = [*self.command, "--config", config, "--metrics-file", str(metrics_file)]
            if self.json_summary:
                argv.append("--json")
            # A file, not a pipe: a large summary cannot block the child while nobody reads.
            with summary_file.open("wb") as stdout:
                try:
                    child = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=stdout if self.json_summary else None,
                        env=self.env,
                        start_new_session=True,
                        cwd=job.path.parent,
                    )
                except OSError as exc:
                    return RunResult("failed", 127, error=f"cannot start {argv[0]}: {exc.strerror or exc}")
                returncode = self._wait(child, cancel)
            text = None
            if metrics_file.is_file():
                text = metrics_file.read_text(encoding="utf-8", errors="replace")
            summary = _read_summary(summary_file) if self.json_summary else None
        exit_code = 128 - returncode if returncode < 0 else returncode
        counts = counts_from_metrics(text, tenant=job.tenant, job=job.name) if text else {}
        if returncode == 0:
            return RunResult("success", 0, counts, metrics_text=text, summary=summary)
        if cancel.is_set():
            return RunResult("aborted", exit_code, counts, "aborted by shutdown", text, summary)
        reason = f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        error = (summary or {}).get("error")
        if isinstance(error, Mapping) and error.get("message"):
            reason = REDACTOR.redact_text(str(error["message"]))
        return RunResult("failed", exit_code, counts, reason, text, summary)

    def _wait(self, child: subprocess.Popen[bytes], cancel: threading.Event) -> int:
        terminated_at: float | None = None
        while True:
            try:
                return child.wait(timeout=self.poll_interval)
            except subprocess.TimeoutExpired:
                pass
            if cancel.is_set() and terminated_at is None:
                terminated_at = time.monotonic()
                _signal(child, signal.SIGTERM, group=False)
            elif terminated_at is not None and time.monotonic() - terminated_at > self.kill_after:
                _signal(child, signal.SIGKILL, group=True)


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _signal(child: subprocess.Popen[bytes], signum: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(child.pid, signum)
        else:
            child.send_signal(signum)
    except (ProcessLookupError, PermissionError):
        pass
