"""How ``dativo-run`` shows what the engine returns: one renderer a report type.

People get rich tables on stdout (secrets masked), machines one JSON document
(:func:`emit_json`); errors and progress go to stderr.
"""

from dativo_runtime._cli._render._checks import render_checks, render_discovery, render_validation
from dativo_runtime._cli._render._console import console, emit_json, error_console
from dativo_runtime._cli._render._environments import (
    environment_progress,
    render_environments,
    render_install_report,
    render_prune_report,
)
from dativo_runtime._cli._render._job_files import render_committed_files, render_state, render_state_reset
from dativo_runtime._cli._render._jobs_report import render_outcome, render_summary
from dativo_runtime._cli._render._plugins import render_plugin, render_plugins
from dativo_runtime._cli._render._progress import progress_bar
from dativo_runtime._cli._render._run_result import render_run
from dativo_runtime._cli._render._sandbox import render_backends, render_backends_json

__all__ = [
    "console",
    "emit_json",
    "environment_progress",
    "error_console",
    "progress_bar",
    "render_backends",
    "render_backends_json",
    "render_checks",
    "render_committed_files",
    "render_discovery",
    "render_environments",
    "render_install_report",
    "render_outcome",
    "render_plugin",
    "render_plugins",
    "render_prune_report",
    "render_run",
    "render_state",
    "render_state_reset",
    "render_summary",
    "render_validation",
]
