"""The long-running mode, ``dativo-run serve``: scheduled jobs, probes, metrics and a status API.

Importing the package is cheap: each name is imported on first use, so ``dativo-run run``
(which needs none of it) does not pay for the HTTP app or the cron parser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_runtime._lazy_exports import lazy_exports

if TYPE_CHECKING:
    from dativo_runtime._batch._child import (
        RUN_COMMAND,
        CallableJobRunner,
        JobFile,
        JobRunner,
        SubprocessJobRunner,
        normalise_result,
        run_recorded,
    )
    from dativo_runtime._engine._outcome import RunResult
    from dativo_runtime._serve._app import ReadinessCheck, ServeApp, serve
    from dativo_runtime._serve._jobs import ScheduledJob, load_scheduled_jobs, read_scheduled_job
    from dativo_runtime._serve._readiness import NotReadyError, job_readiness_checks
    from dativo_runtime._serve._scheduler import RunRecord, Scheduler, ShutdownReport

__all__ = [
    "RUN_COMMAND",
    "CallableJobRunner",
    "JobFile",
    "JobRunner",
    "NotReadyError",
    "ReadinessCheck",
    "RunRecord",
    "RunResult",
    "ScheduledJob",
    "Scheduler",
    "ServeApp",
    "ShutdownReport",
    "SubprocessJobRunner",
    "job_readiness_checks",
    "load_scheduled_jobs",
    "normalise_result",
    "read_scheduled_job",
    "run_recorded",
    "serve",
]

_EXPORTS = {
    "CallableJobRunner": "dativo_runtime._batch._child",
    "JobFile": "dativo_runtime._batch._child",
    "JobRunner": "dativo_runtime._batch._child",
    "NotReadyError": "._readiness",
    "RUN_COMMAND": "dativo_runtime._batch._child",
    "ReadinessCheck": "._app",
    "RunRecord": "._scheduler",
    "RunResult": "dativo_runtime._engine._outcome",
    "ScheduledJob": "._jobs",
    "Scheduler": "._scheduler",
    "ServeApp": "._app",
    "ShutdownReport": "._scheduler",
    "SubprocessJobRunner": "dativo_runtime._batch._child",
    "job_readiness_checks": "._readiness",
    "load_scheduled_jobs": "._jobs",
    "normalise_result": "dativo_runtime._batch._child",
    "read_scheduled_job": "._jobs",
    "run_recorded": "dativo_runtime._batch._child",
    "serve": "._app",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
