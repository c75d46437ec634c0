"""Host side of the worker protocol: reader and writer sessions backed by a sandboxed worker.

Both real backends start a worker (a bubblewrap process, a Docker container) and hand
this module a :class:`WorkerTransport`: a byte pipe to the worker plus the means to kill
it and to learn how it ended. Everything else (handshake, requests, Arrow streaming with
a credit window, the wall-clock deadline, turning a dead worker into a precise
:class:`~dativo_plugin_sdk.SandboxError`) lives here once.
"""

from __future__ import annotations

import abc
import collections
import contextvars
import json
import logging
import math
import os
import queue
import signal
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import (
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
    DiscoveryResult,
    PluginError,
    SandboxError,
    ValidationError,
    from_dict,
)
from dativo_runtime._observability._logging import truncate_text
from dativo_runtime._observability._tracing import active_tracing, inject_context
from dativo_runtime._plugin_ref import PluginInfo, PluginRef

from ._base import ExtractedBatch, ReaderSession, Sandbox, SandboxLimits, WriterSession
from ._output_guard import DiskQuota, sanitize_output
from ._protocol import (
    DEFAULT_WINDOW,
    FRAME_CONTROL,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    WORKER_EXIT_DEADLINE,
    WORKER_EXIT_OOM,
    FrameReader,
    FrameWriter,
    ProtocolError,
    TruncatedFrameError,
    arrow_to_ipc,
    decode_control,
    schema_to_text,
)
from ._untrusted_arrow import read_untrusted_batch

__all__ = [
    "DEFAULT_CPU",
    "DEFAULT_DISK_BYTES",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_PIDS",
    "DEFAULT_TIMEOUT_S",
    "SANDBOX_FAILURE_REASONS",
    "ExitStatus",
    "RemoteReaderSession",
    "RemoteWriterSession",
    "StderrTail",
    "WorkerClient",
    "WorkerSandbox",
    "WorkerTransport",
    "cpu_seconds_budget",
    "describe_exit",
    "effective_limits",
    "format_bytes",
    "open_remote_session",
]

SANDBOX_FAILURE_REASONS = ("oom", "timeout", "disk", "signal", "syscall_blocked", "crash", "startup_failed")
"""Values of ``SandboxError.details["reason"]``."""

STDERR_TAIL_LINES = 50
DEFAULT_CPU = 1.0
DEFAULT_MEMORY_BYTES = 1 << 30
DEFAULT_TIMEOUT_S = 3600.0
DEFAULT_PIDS = 128
DEFAULT_DISK_BYTES = 10 << 30
_CLOSE_GRACE_S = 5.0
MIN_DATA_FRAME_BYTES = 64 << 20
MAX_STATE_BYTES = 1 << 20
"""Largest state snapshot a worker may send (JSON), also checked before the state is saved."""
MAX_ERROR_MESSAGE_CHARS = 16_000
_LOG_MESSAGE_CHARS = 16_000
_DETAIL_CHARS = 4_000
_MAX_DETAILS = 100
_UNTRACED = ("credit", "cancel")  # flow control within an extract, which carries the context already
_logger = logging.getLogger("dativo_runtime.sandbox")
_plugin_logger = logging.getLogger("dativo_runtime.plugin")


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


class StderrTail:
    """The last lines a worker wrote to stderr (bounded: memory stays small whatever it prints)."""

    def __init__(self, max_lines: int = STDERR_TAIL_LINES, max_line_chars: int = 500) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._partial = b""
        self._max_line_chars = max_line_chars
        self._lock = threading.Lock()

    def feed(self, data: bytes) -> None:
        """Add raw stderr bytes (any chunking)."""
        with self._lock:
            data = self._partial + data
            *lines, self._partial = data.split(b"\n")
            if len(self._partial) > 4 * self._max_line_chars:
                lines.append(self._partial)
                self._partial = b""
            for line in lines:
                self._lines.append(line.decode("utf-8", "replace")[: self._max_line_chars])

    def lines(self) -> list[str]:
        """Return the retained lines, oldest first, including an unfinished last line."""
        with self._lock:
            lines = list(self._lines)
            if self._partial:
                lines.append(self._partial.decode("utf-8", "replace")[: self._max_line_chars])
            return lines[-self._lines.maxlen :] if self._lines.maxlen else lines


