"""The long-running mode, ``dativo-run serve``: scheduled jobs, probes, metrics and a status API.

Importing the package is cheap: each name is imported on first use, so ``dativo-run run``
(which needs only :mod:`._runner`) does not pay for the HTTP app or the cron parser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_runtime._lazy_exports import lazy_exports

if TYPE_CHECKING:
    from ._app import ReadinessCheck, ServeApp, serve
    from ._jobs import ScheduledJob, load_scheduled_jobs, read_scheduled_job
    from ._readiness import NotReadyError, job_readiness_checks
    from ._runner import (
        COUNT_METRICS,
        RUN_COMMAND,
        CallableJobRunner,
        JobFile,
        JobRunner,
        RunResult,
        SubprocessJobRunner,
        counts_from_metrics,
        normalise_result,
        run_recorded,
    )
    from ._scheduler import RunRecord, Scheduler, ShutdownReport

__all__ = [
    "COUNT_METRICS",
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
    "counts_from_metrics",
    "job_readiness_checks",
    "load_scheduled_jobs",
    "normalise_result",
    "read_scheduled_job",
    "run_recorded",
    "serve",
]

_EXPORTS = {
    "COUNT_METRICS": "._runner",
    "CallableJobRunner": "._runner",
    "JobFile": "._runner",
    "JobRunner": "._runner",
    "NotReadyError": "._readiness",
    "RUN_COMMAND": "._runner",
    "ReadinessCheck": "._app",
    "RunRecord": "._scheduler",
    "RunResult": "._runner",
    "ScheduledJob": "._jobs",
    "Scheduler": "._scheduler",
    "ServeApp": "._app",
    "ShutdownReport": "._scheduler",
    "SubprocessJobRunner": "._runner",
    "counts_from_metrics": "._runner",
    "job_readiness_checks": "._readiness",
    "load_scheduled_jobs": "._jobs",
    "normalise_result": "._runner",
    "read_scheduled_job": "._jobs",
    "run_recorded": "._runner",
    "serve": "._app",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
