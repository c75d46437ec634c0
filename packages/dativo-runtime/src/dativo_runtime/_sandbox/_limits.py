"""The resource limits of a sandbox session: defaults, the operator's ceilings, derived budgets."""

from __future__ import annotations

import math
from typing import Any

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._sandbox._base import SandboxLimits

__all__ = [
    "DEFAULT_CPU",
    "DEFAULT_DISK_BYTES",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_PIDS",
    "DEFAULT_TIMEOUT_S",
    "check_ceilings",
    "cpu_seconds_budget",
    "effective_limits",
    "format_bytes",
]

DEFAULT_CPU = 1.0
DEFAULT_MEMORY_BYTES = 1 << 30
DEFAULT_TIMEOUT_S = 3600.0
DEFAULT_PIDS = 128
DEFAULT_DISK_BYTES = 10 << 30


def check_ceilings(
    limits: SandboxLimits, ceilings: SandboxLimits, *, where: str = "the operator's policy"
) -> None:
    """Refuse limits above the operator's ceilings (``None`` in ``ceilings``: no ceiling).

    Raises:
        ConfigurationError: Naming the job's value and the ceiling.
    """
    checks: list[tuple[str, Any, Any, str]] = [
        ("cpu", limits.cpu, ceilings.cpu, "cores"),
        ("memory", limits.memory_bytes, ceilings.memory_bytes, "bytes"),
        ("timeout", limits.timeout_s, ceilings.timeout_s, "seconds"),
        ("pids", limits.pids, ceilings.pids, "processes"),
        ("disk", limits.disk_bytes, ceilings.disk_bytes, "bytes"),
    ]
    for name, value, ceiling, unit in checks:
        if value is not None and ceiling is not None and value > ceiling:
            in_bytes = unit == "bytes"
            shown = f"{value:g} {unit}" if not in_bytes else f"{value} bytes ({format_bytes(value)})"
            top = f"{ceiling:g} {unit}" if not in_bytes else f"{ceiling} bytes ({format_bytes(ceiling)})"
            raise ConfigurationError(
                f"the job's sandbox.{name} is {shown}, above the ceiling of {top} set by {where}; "
                f"lower sandbox.{name} to at most that",
                details={"setting": f"sandbox.{name}", "requested": value, "ceiling": ceiling},
            )
    if limits.network and not ceilings.network:
        raise ConfigurationError(
            f"the job asks for network egress (sandbox.network: true) but {where} forbids it; remove "
            "sandbox.network or ask the operator to allow egress",
            details={"setting": "sandbox.network"},
        )


def effective_limits(limits: SandboxLimits, ceilings: SandboxLimits | None = None) -> SandboxLimits:
    """Check ``limits`` against the ceilings and fill unset ones with the defaults, capped by the ceilings.

    Defaults: 1 CPU, 1 GiB, 1 hour, 128 processes, 10 GiB of disk, no network.

    Raises:
        ConfigurationError: If a limit is above its ceiling.
    """
    if ceilings is not None:
        check_ceilings(limits, ceilings)

    def pick(value: Any, default: Any, ceiling: Any) -> Any:
        if value is not None:
            return value
        return default if ceiling is None else min(default, ceiling)

    top = ceilings or SandboxLimits()
    return SandboxLimits(
        cpu=pick(limits.cpu, DEFAULT_CPU, top.cpu),
        memory_bytes=pick(limits.memory_bytes, DEFAULT_MEMORY_BYTES, top.memory_bytes),
        timeout_s=pick(limits.timeout_s, DEFAULT_TIMEOUT_S, top.timeout_s),
        pids=pick(limits.pids, DEFAULT_PIDS, top.pids),
        network=limits.network,
        disk_bytes=pick(limits.disk_bytes, DEFAULT_DISK_BYTES, top.disk_bytes),
    )


def cpu_seconds_budget(limits: SandboxLimits) -> int:
    """The CPU-time budget (``RLIMIT_CPU``) of a session: its cores times its wall-clock timeout."""
    return max(1, math.ceil((limits.cpu or DEFAULT_CPU) * (limits.timeout_s or DEFAULT_TIMEOUT_S)))


def format_bytes(size: int) -> str:
    """Render a byte count the way limits are written (``256 MiB``)."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"
