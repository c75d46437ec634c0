"""What every isolating backend gives the worker: its user, host name, environment and scratch space.

Bubblewrap and Docker build the sandbox differently but must hand the worker the same
world, so a plugin behaves the same under either: uid and gid 65534 (``nobody``), host
name ``dativo-sandbox``, a clean environment with one thread per numeric library, a
size-limited ``/tmp``, at most :data:`OPEN_FILES` descriptors and no core dumps, and a
CPU-time budget the worker applies with ``setrlimit`` before the plugin is imported.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

from dativo_runtime._sandbox._base import SandboxLimits

__all__ = [
    "OPEN_FILES",
    "SANDBOX_GID",
    "SANDBOX_HOSTNAME",
    "SANDBOX_UID",
    "TMP_BYTES",
    "WORKER_ENV",
    "scratch_bytes",
    "worker_rlimits",
]

SANDBOX_UID = 65534
"""The plugin's uid inside the sandbox (``nobody``)."""
SANDBOX_GID = 65534
"""The plugin's gid inside the sandbox (``nogroup``)."""
SANDBOX_HOSTNAME = "dativo-sandbox"
TMP_BYTES = 256 * 1024 * 1024
"""Size of the sandbox's ``/tmp`` (a tmpfs, counted against memory), or the disk limit if smaller."""
OPEN_FILES = 1024
"""``RLIMIT_NOFILE`` of the worker."""
WORKER_ENV: Mapping[str, str] = types.MappingProxyType(
    {
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "ARROW_DEFAULT_MEMORY_POOL": "system",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
    }
)
"""The worker's whole environment (bubblewrap adds ``PATH``; the image sets its own)."""


def scratch_bytes(limits: SandboxLimits) -> int:
    """The size of the sandbox's ``/tmp``: :data:`TMP_BYTES`, or the disk limit if smaller."""
    return min(TMP_BYTES, limits.disk_bytes or TMP_BYTES)


def worker_rlimits(cpu_seconds: int) -> dict[str, Any]:
    """The rlimits every worker applies to itself: the CPU-time budget (soft, then hard) and no core dumps.

    Args:
        cpu_seconds: The session's CPU-time budget (``cpu_seconds_budget``).

    Returns:
        The ``rlimits`` of the worker's ``hello``; a backend adds the ones it cannot set otherwise.
    """
    return {"cpu": [cpu_seconds, cpu_seconds + 1], "core": 0}