@dataclass(frozen=True)
class ExitStatus:
    """How a worker ended.

    Args:
        exit_code: The exit status (``128 + N`` when the sandbox reports signal ``N`` that way).
        signal: The signal that killed the worker, if known.
        oom_killed: Whether the kernel's OOM killer (a memory cgroup) killed it.
    """

    exit_code: int | None
    signal: int | None = None
    oom_killed: bool = False


class WorkerTransport(abc.ABC):
    """A running worker as the host sees it: a byte pipe plus kill, wait and cleanup."""

    stderr: StderrTail

    @abc.abstractmethod
    def write(self, data: Any) -> None:
        """Write all of ``data`` to the worker's stdin."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Flush what :meth:`write` buffered."""

    @abc.abstractmethod
    def readinto(self, view: memoryview) -> int:
        """Read the worker's stdout into ``view``; return the count, 0 at end of stream."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Kill the worker and everything it started, now. Safe to call twice."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> ExitStatus | None:
        """Wait up to ``timeout`` seconds for the worker to end; ``None`` if it still runs."""

    @abc.abstractmethod
    def cleanup(self) -> None:
        """Release everything the worker used (container, cgroup). Safe to call twice."""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(
    status: ExitStatus | None,
    *,
    backend: str,
    ref: str,
    limits: SandboxLimits,
    timed_out: bool,
    started: bool,
    stderr: Sequence[str],
    cpu_seconds: int | None = None,
    disk_exceeded_by: int | None = None,
) -> SandboxError:
    """Turn how a worker ended into a :class:`SandboxError` whose ``details["reason"]`` says why.

    Args:
        status: The worker's exit status (``None`` if it could not be learnt).
        backend: ``process`` or ``docker``.
        ref: The plugin reference, for the message.
        limits: The limits the worker ran under (quoted in the message).
        timed_out: Whether the host's wall-clock deadline killed it.
        started: Whether the worker had finished the handshake.
        stderr: Its last stderr lines.
        cpu_seconds: The CPU-time budget enforced with ``RLIMIT_CPU``, if any.
        disk_exceeded_by: What the writer had added to its folder when the host stopped it
            for going over ``disk_bytes``, if it did.

    Returns:
        The error to raise (not retryable: running the same plugin again fails the same way).
    """
    exit_code = status.exit_code if status else None
    sig = status.signal if status else None
    if sig is None and exit_code is not None and exit_code > 128:
        sig = exit_code - 128
    where = f"plugin {ref!r} in the {backend} sandbox"
    details: dict[str, Any] = {"backend": backend, "ref": ref, "exit_code": exit_code, "signal": sig}
    if timed_out or exit_code == WORKER_EXIT_DEADLINE:
        reason = "timeout"
        message = f"{where} exceeded the wall-clock timeout of {limits.timeout_s:g} s and was killed"
        details["limit"] = "wall_clock"
        details["timeout_s"] = limits.timeout_s
    elif disk_exceeded_by is not None or sig == signal.SIGXFSZ:
        reason = "disk"
        disk = format_bytes(limits.disk_bytes) if limits.disk_bytes else "its"
        message = f"{where} exceeded the disk limit {disk} (sandbox.disk) and was stopped"
        details["disk_bytes"] = limits.disk_bytes
        if disk_exceeded_by is not None:
            details["written_bytes"] = disk_exceeded_by
    elif (status and status.oom_killed) or exit_code == WORKER_EXIT_OOM:
        reason = "oom"
        memory = format_bytes(limits.memory_bytes) if limits.memory_bytes else "the sandbox's"
        message = f"{where} exceeded the memory limit {memory} (OOM) and was stopped"
        details["memory_bytes"] = limits.memory_bytes
    elif sig == signal.SIGSYS:
        reason = "syscall_blocked"
        message = (
            f"{where} made a blocked system call (seccomp) and was killed by signal "
            f"{sig} (SIGSYS); the sandbox forbids mount, ptrace, unshare, the kernel keyring, module "
            "loading and similar calls"
        )
    elif sig == signal.SIGXCPU:
        reason = "timeout"
        message = (
            f"{where} used up its CPU time budget of {cpu_seconds} s and was killed by signal {sig} (SIGXCPU)"
        )
        details["limit"] = "cpu_time"
        details["cpu_seconds"] = cpu_seconds
    elif sig is not None:
        reason = "signal"
        message = f"{where} was killed by signal {sig} ({_signal_name(sig)})"
    elif not started:
        reason = "startup_failed"
        message = f"{where} failed to start (exit status {exit_code})"
    else:
        reason = "crash"
        message = f"{where} exited unexpectedly with status {exit_code}"
    if sig is not None:
        details["signal_name"] = _signal_name(sig)
    details["reason"] = reason
    tail = list(stderr)[-STDERR_TAIL_LINES:]
    details["stderr_tail"] = tail
    if tail:
        message += ". Last stderr lines:\n  " + "\n  ".join(tail[-10:])
    else:
        message += "."
    return SandboxError(message, details=details)


def data_frame_limit(limits: SandboxLimits) -> int:
    """The largest data frame the host reads from a worker with ``limits``.

    A worker cannot build a batch larger than its own memory, so the host refuses frames
    above the sandbox's memory limit (at least 64 MiB, at most the protocol's 512 MiB): the
    host's memory for a session stays proportional to what the operator granted it.
    """
    memory = limits.memory_bytes or DEFAULT_MEMORY_BYTES
    return max(MIN_DATA_FRAME_BYTES, min(MAX_FRAME_BYTES, memory))


_OPTIONAL = type(None)
_MESSAGE_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "ready": {"info": (dict,), "sandbox": (dict, _OPTIONAL)},
    "result": {},
    "error": {"error": (dict,)},
    "log": {"level": (int,), "logger": (str, _OPTIONAL), "message": (str, _OPTIONAL)},
    "batch": {"rows": (int,), "state": (dict, _OPTIONAL)},
    "end": {"state": (dict, _OPTIONAL), "changed": (bool, _OPTIONAL), "cancelled": (bool, _OPTIONAL)},
}
_REQUIRED_FIELDS = {"ready": ("info",), "error": ("error",), "batch": ("rows",)}


def check_message(message: Mapping[str, Any], size: int) -> None:
    """Check the shape of a control message from a worker (its ``op``, field types, state size).

    Args:
        message: The decoded message.
        size: Its size on the wire, in bytes.

    Raises:
        ProtocolError: Naming what is wrong.
    """
    op = message["op"]
    fields = _MESSAGE_FIELDS.get(op)
    if fields is None:
        raise ProtocolError(f"unknown message {op[:40]!r}")
    for name in _REQUIRED_FIELDS.get(op, ()):
        if name not in message:
            raise ProtocolError(f"a {op!r} message without {name!r}")
    for name, types in fields.items():
        value = message.get(name)
        if value is not None and (not isinstance(value, types) or (bool not in types and value is True)):
            raise ProtocolError(f"a {op!r} message whose {name!r} is a {type(value).__name__}")
    if "spans" in message and not isinstance(message["spans"], list):
        raise ProtocolError(f"a {op!r} message whose 'spans' is not a list")
    if op == "batch" and message["rows"] < 0:
        raise ProtocolError("a 'batch' message with a negative row count")
    state = message.get("state")
    if state is not None and size > MAX_STATE_BYTES and len(encode_state(state)) > MAX_STATE_BYTES:
        raise ProtocolError(
            f"the plugin's state is larger than {format_bytes(MAX_STATE_BYTES)}; keep cursors, not data, "
            "in the state"
        )


def encode_state(state: Mapping[str, Any]) -> str:
    """The JSON text of a state snapshot (strict: non-finite numbers are refused).

    Raises:
        ProtocolError: If the state cannot be JSON.
    """
    try:
        return json.dumps(state, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"the plugin's state is not JSON: {exc}") from None


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

    def _check_usable(self) -> None:
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
                data = _bounded_error(data)
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

    def handshake(self, hello: dict[str, Any]) -> PluginInfo:
        """Send the configuration and wait until the plugin is loaded and built."""
        try:
            self.send({**hello, "op": "hello", "protocol": PROTOCOL_VERSION})
            message = self.receive()
        except DativoError:
            self.close(graceful=False)
            raise
        if message["op"] != "ready":
            error = self._dead(ProtocolError(f"expected 'ready', got {message['op']!r}"))
            self.close(graceful=False)
            raise error
        self.started = True
        self.startup_seconds = time.monotonic() - self._began
        self.sandbox_facts = dict(message.get("sandbox") or {})
        try:
            return PluginInfo.from_dict(message["info"])
        except (KeyError, TypeError) as exc:
            error = self._dead(ProtocolError(f"invalid handshake: {exc}"))
            self.close(graceful=False)
            raise error from None

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


def _bounded_error(data: dict[str, Any]) -> dict[str, Any]:
    """An error from a worker with its message and the text in its details cut to size."""
    bounded = dict(data)
    if isinstance(bounded.get("message"), str):
        bounded["message"] = truncate_text(bounded["message"], MAX_ERROR_MESSAGE_CHARS)
    details = bounded.get("details")
    if isinstance(details, dict):
        bounded["details"] = {
            str(key)[:200]: truncate_text(value, _DETAIL_CHARS) if isinstance(value, str) else value
            for key, value in list(details.items())[:_MAX_DETAILS]
        }
    return bounded


def _forward_log(message: Mapping[str, Any], ref: str) -> None:
    level = message.get("level")
    level = min(max(level, logging.DEBUG), logging.CRITICAL) if isinstance(level, int) else logging.INFO
    text = truncate_text(str(message.get("message") or ""), _LOG_MESSAGE_CHARS)
    _plugin_logger.log(level, "[%s] %s: %s", ref, str(message.get("logger") or "")[:200], text)


_PUMP_END = object()


class _FramePump:
    """Reads one extract's frames on a thread of its own, so the worker never waits on the host.

    While the pipeline validates and writes a batch, this thread already receives and
    decodes the next ones (reading the pipe and decoding Arrow release the GIL), so the
    worker converts and sends on its core while the host writes on the other. Memory stays
    bounded by the protocol's credit window: the worker sends at most ``window`` batches the
    host has not acknowledged, and the queue holds no more than that (a worker that ignores
    its credit only blocks this thread, as it would block on a full pipe). The bytes held
    are bounded too: the thread reads no further frame while the batches waiting in the
    queue hold more than one data frame's limit.

    Every data frame is decoded as untrusted (see :mod:`._untrusted_arrow`): a batch reaches
    the pipeline only once it is known to be safe to read.
    """

    def __init__(self, client: WorkerClient, window: int) -> None:
        self.client = client
        self._queue: queue.Queue[tuple[Any, Any]] = queue.Queue(maxsize=max(1, window))
        self._held = 0
        self._budget = threading.Condition()
        self.done = False
        context = contextvars.copy_context()  # The run's log context and trace follow the frames.
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name="dativo-sandbox-frames", daemon=True
        )

    def start(self) -> None:
        """Start reading frames."""
        self._thread.start()

    def _run(self) -> None:
        client = self.client
        try:
            while True:
                message = client.receive()
                op = message["op"]
                if op == "batch":
                    with self._budget:
                        self._budget.wait_for(lambda: self._held < client.data_limit or self.done)
                    payload = client.receive_data()
                    try:
                        batch = read_untrusted_batch(payload)
                    except ProtocolError as exc:
                        raise client._dead(exc) from None
                    except ValidationError:
                        client._dead(None)  # The plugin's stream is over; the run fails on this error.
                        raise
                    with self._budget:
                        self._held += len(payload)
                    self._queue.put((message, (batch, len(payload))))
                elif op == "end":
                    self._queue.put((message, _PUMP_END))
                    return
                else:
                    raise client._dead(ProtocolError(f"unexpected {op!r} during extract"))
        except BaseException as exc:
            self._queue.put((exc, None))

    def next(self) -> tuple[dict[str, Any], pa.RecordBatch | None]:
        """The next ``batch`` message and its data, or the ``end`` message and ``None``.

        Raises:
            DativoError: What the worker sent, or the ``SandboxError`` of its death.
        """
        if self.done:
            client = self.client
            raise SandboxError(
                f"the extract of {client.ref.ref!r} was cancelled, because its {client.backend} sandbox "
                "session was used for another request",
                details={"reason": "crash", "backend": client.backend},
            )
        item, data = self._queue.get()
        if data is None:
            self._finish()
            raise item
        if data is _PUMP_END:
            self._finish()
            return item, None
        batch, size = data
        with self._budget:
            self._held -= size
            self._budget.notify_all()
        return item, batch

    def _finish(self) -> None:
        with self._budget:
            self.done = True
            self._budget.notify_all()

    def drain(self) -> None:
        """Discard frames until the extract ends (after a ``cancel``) or the worker fails."""
        while not self.done:
            _, data = self._queue.get()
            if data is None or data is _PUMP_END:
                self._finish()
            else:
                with self._budget:
                    self._held -= data[1]
                    self._budget.notify_all()
        self.join()

    def join(self) -> None:
        """Wait for the thread, which has read its last frame."""
        self._thread.join()


class RemoteReaderSession(ReaderSession):
    """A source plugin running in a sandbox worker."""

    def __init__(self, client: WorkerClient, info: PluginInfo, *, window: int = DEFAULT_WINDOW) -> None:
        self.client = client
        self.info = info
        self.window = window

    @property
    def startup_seconds(self) -> float | None:
        """Seconds from starting the sandbox to the worker's handshake (cold start)."""
        return self.client.startup_seconds

    def check_connection(self) -> ConnectionTestResult:
        """Run the plugin's ``check_connection`` in the worker."""
        return ConnectionTestResult.from_dict(self.client.request("check_connection"))

    def discover(self) -> DiscoveryResult:
        """Run the plugin's ``discover`` in the worker."""
        return DiscoveryResult.from_dict(self.client.request("discover"))

    def estimate(self) -> int | None:
        """Run the plugin's ``get_total_records_estimate`` in the worker."""
        value = self.client.request("estimate")
        return None if value is None else int(value)

    def extract(
        self,
        *,
        stream: str | None = None,
        state: Mapping[str, Any] | None = None,
        schema: pa.Schema | None = None,
    ) -> Iterator[ExtractedBatch]:
        """Stream the plugin's batches from the worker, at most ``window`` batches ahead.

        Each batch carries the state snapshot taken when the plugin yielded it; when the
        plugin ends with a different state, one more zero-row batch carries the final state
        (exactly as the in-process backend does).
        """
        client = self.client
        client.finish_extract()
        client.send(
            {
                "op": "extract",
                "stream": stream,
                "state": dict(state) if state is not None else None,
                "schema": schema_to_text(schema),
                "window": self.window,
            }
        )
        pump = _FramePump(client, self.window)
        client.pump = pump
        pump.start()
        finished = False
        at_yield = False
        last_state: Any = None
        last_schema = schema
        try:
            while True:
                message, batch = pump.next()
                if batch is not None:
                    last_state = message.get("state")
                    last_schema = batch.schema
                    at_yield = True
                    yield ExtractedBatch(data=batch, state=last_state)
                    at_yield = False
                    client.send({"op": "credit", "n": 1})
                else:
                    finished = True
                    final = message.get("state")
                    if message.get("changed") and isinstance(final, dict):
                        empty_schema = last_schema if last_schema is not None else pa.schema([])
                        empty = pa.RecordBatch.from_arrays(
                            [pa.array([], f.type) for f in empty_schema], schema=empty_schema
                        )
                        yield ExtractedBatch(data=empty, state=final)
                    return
        except DativoError:
            # An error the worker sent ends its extract; one thrown in at the yield does not.
            finished = finished or not at_yield
            raise
        finally:
            if finished:
                pump.drain()
                if client.pump is pump:
                    client.pump = None
            elif client.failure is None and not client.closed:
                client.finish_extract()

    def close(self) -> None:
        """Close the plugin and stop the worker."""
        self.client.close()


