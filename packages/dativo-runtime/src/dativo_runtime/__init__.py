"""Dativo runtime: the ``dativo-run`` CLI and the pipeline behind it.

Importing this package is cheap: the names below are imported on first use, so a
sandbox worker (``python -m dativo_runtime._worker._main``) does not pay for typer,
pydantic or boto3.

Example:
    >>> from dativo_runtime import load_job, run_job  # doctest: +SKIP
    >>> result = run_job(load_job("examples/jobs/orders_csv_to_parquet.yaml"))  # doctest: +SKIP
    >>> result.status.value, result.records_written  # doctest: +SKIP
    ('succeeded', 300)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_runtime._lazy_exports import lazy_exports
from dativo_runtime._version import __version__

if TYPE_CHECKING:
    from dativo_runtime._batch._runner import JobOutcome, JobsReport, run_jobs
    from dativo_runtime._engine._attempt import ProgressEvent
    from dativo_runtime._engine._checks import CheckReport, check_job
    from dativo_runtime._engine._committed_files import committed_files
    from dativo_runtime._engine._discovery import discover_job, discover_plugin
    from dativo_runtime._engine._outcome import RunResult, RunStatus
    from dativo_runtime._engine._plugin_catalog import inspect_plugin, list_plugins
    from dativo_runtime._engine._retry import RetryPolicy
    from dativo_runtime._engine._run import run_job
    from dativo_runtime._engine._validation import BatchValidator, ValidationReport
    from dativo_runtime._engine._validation_plan import ValidationPlan, validate_job
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
    "RunStatus",
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
    "CheckReport": "._engine._checks",
    "ExitCode": "._exit_codes",
    "JobConfig": "._jobs._model",
    "JobOutcome": "._batch._runner",
    "JobState": "._storage._state_store",
    "JobsReport": "._batch._runner",
    "PluginRef": "._plugins._ref",
    "ProgressEvent": "._engine._attempt",
    "RetryPolicy": "._engine._retry",
    "RunResult": "._engine._outcome",
    "RunStatus": "._engine._outcome",
    "StateStore": "._storage._state_store",
    "ValidationPlan": "._engine._validation_plan",
    "ValidationReport": "._engine._validation",
    "check_job": "._engine._checks",
    "committed_files": "._engine._committed_files",
    "discover_job": "._engine._discovery",
    "discover_plugin": "._engine._discovery",
    "exit_code_for": "._exit_codes",
    "inspect_plugin": "._engine._plugin_catalog",
    "job_json_schema": "._jobs._model",
    "list_plugins": "._engine._plugin_catalog",
    "load_job": "._jobs._model",
    "parse_job": "._jobs._model",
    "run_job": "._engine._run",
    "run_jobs": "._batch._runner",
    "validate_job": "._engine._validation_plan",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
