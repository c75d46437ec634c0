"""``dativo-run sandbox ...``: build the Docker sandbox image, diagnose which backends work here.

The Typer commands only parse arguments; :func:`diagnose` and
:func:`~._docker_image.build_image` do the work and are importable and tested directly.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dativo_plugin_sdk import DativoError

__all__ = ["BackendReport", "diagnose", "sandbox_app"]

sandbox_app = typer.Typer(
    help="Sandbox backends: build the Docker image, diagnose what works here.", no_args_is_help=True
)

PROBE_PLUGIN = "dativo_runtime._sandbox._probe:SandboxProbeReader"


@dataclass
class BackendReport:
    """What ``doctor`` found out about one backend.

    Args:
        name: ``process``, ``docker`` or ``none``.
        available: Whether the backend can run plugins here.
        detail: Version and configuration when available, else why not and how to fix it.
        cold_start_s: Seconds from starting a sandbox to the worker's handshake (measured).
        probe_s: Seconds for a whole probe run: start, check, extract one record, close.
        error: What went wrong when the backend looked available but the probe run failed.
    """

    name: str
    available: bool
    detail: str
    cold_start_s: float | None = None
    probe_s: float | None = None
    error: str | None = None


def _probe(backend: Any) -> tuple[float | None, float]:
    from dativo_runtime._plugins._ref import PluginRef
    from dativo_runtime._sandbox._base import SandboxLimits

    began = time.monotonic()
    session = backend.open_reader(
        PluginRef.parse(PROBE_PLUGIN), {}, limits=SandboxLimits(memory_bytes=256 << 20, timeout_s=60)
    )
    try:
        startup = getattr(session, "startup_seconds", None)
        session.check_connection()
        for _ in session.extract():
            pass
    finally:
        session.close()
    return startup, time.monotonic() - began


def diagnose(*, measure: bool = True, image: str | None = None) -> list[BackendReport]:
    """Check each backend on this machine and, if asked, measure its cold start with a probe plugin.

    Args:
        measure: Run the probe plugin in each available backend.
        image: The Docker sandbox image to check (the default image otherwise).

    Returns:
        One report per backend: ``process``, ``docker``, ``none``.
    """
    from dativo_runtime._sandbox.bubblewrap._backend import BubblewrapSandbox
    from dativo_runtime._sandbox.docker._backend import DEFAULT_IMAGE, DockerSandbox

    reports = []
    candidates: list[tuple[str, Any, tuple[bool, str]]] = [
        ("process", BubblewrapSandbox, BubblewrapSandbox.availability()),
        ("docker", DockerSandbox, DockerSandbox.image_availability(image or DEFAULT_IMAGE)),
    ]
    for name, backend_cls, (available, detail) in candidates:
        report = BackendReport(name=name, available=available, detail=detail)
        if available and measure:
            backend = backend_cls(image=image or DEFAULT_IMAGE) if name == "docker" else backend_cls()
            try:
                report.cold_start_s, report.probe_s = _probe(backend)
            except DativoError as exc:
                report.available = False
                report.error = f"{type(exc).__name__}: {exc}"
        reports.append(report)
    reports.append(
        BackendReport(
            name="none",
            available=True,
            detail="in-process: self_hosted mode only, when the job or operator asks for it; no isolation",
        )
    )
    return reports


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
        document = {
            "machine": platform.machine(),
            "kernel": platform.release(),
            "backends": [asdict(r) for r in reports],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        for report in reports:
            mark = "ok " if report.available else "no "
            line = f"{mark} {report.name:8} {report.detail}"
            if report.cold_start_s is not None:
                line += f" | cold start {report.cold_start_s:.3f} s, probe run {report.probe_s:.3f} s"
            typer.echo(line)
            if report.error:
                typer.echo(f"    probe failed: {report.error}")
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
