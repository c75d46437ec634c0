"""The long-running mode, ``dativo-run serve``: scheduled jobs, probes, metrics and a status API."""

from ._app import ReadinessCheck, ServeApp, serve
from ._jobs import ScheduledJob, load_scheduled_jobs, read_scheduled_job
from ._runner import (
    COUNT_METRICS,
    CallableJobRunner,
    JobRunner,
    RunResult,
    SubprocessJobRunner,
    counts_from_metrics,
    normalise_result,
)
from ._scheduler import RunRecord, Scheduler, ShutdownReport

__all__ = [
    "COUNT_METRICS",
    "CallableJobRunner",
    "JobRunner",
    "ReadinessCheck",
    "RunRecord",
    "RunResult",
    "ScheduledJob",
    "Scheduler",
    "ServeApp",
    "ShutdownReport",
    "SubprocessJobRunner",
    "counts_from_metrics",
    "load_scheduled_jobs",
    "normalise_result",
    "read_scheduled_job",
    "serve",
]