class RemoteWriterSession(WriterSession):
    """A target plugin running in a sandbox worker.

    When the writer has a local output folder (:meth:`guard_output`), the host checks what
    it leaves there (see :mod:`._output_guard`): the disk quota after every request and
    while the plugin works, setuid/setgid bits and special files before and after the
    commit and at the end, and the file metadata the plugin returns.
    """

    concurrent_writes = True

    def __init__(self, client: WorkerClient, info: PluginInfo) -> None:
        self.client = client
        self.info = info
        self.output_dir: Path | None = None
        self.quota: DiskQuota | None = None

    @property
    def startup_seconds(self) -> float | None:
        """Seconds from starting the sandbox to the worker's handshake (cold start)."""
        return self.client.startup_seconds

    def guard_output(self, folder: Path | None) -> None:
        """Watch ``folder``, the writer's one writable folder, for the rest of the session."""
        self.output_dir = folder
        disk = self.client.limits.disk_bytes
        if folder is not None and disk:
            self.quota = DiskQuota(folder, disk, lambda: self.client.exceed_disk(self._added())).start()

    def _added(self) -> int:
        return self.quota.exceeded_by or self.quota.added() if self.quota is not None else 0

    def _check_disk(self) -> None:
        if self.quota is not None and self.quota.over():
            self.client.exceed_disk(self.quota.exceeded_by or 0)
            self._discard_added()
            raise self.client._dead()

    def _discard_added(self) -> None:
        """Remove what the stopped writer added (its partial output); nothing of it is committed."""
        if self.quota is not None:
            self.quota.stop()
            self.client.transport.kill()
            self.client.transport.wait(10.0)
            self.quota.remove_added()

    def _sanitize(self, *, before_commit: bool) -> None:
        if self.output_dir is not None:
            sanitize_output(
                self.output_dir,
                ref=self.client.ref.ref,
                backend=self.client.backend,
                refuse_special=before_commit,
            )

    def check_connection(self) -> ConnectionTestResult:
        """Run the plugin's ``check_connection`` in the worker."""
        return ConnectionTestResult.from_dict(self.client.request("check_connection"))

    def write_batch(self, data: pa.RecordBatch | pa.Table, file_counter: int) -> list[dict[str, Any]]:
        """Send one Arrow batch to the plugin's ``write_batch``; return its file metadata."""
        self.client.send({"op": "write_batch", "file_counter": int(file_counter)}, arrow_to_ipc(data))
        try:
            value = self.client.result()
        except SandboxError as exc:
            if exc.details.get("reason") == "disk":
                self._discard_added()
            raise
        self._check_disk()
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.client._dead(ProtocolError("write_batch result is not a list of objects"))
        for entry in value:
            check_file_metadata(entry, self.output_dir, ref=self.client.ref.ref)
        return value

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        """Run the plugin's ``commit_files`` in the worker, once its folder passed the host's checks."""
        self._check_disk()
        self._sanitize(before_commit=True)
        value = self.client.request("commit_files", file_metadata=list(file_metadata))
        self._check_disk()
        self._sanitize(before_commit=False)
        if not isinstance(value, dict):
            raise self.client._dead(ProtocolError("commit_files result is not an object"))
        return value

    def abort(self) -> None:
        """Run the plugin's ``abort`` in the worker (nothing to abort once the worker is gone)."""
        if self.client.failure is not None or self.client.closed:
            return
        self.client.request("abort")

    def close(self) -> None:
        """Close the plugin and stop the worker, then clean what it left in its folder."""
        try:
            self.client.close()
        finally:
            if self.quota is not None:
                self.quota.stop()
            self._sanitize(before_commit=False)


