"""Dativo runtime: the ``dativo-run`` CLI and the pipeline behind it.

Importing this package is cheap: the names below are imported on first use, so a
sandbox worker (``python -m dativo_runtime._worker._main``) does not pay for typer,
pydantic or boto3.

Example:
    >>> from dativo_runtime import load_job, run_job  # doctest: +SKIP
    >>> result = run_job(load_job("examples/jobs/orders_csv_to_parquet.yaml"))  # doctest: +SKIP
    >>> result.status, result.records_written  # doctest: +SKIP
    ('succeeded', 300)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_runtime._lazy_exports import lazy_exports
from dativo_runtime._version import __version__

if TYPE_CHECKING:
    from dativo_runtime._batch._runner import JobOutcome, JobsReport, run_jobs
    from dativo_runtime._engine._operations import (
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
    from dativo_runtime._engine._pipeline import ProgressEvent, RunResult, run_job
    from dativo_runtime._engine._retry import RetryPolicy
    from dativo_runtime._engine._validation import BatchValidator, ValidationReport
    from dativo_runtime._exit_codes import ExitCode, exit_code_for
    from dativo_runtime._jobs._model import JobConfig, job_json_schema, load_job, parse_job
    from dativo_runtime._plugins._ref import PluginRef
    from dativo_runtime._storage._state_store import JobState, StateStore

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
    "BatchValidator": "._engine._validation",
    "CheckReport": "._engine._operations",
    "ExitCode": "._exit_codes",
    "JobConfig": "._jobs._model",
    "JobOutcome": "._batch._runner",
    "JobState": "._storage._state_store",
    "JobsReport": "._batch._runner",
    "PluginRef": "._plugins._ref",
    "ProgressEvent": "._engine._pipeline",
    "RetryPolicy": "._engine._retry",
    "RunResult": "._engine._pipeline",
    "StateStore": "._storage._state_store",
    "ValidationPlan": "._engine._operations",
    "ValidationReport": "._engine._validation",
    "check_job": "._engine._operations",
    "committed_files": "._engine._operations",
    "discover_job": "._engine._operations",
    "discover_plugin": "._engine._operations",
    "exit_code_for": "._exit_codes",
    "inspect_plugin": "._engine._operations",
    "job_json_schema": "._jobs._model",
    "list_plugins": "._engine._operations",
    "load_job": "._jobs._model",
    "parse_job": "._jobs._model",
    "run_job": "._engine._pipeline",
    "run_jobs": "._batch._runner",
    "validate_job": "._engine._operations",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
