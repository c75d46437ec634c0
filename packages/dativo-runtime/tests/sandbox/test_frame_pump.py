"""The extract's frame pump: closing a session never waits for an item another thread took."""

from __future__ import annotations

import threading
import time
import types
from typing import Any

from dativo_plugin_sdk import SandboxError
from dativo_runtime._sandbox.host._remote import _FramePump


class _DyingClient:
    """A worker client whose worker dies once ``die`` is set: ``receive`` raises its SandboxError."""

    data_limit = 1 << 20

    def __init__(self) -> None:
        self.die = threading.Event()
        self.transport = types.SimpleNamespace(readinto=lambda view: 0)

    def receive(self) -> dict[str, Any]:
        self.die.wait()
        raise SandboxError("the worker was killed", details={"reason": "crash"})


def test_drain_returns_when_an_abandoned_consumer_takes_the_last_item() -> None:
    client = _DyingClient()
    pump = _FramePump(client, window=8)  # type: ignore[arg-type]
    pump.start()
    raised: list[BaseException] = []

    def consume() -> None:  # A check thread abandoned after its time limit, still waiting.
        try:
            pump.next()
        except SandboxError as exc:
            raised.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    time.sleep(0.3)  # The consumer waits first, so it is woken first.
    closer = threading.Thread(target=pump.drain, daemon=True)
    closer.start()
    time.sleep(0.3)
    client.die.set()  # The session is closed: its worker is killed, the pump posts one item.
    consumer.join(5)
    closer.join(5)
    assert raised
    assert "killed" in str(raised[0])
    assert not closer.is_alive(), "drain waited for an item the consumer had already taken"
    assert pump.done


def test_drain_alone_takes_the_last_item() -> None:
    client = _DyingClient()
    pump = _FramePump(client, window=8)  # type: ignore[arg-type]
    pump.start()
    client.die.set()
    closer = threading.Thread(target=pump.drain, daemon=True)
    closer.start()
    closer.join(5)
    assert not closer.is_alive()
    assert pump.done
