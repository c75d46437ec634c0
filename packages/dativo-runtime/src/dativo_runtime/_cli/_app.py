"""``dativo-run``: the command tree. Each command lives with its group; this module only assembles them.

=================== =========================================================
module              commands
=================== =========================================================
``_run``            ``run``
``_serve``          ``serve``
``_job_checks``     ``check``, ``validate``, ``discover``
``_job_files``      ``schema``, ``files``, ``state show``, ``state reset``
``_plugins``        ``plugins list|inspect|install|envs``
``_sandbox``        ``sandbox doctor``, ``sandbox build-image``
``_singer_tap``     ``singer-tap`` (also the ``tap-dativo`` script)
=================== =========================================================

What they print comes from :mod:`._render` (one renderer a report type); shared options
and error handling from :mod:`._options`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dativo_plugin_sdk import PLUGIN_SDK_VERSION
from dativo_runtime._cli._job_checks import check, discover, validate
from dativo_runtime._cli._job_files import files, schema, state_reset, state_show
from dativo_runtime._cli._options import EXIT_CODES_HELP
from dativo_runtime._cli._plugins import plugins_envs, plugins_inspect, plugins_install, plugins_list
from dativo_runtime._cli._run import run
from dativo_runtime._cli._sandbox import sandbox_app
from dativo_runtime._cli._serve import serve
from dativo_runtime._cli._singer_tap import singer_tap
from dativo_runtime._engine._termination import install_signal_handlers
from dativo_runtime._version import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="dativo-run",
    help="Run Dativo jobs: load plugins, move records to Parquet on disk or S3.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
plugins_app = typer.Typer(
    help="List and inspect plugins; build and prune their environments.",
    no_args_is_help=True,
    epilog=EXIT_CODES_HELP,
)
state_app = typer.Typer(
    help="Show or reset a job's incremental state.", no_args_is_help=True, epilog=EXIT_CODES_HELP
)
app.add_typer(plugins_app, name="plugins")
app.add_typer(state_app, name="state")
app.add_typer(sandbox_app, name="sandbox")

for command in (run, serve, check, validate, discover, schema, files):
    app.command(epilog=EXIT_CODES_HELP)(command)
app.command("singer-tap", epilog=EXIT_CODES_HELP)(singer_tap)
plugins_app.command("list", epilog=EXIT_CODES_HELP)(plugins_list)
plugins_app.command("inspect", epilog=EXIT_CODES_HELP)(plugins_inspect)
plugins_app.command("install", epilog=EXIT_CODES_HELP)(plugins_install)
plugins_app.command("envs", epilog=EXIT_CODES_HELP)(plugins_envs)
state_app.command("show", epilog=EXIT_CODES_HELP)(state_show)
state_app.command("reset", epilog=EXIT_CODES_HELP)(state_reset)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dativo-run {__version__} (dativo-plugin-sdk {PLUGIN_SDK_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Run Dativo jobs: load plugins, move records to Parquet on disk or S3."""


def main() -> None:
    """Entry point of the ``dativo-run`` console script."""
    # SIGTERM and Ctrl-C unwind the run (staged files discarded, leases released; exit 143
    # or 130), except during a commit, which finishes first.
    install_signal_handlers()
    app(prog_name="dativo-run")