_SIZE_KEYS = ("record_count", "size_bytes", "bytes_written", "records", "bytes")


def check_file_metadata(entry: Mapping[str, Any], output_dir: Path | None, *, ref: str) -> None:
    """Refuse file metadata a writer could only return to mislead the run's summary.

    Sizes and counts must be non-negative integers; a ``path`` of a writer with a local
    output folder must lie inside that folder.

    Raises:
        PluginError: Naming the entry and what is wrong with it.
    """
    problem = None
    for key in _SIZE_KEYS:
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            problem = f"its {key!r} is {value!r}, not a non-negative integer"
    path = entry.get("path")
    if path is not None and not isinstance(path, str):
        problem = f"its 'path' is a {type(path).__name__}, not a string"
    elif isinstance(path, str) and output_dir is not None and "://" not in path:
        where = os.path.normpath(os.path.join(output_dir, path))
        if os.path.commonpath([where, os.path.normpath(output_dir)]) != os.path.normpath(output_dir):
            problem = f"its 'path' {path[:200]!r} lies outside the writer's output folder {str(output_dir)!r}"
    if problem is not None:
        raise PluginError(
            f"plugin {ref!r}: write_batch() returned file metadata that the runtime refuses: {problem}",
            details={"ref": ref, "method": "write_batch", "problem": problem},
        )


