"""The host's worker client: which error a run ends with when the host stops a worker."""

from __future__ import annotations

from typing import Any

import pytest

from dativo_plugin_sdk import ValidationError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._transport import ExitStatus, StderrTail, WorkerTransport


class _KilledWorker(WorkerTransport):
    """A worker that ends by SIGKILL as soon as the host kills it."""

    def __init__(self) -> None:
        self.stderr = StderrTail()
        self.killed = False

    def write(self, data: Any) -> None:
        if self.killed:
            raise BrokenPipeError("worker gone")

    def flush(self) -> None:
        pass

    def readinto(self, view: memoryview) -> int:
        return 0

    def kill(self) -> None:
        self.killed = True

    def wait(self, timeout: float) -> ExitStatus | None:
        return ExitStatus(exit_code=None, signal=9) if self.killed else None

    def cleanup(self) -> None:
        pass


def test_data_the_host_refused_stays_the_runs_error_after_the_kill():
    """Regression: the credit for the previous batch raced the refusal and reported SIGKILL."""
    client = WorkerClient(
        _KilledWorker(), backend="process", ref=PluginRef.parse("csv"), limits=SandboxLimits()
    )
    refusal = ValidationError("duplicate column names: 'id'")
    client.refuse(refusal)
    with pytest.raises(ValidationError) as raised:
        client.send({"op": "credit", "n": 1})
    assert raised.value is refusal
    client.close()
