"""A plugin with an environment under ``none``: a worker in a plain child process, without isolation.

The ``none`` backend runs plugins in the runtime's own process, which cannot take a plugin's
environment: its packages would shadow the runtime's own for the rest of the run. A plugin
with an environment therefore runs in a child process of the runtime's Python speaking the
worker protocol, exactly like a sandboxed worker (:mod:`.host._client`), but with no
namespaces, no seccomp filter and no limits: it sees what the runtime sees, plus its
environment first on ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from dativo_plugin_sdk import Column, SandboxError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import SandboxLimits, SessionMounts
from dativo_runtime._sandbox.bubblewrap._process import ProcessTransport
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._remote import RemoteReaderSession, RemoteWriterSession, open_remote_session
from dativo_runtime._worker._protocol import WORKER_MODULE

__all__ = ["open_child_session"]

_BACKEND = "none"


def open_child_session(
    role: str,
    ref: PluginRef,
    config: Mapping[str, Any],
    *,
    mounts: SessionMounts,
    schema: Sequence[Column] | None = None,
) -> RemoteReaderSession | RemoteWriterSession:
    """Start a worker for ``role`` (``reader`` or ``writer``) in a child process and return its session.

    Args:
        role: ``reader`` or ``writer``.
        ref: The plugin reference.
        config: The plugin's configuration (checked against its ``config_schema`` first).
        mounts: Its environment and package folders (nothing is mounted: the child sees the host).
        schema: A writer's columns.

    Raises:
        DativoError: The plugin's loading or construction error, or a ``SandboxError``.
    """
    started_at = time.monotonic()
    mounts = mounts.resolved(ref.ref, _BACKEND)
    try:
        process = subprocess.Popen(
            [sys.executable, "-B", "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,  # the transport kills the worker's whole process group
            env={**os.environ, "PYTHONSAFEPATH": "1"},  # as -P: the working folder is not on sys.path
        )
    except OSError as exc:
        raise SandboxError(
            f"could not start a worker process for plugin {ref.ref!r}: {exc}",
            details={"reason": "startup_failed", "backend": _BACKEND},
        ) from exc
    client = WorkerClient(
        ProcessTransport(process, None),
        backend=_BACKEND,
        ref=ref,
        limits=SandboxLimits(),  # none enforces no limits, in the child as in-process
        started_at=started_at,
    )
    session = open_remote_session(
        client, role=role, config=config, rlimits={}, schema=schema, require_seccomp=False, mounts=mounts
    )
    assert isinstance(session, (RemoteReaderSession, RemoteWriterSession))
    return session
