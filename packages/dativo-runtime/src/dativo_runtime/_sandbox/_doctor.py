"""What ``dativo-run sandbox doctor`` finds out: which backends work here, and their cold start.

The command itself lives in the CLI (``_cli/_sandbox.py``); :func:`diagnose` does the
work and is importable and tested directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from dativo_plugin_sdk import DativoError

__all__ = ["PROBE_PLUGIN", "BackendReport", "diagnose"]

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
