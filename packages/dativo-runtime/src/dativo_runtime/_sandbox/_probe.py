"""A tiny reader that ``dativo-run sandbox doctor`` runs in each backend to prove it works."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import BaseReader, ConnectionTestResult, State

__all__ = ["SandboxProbeReader"]


class SandboxProbeReader(BaseReader):
    """Reports the identity it runs with; yields one record describing the sandbox."""

    __version__ = "1.0.0"

    def check_connection(self) -> ConnectionTestResult:
        """Succeed, saying which uid the probe runs as."""
        return ConnectionTestResult(success=True, message=f"probe running as uid {os.getuid()}")

    def extract(self, state: State | None = None) -> Iterator[Any]:
        """Yield one record: uid, pid and hostname inside the sandbox."""
        yield [{"uid": os.getuid(), "pid": os.getpid(), "hostname": os.uname().nodename}]
