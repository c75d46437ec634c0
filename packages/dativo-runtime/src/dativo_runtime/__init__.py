"""Dativo runtime: the ``dativo-run`` CLI and the pipeline behind it.

Importing this package is cheap: the names below are imported on first use, so a
sandbox worker (``python -m dativo_runtime._sandbox._worker``) does not pay for typer,
pydantic or boto3.

Example:
    >>> from dativo_runtime import load_job, run_job  # doctest: +SKIP
    >>> result = run_job(load_job("examples/jobs/orders_csv_to_parquet.yaml"))  # doctest: +SKIP
    >>> result.status, result.records_written  # doctest: +SKIP
    ('succeeded', 300)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy_exports import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from ._exit_codes import ExitCode, exit_code_for
    from ._job import JobConfig, job_json_schema, load_job, parse_job
    from ._operations import (
        CheckReport,
        ValidationPlan,
        check_job,
        committed_files,
        discover_job,
        discover_plugin,
        inspect_plugin,
        list_plugins,
        validate_job,
    )
    from ._pipeline import ProgressEvent, RunResult, run_job
    from ._plugin_ref import PluginRef
    from ._retry import RetryPolicy
    from ._run_jobs import JobOutcome, JobsReport, run_jobs
    from ._state_store import JobState, StateStore
    from ._validation import BatchValidator, ValidationReport

__all__ = [
    "BatchValidator",
    "CheckReport",
    "ExitCode",
    "JobConfig",
    "JobOutcome",
    "JobState",
    "JobsReport",
    "PluginRef",
    "ProgressEvent",
    "RetryPolicy",
    "RunResult",
    "StateStore",
    "ValidationPlan",
    "ValidationReport",
    "__version__",
    "check_job",
    "committed_files",
    "discover_job",
    "discover_plugin",
    "exit_code_for",
    "inspect_plugin",
    "job_json_schema",
    "list_plugins",
    "load_job",
    "parse_job",
    "run_job",
    "run_jobs",
    "validate_job",
]

_EXPORTS = {
    "BatchValidator": "._validation",
    "CheckReport": "._operations",
    "ExitCode": "._exit_codes",
    "JobConfig": "._job",
    "JobOutcome": "._run_jobs",
    "JobState": "._state_store",
    "JobsReport": "._run_jobs",
    "PluginRef": "._plugin_ref",
    "ProgressEvent": "._pipeline",
    "RetryPolicy": "._retry",
    "RunResult": "._pipeline",
    "StateStore": "._state_store",
    "ValidationPlan": "._operations",
    "ValidationReport": "._validation",
    "check_job": "._operations",
    "committed_files": "._operations",
    "discover_job": "._operations",
    "discover_plugin": "._operations",
    "exit_code_for": "._exit_codes",
    "inspect_plugin": "._operations",
    "job_json_schema": "._job",
    "list_plugins": "._operations",
    "load_job": "._job",
    "parse_job": "._job",
    "run_job": "._pipeline",
    "run_jobs": "._run_jobs",
    "validate_job": "._operations",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
