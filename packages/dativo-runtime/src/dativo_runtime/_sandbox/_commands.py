"""`dativo-run sandbox ...` commands (build-image, doctor), filled in by the sandbox issue."""

from __future__ import annotations

import typer

__all__ = ["sandbox_app"]

sandbox_app = typer.Typer(help="Sandbox backends: build the Docker image, diagnose what works here.", no_args_is_help=True)
