"""``dativo-run sandbox ...``: build the Docker sandbox image, diagnose which backends work here.

The commands only parse arguments; :func:`~dativo_runtime._sandbox._doctor.diagnose` and
:func:`~dativo_runtime._sandbox.docker._image.build_image` do the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from dativo_plugin_sdk import DativoError
from dativo_runtime._cli._render import render_backends, render_backends_json
from dativo_runtime._sandbox._doctor import diagnose

__all__ = ["build_image_command", "doctor_command", "sandbox_app"]

sandbox_app = typer.Typer(
    help="Sandbox backends: build the Docker image, diagnose what works here.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
ImageOption = Annotated[Optional[str], typer.Option("--image", help="Docker sandbox image to check.")]  # noqa: UP045
MeasureFlag = Annotated[
    bool, typer.Option("--measure/--no-measure", help="Run a probe plugin in each backend.")
]
BaseOption = Annotated[
    Optional[str],  # noqa: UP045  (typer reads the annotation at run time, on Python 3.10 too)
    typer.Option("--base", help="Base image with python3 and its venv module [default: python:3.11-slim]."),
]
WheelsOption = Annotated[
    Path | None, typer.Option("--wheels", help="Folder of wheels to install from first.")
]
TagOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--tag", help="Image tag [default: dativo-sandbox:<runtime version>]."),
]
RequirementsOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--requirements", help="The plugins' requirements file, installed into the image."),
]
PythonOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--python-version", help="The base image's Python X.Y [default: from a python:X.Y tag, else 3.11]."
    ),
]
OfflineFlag = Annotated[
    bool, typer.Option("--offline", help="Never download wheels: use --wheels and the local source trees.")
]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the image id.")]


@sandbox_app.command("doctor")
def doctor_command(as_json: JsonFlag = False, image: ImageOption = None, measure: MeasureFlag = True) -> None:
    """Report which sandbox backends work on this machine, why not, and their cold start.

    Exits 0 when at least one isolated backend (process or docker) works, 1 otherwise.
    """
    reports = diagnose(measure=measure, image=image)
    if as_json:
        render_backends_json(reports)
    else:
        render_backends(reports)
    if not any(r.available for r in reports if r.name != "none"):
        raise typer.Exit(1)


@sandbox_app.command("build-image")
def build_image_command(
    *,
    base: BaseOption = None,
    wheels: WheelsOption = None,
    tag: TagOption = None,
    requirements: RequirementsOption = None,
    python_version: PythonOption = None,
    offline: OfflineFlag = False,
    quiet: QuietFlag = False,
) -> None:
    """Build the Docker sandbox image from the Dockerfile the runtime ships.

    Exits 1 when the build fails, 75 when the Docker daemon cannot be reached.
    """
    from dativo_runtime._sandbox.docker._backend import DEFAULT_IMAGE
    from dativo_runtime._sandbox.docker._image import DEFAULT_BASE_IMAGE, build_image

    def echo(text: str) -> None:
        if not quiet:
            typer.echo(text, err=True)

    try:
        image_id = build_image(
            base=base or DEFAULT_BASE_IMAGE,
            tag=tag or DEFAULT_IMAGE,
            wheels=wheels,
            requirements=requirements,
            python_version=python_version,
            offline=offline,
            echo=echo,
        )
    except DativoError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(75 if exc.retryable else 1) from None
    typer.echo(image_id if quiet else f"built {tag or DEFAULT_IMAGE} ({image_id})")
