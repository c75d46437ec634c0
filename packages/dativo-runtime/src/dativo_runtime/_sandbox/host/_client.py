"""The host's client of one worker: requests, answers, the deadline, and how the worker died.

:class:`WorkerClient` speaks the frame protocol of :mod:`._protocol` over a
:class:`~._transport.WorkerTransport`, checks every message it receives
(:mod:`._worker_messages`), forwards the plugin's log records, rebuilds the plugin's errors
(adding how to make a missing module available, :mod:`._import_hints`), and maps every way
the worker can end to a precise ``SandboxError`` (:mod:`._exit`).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dativo_plugin_sdk import DativoError, SandboxError, from_dict
from dativo_runtime._observability._logging import truncate_text
from dativo_runtime._observability._tracing import active_tracing, inject_context
from dativo_runtime._plugins._ref import PluginInfo, PluginRef
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._sandbox.host._exit import describe_exit
from dativo_runtime._sandbox.host._import_hints import add_import_hint
from dativo_runtime._sandbox.host._network_hints import add_network_hint
from dativo_runtime._sandbox.host._transport import WorkerTransport
from dativo_runtime._sandbox.host._worker_messages import bounded_error, check_message, data_frame_limit
from dativo_runtime._worker._protocol import (
    FRAME_CONTROL,
    PROTOCOL_VERSION,
    FrameReader,
    FrameWriter,
    ProtocolError,
    TruncatedFrameError,
    decode_control,
)

if TYPE_CHECKING:
    from dativo_runtime._sandbox.host._remote import _FramePump

__all__ = ["WorkerClient"]

_CLOSE_GRACE_S = 5.0
_LOG_MESSAGE_CHARS = 16_000
_UNTRACED = ("credit", "cancel")  # flow control within an extract, which carries the context already
_logger = logging.getLogger("dativo.sandbox")
_plugin_logger = logging.getLogger("dativo.plugin")


class WorkerClient:
    """Speaks the protocol to one worker and maps every way it can die to ``SandboxError``.

    Args:
        transport: The started worker.
        backend: The backend's name, for messages.
        ref: The plugin reference.
        limits: The session's limits (``timeout_s`` arms the wall-clock deadline).
        cpu_seconds: The CPU-time budget given to the worker, for messages.
        started_at: ``time.monotonic()`` when the backend began starting the worker (cold start).
    """

    def __init__(
        self,
        transport: WorkerTransport,
        *,
        backend: str,
        ref: PluginRef,
        limits: SandboxLimits,
        cpu_seconds: int | None = None,
        started_at: float | None = None,
    ) -> None:
        self.transport = transport
        self.backend = backend
        self.ref = ref
        self.limits = limits
        self.cpu_seconds = cpu_seconds
        self.data_limit = data_frame_limit(limits)
        self.reader = FrameReader(transport.readinto, max_data_bytes=self.data_limit)
        self.writer = FrameWriter(transport.write, transport.flush)
        self.started = False
        self.closed = False
        self.timed_out = False
        self.disk_exceeded_by: int | None = None
        self.failure: SandboxError | None = None
        self.refusal: DativoError | None = None
        self.sandbox_facts: dict[str, Any] = {}
        self.startup_seconds: float | None = None
        self._began = started_at if started_at is not None else time.monotonic()
        self._timer: threading.Timer | None = None
        self._death = threading.Lock()
        self.pump: _FramePump | None = None
        # A session dropped without close() still kills and removes its worker.
        self._finalizer = weakref.finalize(self, _release, transport)
        if limits.timeout_s:
            self._timer = threading.Timer(limits.timeout_s, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        self.timed_out = True
        self.transport.kill()

    def exceed_disk(self, written: int) -> None:
        """Stop the worker because its writer went over ``disk_bytes`` (``written`` so far)."""
        self.disk_exceeded_by = written
        self.transport.kill()

    def _dead(self, cause: BaseException | None = None) -> SandboxError:
        """Kill and reap the worker and return (and remember) why it died."""
        with self._death:  # The frame pump's thread and the main thread may both get here.
            return self._record_death(cause)

    def _record_death(self, cause: BaseException | None) -> SandboxError:
        if self.failure is not None:
            return self.failure
        self.transport.kill()
        status = self.transport.wait(10.0)
        error = describe_exit(
            status,
            backend=self.backend,
            ref=self.ref.ref,
            limits=self.limits,
            timed_out=self.timed_out,
            started=self.started,
            stderr=self.transport.stderr.lines(),
            cpu_seconds=self.cpu_seconds,
            disk_exceeded_by=self.disk_exceeded_by,
        )
        # A frame the host refused is a violation whatever signal then ended the worker (the
        # host's own kill); a truncated frame is only a symptom of how the worker died.
        violation = isinstance(cause, ProtocolError) and not isinstance(cause, TruncatedFrameError)
        if isinstance(cause, ProtocolError) and (
            error.details["reason"] in ("crash", "startup_failed")
            or (violation and not self.timed_out and self.disk_exceeded_by is None)
        ):
            error = SandboxError(
                f"plugin {self.ref.ref!r} in the {self.backend} sandbox broke the worker protocol: {cause}",
                details={**error.details, "reason": "crash", "protocol_error": str(cause)},
            )
        self.failure = error
        return error

    def refuse(self, error: DativoError) -> None:
        """Stop the worker because the host refused its data; ``error`` is then the run's error.

        Whatever the session is asked next (the credit for the previous batch, say) raises
        ``error``, not the signal the host's own kill ended the worker with.
        """
        self.refusal = error
        self._dead(None)

    def _check_usable(self) -> None:
        if self.refusal is not None:
            raise self.refusal
        if self.failure is not None:
            raise self.failure
        if self.closed:
            raise SandboxError(
                f"the {self.backend} sandbox session for {self.ref.ref!r} is closed",
                details={"reason": "crash", "backend": self.backend},
            )

    def send(self, message: dict[str, Any], payload: Any = None) -> None:
        """Send a request (and its Arrow payload), with the current span's trace context."""
        self._check_usable()
        if message["op"] not in _UNTRACED:
            trace = inject_context()
            if trace:
                message = {**message, "trace": trace}
        try:
            if payload is None:
                self.writer.send_control(message)
            else:
                self.writer.send_control_and_data(message, payload)
        except ProtocolError:
            raise
        except OSError as exc:
            raise self._dead(exc) from None

    def receive(self) -> dict[str, Any]:
        """Read the next control message, forwarding logs and raising the worker's errors."""
        self._check_usable()
        while True:
            try:
                kind, payload = self.reader.read_frame()
                if kind != FRAME_CONTROL:
                    raise ProtocolError("expected a control frame, got a data frame")
                message = decode_control(payload)
                check_message(message, len(payload))
            except (EOFError, OSError, ProtocolError) as exc:
                raise self._dead(exc) from None
            op = message["op"]
            if op == "log":
                _forward_log(message, self.ref.ref)
                continue
            if message.get("spans"):
                # The plugin's spans join the run's trace; the tracer checks and redacts them.
                active_tracing().import_spans(message["spans"])
            if op == "error":
                raise self._rebuild(message.get("error"))
            return message

    def receive_data(self) -> bytearray:
        """Read the data frame that follows a ``batch`` message."""
        self._check_usable()
        try:
            return self.reader.read_data()
        except (EOFError, OSError, ProtocolError) as exc:
            raise self._dead(exc) from None

    def _rebuild(self, data: Any) -> DativoError:
        try:
            if isinstance(data, dict):
                data = add_import_hint(bounded_error(data), self.backend, ref=self.ref)
                data = add_network_hint(data, self.backend, network=self.limits.network)
            return from_dict(data)
        except (TypeError, ValueError, OverflowError) as exc:
            return self._dead(ProtocolError(f"invalid error message: {exc}"))

    def finish_extract(self) -> None:
        """Stop an extract still in flight (``cancel``) and discard what the worker had sent."""
        pump, self.pump = self.pump, None
        if pump is None or pump.done:
            return
        if self.failure is None and not self.closed:
            try:
                self.send({"op": "cancel"})
            except DativoError:
                pass
        pump.drain()

    def request(self, op: str, **fields: Any) -> Any:
        """Send a request and return its result value."""
        self.finish_extract()
        self.send({"op": op, **fields})
        return self.result()

    def result(self) -> Any:
        """Read the ``result`` of the request just sent."""
        message = self.receive()
        if message["op"] != "result":
            raise self._dead(ProtocolError(f"expected a result, got {message['op']!r}"))
        return message.get("value")

    def _expect(self, op: str) -> dict[str, Any]:
        """Receive the handshake's next message, ``op``; on anything else stop the worker and raise."""
        try:
            message = self.receive()
        except DativoError:
            self.close(graceful=False)
            raise
        if message["op"] != op:
            error = self._dead(ProtocolError(f"expected {op!r}, got {message['op']!r}"))
            self.close(graceful=False)
            raise error
        return message

    def _info(self, message: Mapping[str, Any]) -> PluginInfo:
        try:
            return PluginInfo.from_dict(message["info"])
        except (KeyError, TypeError) as exc:
            error = self._dead(ProtocolError(f"invalid handshake: {exc}"))
            self.close(graceful=False)
            raise error from None

    def handshake(
        self,
        hello: dict[str, Any],
        config_for: Callable[[PluginInfo, dict[str, Any] | None], Mapping[str, Any]],
    ) -> PluginInfo:
        """Load the plugin, check its config, build it: ``hello``, ``loaded``, ``configure``, ``ready``.

        Args:
            hello: The plugin to load and how (no config: it is sent only once checked).
            config_for: Called with what the loaded plugin declares (its info and its
                ``config_schema``); returns the config to build it with, or raises (the
                config does not match), which stops the worker before the plugin is built.

        Returns:
            The plugin's info.

        Raises:
            DativoError: What loading, ``config_for`` or building raised, or a ``SandboxError``.
        """
        try:
            self.send({**hello, "op": "hello", "protocol": PROTOCOL_VERSION})
        except DativoError:
            self.close(graceful=False)
            raise
        loaded = self._expect("loaded")
        info = self._info(loaded)
        try:
            config = config_for(info, loaded.get("config_schema"))
            self.send({"op": "configure", "config": dict(config)})
        except BaseException:
            self.close(graceful=False)
            raise
        message = self._expect("ready")
        self.started = True
        self.startup_seconds = time.monotonic() - self._began
        self.sandbox_facts = dict(message.get("sandbox") or {})
        return self._info(message)

    def require_seccomp(self) -> None:
        """Refuse to go on when the worker reports no seccomp filter (never silently downgraded)."""
        if self.sandbox_facts.get("seccomp") != 2:
            mode = self.sandbox_facts.get("seccomp")
            self.close(graceful=False)
            raise SandboxError(
                f"the {self.backend} sandbox started plugin {self.ref.ref!r} without a seccomp filter "
                f"(Seccomp mode {mode!r} in /proc/self/status, expected 2); refusing to run it. "
                "Check that the kernel and the container runtime support seccomp.",
                details={"reason": "startup_failed", "backend": self.backend, "seccomp": mode},
            )

    def close(self, *, graceful: bool = True) -> None:
        """Ask the plugin to close, then make sure the worker is gone. Safe to call twice.

        Raises:
            DativoError: What the plugin's own ``close`` raised (after the worker is gone).
        """
        if self.closed:
            return
        close_error: DativoError | None = None
        try:
            if graceful and self.started and self.failure is None:
                self.finish_extract()
                try:
                    self.request("close")
                except DativoError as exc:
                    close_error = exc
                status = self.transport.wait(_CLOSE_GRACE_S)
                if status is None:
                    _logger.warning(
                        "sandbox worker for %s did not exit after close; killing it", self.ref.ref
                    )
        finally:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
            self._finalizer()
            if self.pump is not None:
                # The worker is gone: its frame pump reads the end of the stream and stops.
                self.pump.drain()
                self.pump = None
        if close_error is not None and close_error is not self.failure:
            raise close_error


def _release(transport: WorkerTransport) -> None:
    transport.kill()
    transport.wait(10.0)
    transport.cleanup()


def _forward_log(message: Mapping[str, Any], ref: str) -> None:
    level = message.get("level")
    level = min(max(level, logging.DEBUG), logging.CRITICAL) if isinstance(level, int) else logging.INFO
    text = truncate_text(str(message.get("message") or ""), _LOG_MESSAGE_CHARS)
    _plugin_logger.log(level, "[%s] %s: %s", ref, str(message.get("logger") or "")[:200], text)
