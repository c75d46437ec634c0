"""The ``dativo-run`` command line: a thin layer of typer commands over the engine's functions.

The top layer of the runtime: it parses options, calls the layers below and renders what
they return; no run logic lives here.
"""

from dativo_runtime._cli._app import app, main
from dativo_runtime._cli._singer_tap import tap_main

__all__ = ["app", "main", "tap_main"]
