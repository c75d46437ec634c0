"""How ``serve`` runs one job: a ``dativo-run run`` child process, or a function.

:class:`SubprocessJobRunner` is the default and the robust one: each run is its own
process, so a crash, a leak or a hung plugin cannot take the server down, and aborting
a run is ``SIGTERM`` to the child, which aborts the target and exits without committing
(``SIGKILL`` to its process group if it ignores that for ``kill_after`` seconds). The
child writes its metrics with ``--metrics-file`` (the caller adds them to its own) and its
:class:`RunResult` with ``--result-file``, read back with :meth:`RunResult.from_dict`:
the counts come from there, never from the metrics text. ``run --job-dir --parallel``
starts its children the same way.

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
from pathlib import Path
from typing import Any, Protocol

from dativo_plugin_sdk import DativoError
from dativo_runtime._engine._outcome import RunResult, RunStatus
from dativo_runtime._exit_codes import ExitCode, exit_code_for
from dativo_runtime._observability import RunMetrics
from dativo_runtime._secrets import REDACTOR

__all__ = [
    "RUN_COMMAND",
    "CallableJobRunner",
    "JobFile",
    "JobRunner",
    "SubprocessJobRunner",
    "normalise_result",
    "run_recorded",
]

logger = logging.getLogger("dativo.serve")

RUN_COMMAND = (sys.executable, "-m", "dativo_runtime", "run", "--no-progress")
"""``dativo-run run`` with this interpreter: how one run starts as a child process."""

RESULT_FILE_OPTION = "--result-file"
"""The (hidden) ``run`` option a child writes its :meth:`RunResult.to_record` to."""


def _failed(job: JobFile, message: str, exit_code: int, *, status: RunStatus = RunStatus.FAILED) -> RunResult:
    """The result of a run that left none of its own (it crashed, was killed or could not start)."""
    return RunResult(
        tenant=job.tenant,
        job=job.name,
        job_file=str(job.path),
        status=status,
        exit_code=exit_code,
        error=DativoError(REDACTOR.redact_text(message), error_code="RUN_FAILED"),
    )


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
        result = _failed(job, f"{type(exc).__name__}: {exc}", int(ExitCode.FAILURE))
        logger.exception("the runner failed on %s/%s", job.tenant, job.name)
    duration = time.perf_counter() - start
    if result.status is RunStatus.RUNNING:  # A runner bug: a run that returned has ended.
        result.status = RunStatus.FAILED
    if result.metrics_text:
        try:
            metrics.absorb(result.metrics_text)
        except ValueError:
            logger.warning("the run of %s/%s left unreadable metrics; ignored", job.tenant, job.name)
    handle.run_finished(result.status.label, duration)
    return result, duration


def normalise_result(value: Any, job: JobFile | None = None) -> RunResult:
    """Turn what a run function returned into a :class:`RunResult`.

    Accepts a :class:`RunResult`, a mapping :meth:`RunResult.from_dict` reads (its
    ``status`` either spelling: ``succeeded`` or ``success``; without one, the exit code
    decides), an ``int`` exit code, or ``None`` (success).

    Args:
        value: What the function returned.
        job: The job it ran, to name the result by.
    """
    if isinstance(value, RunResult):
        result = value
    elif isinstance(value, Mapping):
        data = dict(value)
        try:
            RunStatus.parse(str(data.get("status")))
        except ValueError:
            code = data.get("exit_code")
            ok = code in (0, None)
            data["status"] = RunStatus.SUCCEEDED.value if ok else RunStatus.FAILED.value
        result = RunResult.from_dict(data)
        if "exit_code" not in data:
            result.exit_code = int(ExitCode.OK if result.succeeded else ExitCode.FAILURE)
    elif isinstance(value, int) and not isinstance(value, bool):
        result = RunResult(status=RunStatus.SUCCEEDED if value == 0 else RunStatus.FAILED, exit_code=value)
    elif value is None:
        result = RunResult(status=RunStatus.SUCCEEDED, exit_code=int(ExitCode.OK))
    else:
        raise TypeError(
            f"a run function returned {type(value).__name__}, not a RunResult, mapping or exit code"
        )
    if job is not None:
        result.tenant = result.tenant or job.tenant
        result.job = result.job or job.name
    return result


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
            return _failed(job, f"{type(exc).__name__}: {exc}", int(exit_code_for(exc)))
        result = normalise_result(value, job)
        if cancel.is_set() and result.status is RunStatus.FAILED:
            result.status = RunStatus.ABORTED
        return result


class SubprocessJobRunner:
    """Runs ``<command> --config JOB --metrics-file TMP --result-file TMP`` as a child process.

    The child writes its metrics and its :class:`RunResult` (:meth:`RunResult.to_record`)
    to the two files; the result is read back with :meth:`RunResult.from_dict`.

    Args:
        command: The command before ``--config``; :data:`RUN_COMMAND` (``python -m
            dativo_runtime run`` with this interpreter) by default.
        kill_after: Seconds between ``SIGTERM`` and ``SIGKILL`` once a run is cancelled.
        env: The child's environment; this process's by default.
        poll_interval: Seconds between checks of the child and the cancel event.
        json_summary: Also pass ``--json`` (the child prints its summary as JSON, not for
            people), and keep that output off this process's stdout.
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
        with tempfile.TemporaryDirectory(prefix="dativo-run-") as folder:
            metrics_file = Path(folder) / "run.prom"
            result_file = Path(folder) / "result.json"
            config = str(Path(job.path).resolve())  # The child runs in the job file's folder.
            argv = [*self.command, "--config", config, "--metrics-file", str(metrics_file)]
            argv += [RESULT_FILE_OPTION, str(result_file)]
            if self.json_summary:
                argv.append("--json")
            try:
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL if self.json_summary else None,
                    env=self.env,
                    start_new_session=True,
                    cwd=job.path.parent,
                )
            except OSError as exc:
                return _failed(job, f"cannot start {argv[0]}: {exc.strerror or exc}", 127)
            returncode = self._wait(child, cancel)
            text = None
            if metrics_file.is_file():
                text = metrics_file.read_text(encoding="utf-8", errors="replace")
            result = _read_result(result_file)
        exit_code = 128 - returncode if returncode < 0 else returncode
        if result is None:
            if returncode == 0:
                result = RunResult(
                    tenant=job.tenant, job=job.name, job_file=str(job.path), status=RunStatus.SUCCEEDED
                )
            else:
                reason = (
                    f"killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
                )
                result = _failed(job, reason, exit_code)
        result.exit_code = exit_code
        if returncode != 0 and cancel.is_set():
            result.status = RunStatus.ABORTED
            result.error = DativoError("aborted by shutdown", error_code="RUN_FAILED")
        elif returncode != 0 and result.succeeded:
            result.status = RunStatus.FAILED
        result.metrics_text = text
        return result

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


def _read_result(path: Path) -> RunResult | None:
    """The result a child wrote, or ``None`` when it wrote none (or something unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunResult.from_dict(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def _signal(child: subprocess.Popen[bytes], signum: signal.Signals, *, group: bool) -> None:
    try:
        if group:
            os.killpg(child.pid, signum)
        else:
            child.send_signal(signum)
    except (ProcessLookupError, PermissionError):
        pass
