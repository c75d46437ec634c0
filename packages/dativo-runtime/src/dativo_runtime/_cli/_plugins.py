"""``plugins list|inspect|install|envs``: what is installed, whether it fits this SDK, its environments."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from dativo_runtime._cli._options import ConfigOption, FindLinksOption, JsonOption, errors, usage
from dativo_runtime._cli._render import (
    emit_json,
    environment_progress,
    render_environments,
    render_install_report,
    render_plugin,
    render_plugins,
    render_prune_report,
)
from dativo_runtime._exit_codes import ExitCode

if TYPE_CHECKING:
    from dativo_runtime._jobs._model import JobConfig

__all__ = ["plugins_envs", "plugins_inspect", "plugins_install", "plugins_list"]

JobDirOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--job-dir", help="Every .yaml/.yml job in this folder."),
]


def plugins_list(as_json: JsonOption = False) -> None:
    """List built-in connectors and plugins installed under the entry-point group dativo.plugins."""
    from dativo_runtime._engine._plugin_catalog import list_plugins

    with errors(as_json):
        plugins = list_plugins()
        if as_json:
            emit_json({"plugins": plugins})
            return
        render_plugins(plugins)


def plugins_inspect(
    ref: Annotated[
        str,
        typer.Argument(
            help="A built-in name, file.py:Class, pkg.mod:Class, installed name or libx.so:create_reader."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show a plugin's version, requires_sdk, compatibility with this SDK and capabilities.

    This imports the plugin's module in this process, unless the operator's policy
    (DATIVO_RUNTIME_CONFIG) says mode: cloud: then a sandbox worker imports it and reports it.
    """
    from dativo_runtime._engine._plugin_catalog import inspect_plugin

    with errors(as_json):
        data = inspect_plugin(ref)
        if as_json:
            emit_json(data)
        else:
            render_plugin(data)
    if not data["compatible"]:
        raise typer.Exit(int(ExitCode.USAGE))


def _jobs(config: Path | None, job_dir: Path | None) -> list[JobConfig]:
    """The jobs ``--config`` or ``--job-dir`` name (none when neither is given)."""
    from dativo_runtime._cli._run import job_files
    from dativo_runtime._jobs._model import load_job

    if config is not None and job_dir is not None:
        usage("give one of --config JOB.yaml or --job-dir DIR, not both")
    paths = [config] if config is not None else job_files(job_dir) if job_dir is not None else []
    return [load_job(path) for path in paths]


def plugins_install(
    *,
    config: ConfigOption = None,
    job_dir: JobDirOption = None,
    find_links: FindLinksOption = None,
    progress: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option("--progress/--no-progress", help="Show builds in progress (default: on a terminal)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Build the plugin environments of a job's source and target (or of each job of a folder).

    Each plugin gets the environment of what it declares: a requirements.txt beside a file
    plugin, an installed plugin's distribution requirements, or a singer/airbyte source's
    config.package. Environments already built are reused; `run` builds missing ones itself.
    A failing install exits 2 with uv's message.
    """
    from dativo_runtime._engine._environments import install_environments

    if config is None and job_dir is None:
        usage("give --config JOB.yaml or --job-dir DIR")
    with errors(as_json):
        jobs = _jobs(config, job_dir)
        show = bool(progress if progress is not None else sys.stderr.isatty()) and not as_json
        with environment_progress(show) as on_progress:
            report = install_environments(jobs, find_links=find_links, progress=on_progress)
        if as_json:
            emit_json(report.to_dict())
        else:
            render_install_report(report)
    if report.exit_code != ExitCode.OK:
        raise typer.Exit(int(report.exit_code))


def plugins_envs(
    *,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Remove environments unused for --older-than days and not needed by the jobs of "
            "--config/--job-dir (when given). Those being built or in use are left.",
        ),
    ] = False,
    config: ConfigOption = None,
    job_dir: JobDirOption = None,
    older_than: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--older-than",
            metavar="DAYS",
            help="With --prune: only environments whose last use is older than this (default 30; 0: any).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --prune: show, remove nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List plugin environments with their size and last use, or prune them (--prune).

    With --prune, an environment is removed when it is not needed by the jobs given with
    --config/--job-dir (any, when none is given) and was not used for --older-than days
    (default 30). `--prune --job-dir jobs/ --older-than 0` removes every environment the
    jobs of jobs/ do not need.
    """
    from dativo_runtime._engine._environments import list_environments, prune_environments

    if not prune and (config is not None or job_dir is not None or older_than is not None or dry_run):
        usage("--config, --job-dir, --older-than and --dry-run go with --prune")
    if older_than is not None and older_than < 0:
        usage(f"--older-than must be 0 or more days, not {older_than}")
    with errors(as_json):
        if not prune:
            data = list_environments()
            if as_json:
                emit_json(data)
            else:
                render_environments(data)
            return
        report = prune_environments(
            _jobs(config, job_dir), older_than_days=30 if older_than is None else older_than, dry_run=dry_run
        )
        if as_json:
            emit_json(report.to_dict())
        else:
            render_prune_report(report)
