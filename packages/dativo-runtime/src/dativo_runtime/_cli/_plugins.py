"""``plugins list`` and ``plugins inspect``: what is installed, and whether a plugin fits this SDK."""

from __future__ import annotations

from typing import Annotated

import typer

from dativo_runtime._cli._options import JsonOption, errors
from dativo_runtime._cli._render import emit_json, render_plugin, render_plugins
from dativo_runtime._exit_codes import ExitCode

__all__ = ["plugins_inspect", "plugins_list"]


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

    This imports the plugin's module in this process: for untrusted code use
    `dativo-run discover --plugin REF --sandbox process`, which reports the same from a sandbox worker.
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
