"""``schema``, ``files`` and ``state show|reset``: a job's file format, what it committed, its saved state."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._cli._options import ConfigOption, JsonOption, errors, load
from dativo_runtime._cli._render import emit_json, render_committed_files, render_state, render_state_reset
from dativo_runtime._exit_codes import ExitCode
from dativo_runtime._jobs._model import job_json_schema

__all__ = ["files", "schema", "state_reset", "state_show"]


def schema(
    plugin: Annotated[
        str | None,
        typer.Option(
            "--plugin",
            help="Embed this plugin's config_schema at source.config (a reader) or target.config (a "
            "writer), for editor completion. Imports the plugin's module in this process (in a "
            "sandbox worker when the operator's policy says mode: cloud).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the JSON Schema of job files (for editors and linters); always JSON."""
    if plugin is None:
        sys.stdout.write(json.dumps(job_json_schema(), indent=2) + "\n")
        return
    from dativo_runtime._engine._plugin_catalog import plugin_job_schema

    with errors(as_json):
        data = plugin_job_schema(plugin)
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def files(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the files committed to the job's parquet target, from its run manifests."""
    from dativo_runtime._engine._committed_files import committed_files

    with errors(as_json):
        data = committed_files(load(config))
        if as_json:
            emit_json(data)
            return
        render_committed_files(data)


def state_show(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the job's saved incremental state."""
    from dativo_runtime._storage._state_store import StateStore

    with errors(as_json):
        job = load(config)
        store = StateStore(job.state_location(), job.state_storage_options())
        data = {"uri": store.uri(job.tenant, job.name), **store.load(job.tenant, job.name).to_dict()}
        if as_json:
            emit_json(data)
        else:
            render_state(data)


def state_reset(
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Forget the job's state so that its next run reads everything again."""
    from dativo_runtime._storage._state_store import StateStore

    with errors(as_json):
        job = load(config)
        store = StateStore(job.state_location(), job.state_storage_options())
        if not yes:
            if as_json or not sys.stdin.isatty():
                raise ConfigurationError(
                    f"state reset of {job.job_id} needs confirmation: pass --yes when running "
                    "without a terminal or with --json"
                )
            if not typer.confirm(f"forget the state of {job.job_id}?", err=True):
                raise typer.Exit(int(ExitCode.FAILURE))
        lease = store.lock(job.tenant, job.name, owner="state-reset")
        try:
            store.reset(job.tenant, job.name)
        finally:
            lease.release()
        if as_json:
            emit_json({"ok": True, "uri": store.uri(job.tenant, job.name)})
        else:
            render_state_reset(job.job_id, store.uri(job.tenant, job.name))
