"""The transport of a Docker worker: the container's attach socket and the daemon's events for it.

Containers are started with ``auto_remove`` (the daemon removes one as soon as it
stops), so how one ended, exit status and OOM kill, is learnt from the daemon's event
stream, subscribed before the start.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import Any

from dativo_runtime._sandbox.host._transport import ExitStatus, StderrTail, WorkerTransport

__all__ = ["ContainerEvents", "ContainerTransport"]

_STREAM_HEADER = struct.Struct(">BxxxL")
_STDERR = 2
_LATE_EVENT_S = 1.0
_REMOVAL_WAIT_S = 10.0


class ContainerEvents:
    """The daemon's events for one container, read on a thread: how it ended and when it was removed.

    Subscribed before the container starts (and replaying the daemon's recent events), so no
    event is missed: with ``auto_remove`` the container may be gone before anyone could
    inspect it.
    """

    def __init__(self, api: Any, container_id: str) -> None:
        # since=1 replays the daemon's buffered events of this container: none is lost to the
        # moment between the daemon answering this request and subscribing it.
        self._stream = api.events(
            filters={"type": "container", "container": container_id}, since=1, decode=True
        )
        self.exit_code: int | None = None
        self.oom_killed = False
        self.died = threading.Event()
        """Set when the container died, or when the stream ended without saying so."""
        self.removed = threading.Event()
        """Set when the daemon removed the container, or when the stream ended."""
        self.saw_removal = False
        self._thread = threading.Thread(target=self._read, name="dativo-docker-events", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                action = event.get("Action") or event.get("status")
                if action == "oom":
                    self.oom_killed = True
                elif action == "die":
                    attributes = (event.get("Actor") or {}).get("Attributes") or {}
                    with contextlib.suppress(KeyError, TypeError, ValueError):
                        self.exit_code = int(attributes["exitCode"])
                    self.died.set()
                elif action == "destroy":
                    self.saw_removal = True
                    return
        except Exception:
            pass  # The stream was closed (cleanup) or broke off; wait() falls back to inspecting.
        finally:
            self.died.set()
            self.removed.set()
            # The stream's generator never closes its HTTP response: close it (and its socket) here.
            response = getattr(self._stream, "_response", None)
            with contextlib.suppress(Exception):
                if response is not None:
                    response.close()

    def close(self) -> None:
        """Stop reading events (unblocking the thread) and release the connection."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._stream.close()
        self._thread.join(timeout=2.0)


class ContainerTransport(WorkerTransport):
    """A started container: its attach socket (stdin in, multiplexed stdout/stderr out)."""

    def __init__(self, api: Any, container_id: str, attach: Any, events: ContainerEvents) -> None:
        self.api = api
        self.container_id = container_id
        self._attach = attach
        self._socket: socket.socket = getattr(attach, "_sock", attach)
        self._events = events
        self.stderr = StderrTail()
        self._remaining = 0
        self._status: ExitStatus | None = None
        self._cleaned = False

    def _recv_exact(self, size: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._socket.recv(size - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    def write(self, data: Any) -> None:
        self._socket.sendall(data)

    def flush(self) -> None:
        pass

    def readinto(self, view: memoryview) -> int:
        while self._remaining == 0:
            header = self._recv_exact(_STREAM_HEADER.size)
            if header is None:
                return 0
            stream, size = _STREAM_HEADER.unpack(header)
            if stream == _STDERR:
                data = self._recv_exact(size)
                if data is None:
                    return 0
                self.stderr.feed(data)
                continue
            self._remaining = size
        count = self._socket.recv_into(view, min(len(view), self._remaining))
        self._remaining -= count
        return count

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.api.kill(self.container_id)

    def wait(self, timeout: float) -> ExitStatus | None:
        if self._status is not None:
            return self._status
        events = self._events
        if not events.died.wait(timeout):
            return None
        if events.exit_code is None:
            return self._inspected_status()
        # The daemon reports an OOM kill before the death; waiting for the removal (which
        # follows at once) lets a late report still count.
        events.removed.wait(_LATE_EVENT_S)
        self._status = ExitStatus(exit_code=events.exit_code, oom_killed=events.oom_killed)
        return self._status

    def _inspected_status(self) -> ExitStatus | None:
        """How the container ended, asked of the daemon (when the event stream broke off)."""
        try:
            result = self.api.wait(self.container_id, timeout=10)
            state = self.api.inspect_container(self.container_id)["State"]
        except Exception:
            return None
        code = result.get("StatusCode", state.get("ExitCode"))
        self._status = ExitStatus(exit_code=code, oom_killed=bool(state.get("OOMKilled")))
        return self._status

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()
        with contextlib.suppress(Exception):
            self._attach.close()
        if self._cleaned:
            return
        self._cleaned = True
        if not self._events.saw_removal:
            # auto_remove normally did it; this covers a container that never stopped or a
            # daemon that failed to remove it. The container is gone when its destroy event
            # arrives (also when the daemon's own removal was in progress).
            with contextlib.suppress(Exception):
                self.api.remove_container(self.container_id, force=True)
            self._events.removed.wait(_REMOVAL_WAIT_S)
        self._events.close()
