"""Containers no runtime will stop: each is labelled with its owner and deadline, and reaped.

Each container is labelled ``io.dativo.sandbox=1`` with its owner (boot id, pid
namespace, pid and start time of the runtime) and its deadline. The first time a process
uses the backend it removes the labelled containers whose owner is gone or whose deadline
has passed (:func:`reap_leftover_containers`); a live runtime's containers are kept.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dativo_runtime._sandbox._cgroups import process_alive, process_start_ticks

__all__ = [
    "CONTAINER_LABEL",
    "DEADLINE_LABEL",
    "DEADLINE_MARGIN_S",
    "OWNER_LABELS",
    "RuntimeIdentity",
    "abandoned_because",
    "reap_leftover_containers",
    "reap_once",
]

CONTAINER_LABEL = "io.dativo.sandbox"
"""Label (value ``1``) of every sandbox container."""
OWNER_LABELS = {
    "host": f"{CONTAINER_LABEL}.owner.host",
    "boot_id": f"{CONTAINER_LABEL}.owner.boot-id",
    "pid_ns": f"{CONTAINER_LABEL}.owner.pid-ns",
    "pid": f"{CONTAINER_LABEL}.owner.pid",
    "start": f"{CONTAINER_LABEL}.owner.start",
}
"""Labels naming the runtime that owns a container (pid and start time in the owner's pid namespace)."""
DEADLINE_LABEL = f"{CONTAINER_LABEL}.deadline"
"""Label: the Unix time after which a container is surely abandoned, whoever owns it."""
DEADLINE_MARGIN_S = 60.0
"""Added to the session's timeout in the deadline label: start-up, close and removal take time too."""
_LEGACY_MIN_AGE_S = 600.0
"""A stopped container without owner labels (older runtimes) is removed once this old."""
_reaped_daemons: set[str] = set()
_reap_lock = threading.Lock()
_logger = logging.getLogger("dativo.sandbox")


@dataclass(frozen=True)
class RuntimeIdentity:
    """Who a runtime process is, as far as another runtime on the same machine can tell."""

    host: str
    boot_id: str | None
    pid_ns: str | None
    pid: int
    start: int | None

    @classmethod
    def current(cls) -> RuntimeIdentity:
        """This process."""
        try:
            boot_id: str | None = Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
        except OSError:
            boot_id = None
        try:
            pid_ns: str | None = str(os.stat("/proc/self/ns/pid").st_ino)
        except OSError:
            pid_ns = None
        pid = os.getpid()
        return cls(socket.gethostname(), boot_id, pid_ns, pid, process_start_ticks(pid))

    def labels(self) -> dict[str, str]:
        """The :data:`OWNER_LABELS` naming this runtime."""
        values = {"host": self.host, "boot_id": self.boot_id, "pid_ns": self.pid_ns}
        values.update(pid=str(self.pid), start=None if self.start is None else str(self.start))
        return {OWNER_LABELS[key]: value for key, value in values.items() if value is not None}


def abandoned_because(summary: Mapping[str, Any], me: RuntimeIdentity, now: float) -> str | None:
    """Why a labelled container (a ``docker ps`` summary) is left over, or ``None`` to keep it."""
    labels = summary.get("Labels") or {}
    try:
        deadline = float(labels[DEADLINE_LABEL])
    except (KeyError, TypeError, ValueError):
        deadline = None
    if deadline is not None and now > deadline:
        return "its deadline has passed"
    boot_id, pid_ns = labels.get(OWNER_LABELS["boot_id"]), labels.get(OWNER_LABELS["pid_ns"])
    pid, start = labels.get(OWNER_LABELS["pid"]), labels.get(OWNER_LABELS["start"])
    if pid is None or start is None:
        # Left by an older runtime that did not say who owns it: only an old, stopped one is surely abandoned.
        stopped = summary.get("State") in ("created", "exited", "dead")
        created = summary.get("Created")
        old = isinstance(created, (int, float)) and now - created > _LEGACY_MIN_AGE_S
        return "it was left stopped by an older runtime" if stopped and old else None
    if me.boot_id is None or me.pid_ns is None or (boot_id, pid_ns) != (me.boot_id, me.pid_ns):
        # Owned by a runtime on another machine or in another pid namespace: its deadline decides.
        return None
    try:
        alive = process_alive(int(pid), int(start))
    except ValueError:
        return None
    return None if alive else f"its runtime (pid {pid}) is gone"


def reap_leftover_containers(api: Any, *, now: float | None = None) -> list[str]:
    """Remove the sandbox containers whose owning runtime is gone or whose deadline has passed.

    A container whose owner runs on this machine (same boot and pid namespace) is removed when
    that process has ended; any container is removed once the deadline in its label has
    passed. A live runtime's containers (a sibling of ``--parallel``) are kept.

    Args:
        api: A ``docker.APIClient`` (``DockerClient.api``).
        now: The current Unix time (for tests).

    Returns:
        The ids of the removed containers.
    """
    me = RuntimeIdentity.current()
    now = time.time() if now is None else now
    try:
        summaries = api.containers(all=True, filters={"label": f"{CONTAINER_LABEL}=1"})
    except Exception as exc:
        _logger.warning("could not list leftover sandbox containers: %s", exc)
        return []
    removed: list[str] = []
    for summary in summaries:
        why = abandoned_because(summary, me, now)
        if why is None:
            continue
        try:
            api.remove_container(summary["Id"], force=True)
        except Exception:
            continue  # Already gone, or being removed by the daemon (auto_remove) or its owner.
        removed.append(str(summary["Id"]))
        _logger.info("removed the leftover sandbox container %s: %s", str(summary["Id"])[:12], why)
    return removed


def reap_once(api: Any) -> None:
    """Reap leftover containers the first time this process uses a given Docker daemon."""
    key = str(getattr(api, "base_url", ""))
    with _reap_lock:
        if key in _reaped_daemons:
            return
        _reaped_daemons.add(key)
    reap_leftover_containers(api)