def open_remote_session(
    client: WorkerClient,
    *,
    role: str,
    config: Mapping[str, Any],
    rlimits: Mapping[str, Any],
    schema: Sequence[Column] | None = None,
    require_seccomp: bool = True,
) -> RemoteReaderSession | RemoteWriterSession:
    """Handshake with a started worker and wrap it in a reader or writer session.

    Raises:
        DativoError: The plugin's loading or construction error, or a ``SandboxError``.
    """
    rlimits = dict(rlimits)
    if client.limits.disk_bytes and "fsize" not in rlimits:
        rlimits["fsize"] = client.limits.disk_bytes  # no file larger than sandbox.disk
    hello: dict[str, Any] = {
        "role": role,
        "ref": client.ref.to_dict(),
        "config": dict(config),
        "rlimits": rlimits,
        # The worker enforces the wall clock too, so a worker outlives no crashed host.
        "timeout_s": client.limits.timeout_s,
    }
    if role == "writer":
        hello["schema"] = None if schema is None else [c.to_dict() for c in schema]
    info = client.handshake(hello)
    if require_seccomp:
        client.require_seccomp()
    if role == "reader":
        return RemoteReaderSession(client, info)
    return RemoteWriterSession(client, info)


class WorkerSandbox(Sandbox):
    """A backend that runs each plugin in a worker process it starts (bubblewrap, Docker).

    Subclasses implement :meth:`_open`, which starts the worker and hands it to
    :func:`open_remote_session`; the two session kinds differ only in the role they ask for.
    """

    @abc.abstractmethod
    def _open(
        self,
        role: str,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        limits: SandboxLimits,
        schema: Sequence[Column] | None = None,
        output_dir: Path | None = None,
    ) -> ReaderSession | WriterSession:
        """Start a worker for ``role`` (``reader`` or ``writer``) and return its session."""

    def open_reader(
        self,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        limits: SandboxLimits = SandboxLimits(),  # noqa: B008
    ) -> ReaderSession:
        """Start a worker for a source plugin; see :meth:`Sandbox.open_reader`."""
        session = self._open("reader", ref, config, limits=limits)
        assert isinstance(session, ReaderSession)
        return session

    def open_writer(
        self,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        schema: Sequence[Column] | None = None,
        limits: SandboxLimits = SandboxLimits(),  # noqa: B008
        output_dir: Path | None = None,
    ) -> WriterSession:
        """Start a worker for a target plugin; ``output_dir`` is its one writable folder."""
        session = self._open("writer", ref, config, limits=limits, schema=schema, output_dir=output_dir)
        assert isinstance(session, WriterSession)
        if isinstance(session, RemoteWriterSession):
            session.guard_output(output_dir)
        return session
