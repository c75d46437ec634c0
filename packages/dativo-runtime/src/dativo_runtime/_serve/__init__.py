"""The long-running mode, ``dativo-run serve``: scheduled jobs, probes, metrics and a status API."""

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
