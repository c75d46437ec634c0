"""The sandbox worker: ``python -m dativo_runtime._worker._main`` inside a sandbox.

It serves one plugin run over the frame protocol of :mod:`._protocol` on its stdin and
stdout. Before any plugin code runs it moves the protocol to private file descriptors:
fd 0 becomes ``/dev/null`` and fd 1 a copy of stderr, so a plugin's ``print()`` or
``input()`` cannot corrupt or read the protocol. It applies the rlimits the host asked
for, puts the plugin's environment (``environment`` in ``hello``: a folder of packages) on
``sys.path`` right after the standard library and names it in ``DATIVO_PLUGIN_ENV``, then
imports the plugin (class lookup and SDK compatibility check happen here, never
in the host), tells the host what it declares (``loaded``: its info and ``config_schema``),
builds it with the configuration the host then sends (``configure``, once the host checked
it against that schema), and answers requests until ``close`` or the end of its stdin.

The worker never outlives its host: right after ``hello`` a watchdog thread ends it
(``os._exit``; the sandbox's pid namespace then takes every process the plugin started
with it) at the session's deadline (``timeout_s`` in ``hello``, plus a grace so the host's
own timeout normally wins and reports it), and shortly after its protocol stdin hangs up
(the host died or closed it), even while the plugin is busy and nobody reads the protocol.

Only the standard library, the SDK (whose shared loader, :mod:`dativo_plugin_sdk._loading`,
imports the plugin) and this package's protocol module are imported at start; pyarrow is
imported on the first Arrow request, for the SDK's shared mapping
(:mod:`dativo_plugin_sdk._arrow`). Built-in connectors never run in a worker, so the worker
needs no registry of them.

When the host traces the run, ``hello`` and each request carry its W3C trace context
(``trace``): the worker then starts a :class:`~dativo_runtime._worker._span_relay.SpanRelay`
(importing OpenTelemetry only then), makes each request's context current while it runs,
so spans the plugin creates join the host's trace, and returns the finished spans with
its answers (``spans`` in ``ready``, ``result``, ``end`` and ``error``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import resource
import select
import signal
import site
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

from dativo_plugin_sdk import (
    BaseReader,
    BaseWriter,
    Column,
    ConnectionTestResult,
    DativoError,
    DiscoveryResult,
    Partition,
    PluginError,
    State,
    is_retryable,
)
from dativo_plugin_sdk._frames import PluginScope, with_frames
from dativo_plugin_sdk._loading import PluginRef, load_plugin_class
from dativo_plugin_sdk._plugin_info import plugin_info
from dativo_runtime._worker._config_schema import read_config_schema
from dativo_runtime._worker._protocol import (
    DEFAULT_WINDOW,
    PROTOCOL_VERSION,
    WORKER_EXIT_DEADLINE,
    WORKER_EXIT_HOST_GONE,
    WORKER_EXIT_OOM,
    FrameReader,
    FrameTooLargeError,
    FrameWriter,
    ProtocolError,
    arrow_from_ipc,
    arrow_to_ipc,
    schema_from_text,
)

if TYPE_CHECKING:
    from dativo_runtime._worker._span_relay import SpanRelay

__all__ = ["PLUGIN_ENV_VARIABLE", "main", "use_plugin_paths"]

DEADLINE_GRACE_S = 2.0
"""The watchdog fires this long after the host's deadline, so the host's timeout normally wins."""
HANGUP_GRACE_S = 2.0
"""How long a worker may go on after its stdin hung up (to finish a normal close)."""
_POLL_SLICE_S = 60.0

_RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "core": resource.RLIMIT_CORE,
    "fsize": resource.RLIMIT_FSIZE,
}


def _take_protocol_streams() -> tuple[BinaryIO, BinaryIO]:
    """Move the protocol off fds 0 and 1 and point ``sys.stdout`` at stderr."""
    protocol_in = os.dup(0)
    protocol_out = os.dup(1)  # os.dup makes non-inheritable fds: plugin subprocesses never get them.
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115  (lives as long as the process)
    sys.stdout = sys.stderr
    return (
        io.open(protocol_in, "rb", buffering=1 << 16),  # noqa: UP020  (explicit buffered binary fd)
        io.open(protocol_out, "wb", buffering=1 << 16),  # noqa: UP020
    )


def _deadline_of(timeout_s: Any) -> float | None:
    """The monotonic time the watchdog ends the worker, for the host's ``timeout_s`` (``None``: none)."""
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)):
        return None
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        return None
    return time.monotonic() + float(timeout_s) + DEADLINE_GRACE_S


def _end_worker(status: int, why: str) -> NoReturn:
    # Unbuffered and lock-free: the plugin may hold sys.stderr's lock or the logging locks.
    with contextlib.suppress(OSError):
        os.write(2, f"dativo worker: {why}; ending the worker\n".encode())
    os._exit(status)


def _watch(protocol_fd: int, deadline: float | None) -> None:
    """End the worker at ``deadline`` and :data:`HANGUP_GRACE_S` after ``protocol_fd`` hangs up."""
    poller = select.poll()
    # No event asked for: poll reports only POLLHUP, POLLERR and POLLNVAL and never reads the protocol.
    poller.register(protocol_fd, 0)
    hangup_at: float | None = None
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            _end_worker(WORKER_EXIT_DEADLINE, "the session's wall-clock deadline has passed")
        if hangup_at is not None and now >= hangup_at:
            _end_worker(WORKER_EXIT_HOST_GONE, "the host closed the protocol (it ended or died)")
        wake = min(t for t in (deadline, hangup_at, now + _POLL_SLICE_S) if t is not None)
        if hangup_at is not None:
            time.sleep(max(0.0, wake - now))
        elif poller.poll(max(0, math.ceil((wake - now) * 1000))):
            hangup_at = time.monotonic() + HANGUP_GRACE_S


def _start_watchdog(protocol_fd: int, timeout_s: Any) -> None:
    """Start the thread that ends the worker at its deadline or when the host goes away."""
    threading.Thread(
        target=_watch, args=(protocol_fd, _deadline_of(timeout_s)), name="dativo-watchdog", daemon=True
    ).start()


def _apply_rlimits(rlimits: Mapping[str, Any]) -> None:
    for name, value in rlimits.items():
        which = _RLIMITS.get(name)
        if which is None or value is None:
            continue
        soft, hard = (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        resource.setrlimit(which, (soft, hard))
        if name == "fsize":
            # Python ignores SIGXFSZ; restored, a file over the disk limit ends the worker, which
            # the host reports as the sandbox's disk limit (not as the plugin's own OSError).
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)


PLUGIN_ENV_VARIABLE = "DATIVO_PLUGIN_ENV"
"""Set in the worker to the plugin's environment folder, when it has one."""


def _is_stdlib(entry: str) -> bool:
    """Whether a ``sys.path`` entry is the standard library (its folder, zip or ``lib-dynload``)."""
    import sysconfig  # Only for a plugin with an environment: the worker starts faster.

    stdlib = {os.path.normpath(sysconfig.get_path(name)) for name in ("stdlib", "platstdlib")}
    path = os.path.normpath(entry) if entry else entry
    return (
        path in stdlib
        or (os.path.dirname(path) in stdlib and os.path.basename(path) == "lib-dynload")
        or (path.endswith(".zip") and os.path.basename(path).startswith("python"))
    )


def use_plugin_paths(environment: Any, paths: Any, *, on_path: Any = True) -> None:
    """Put the plugin's environment, then ``paths``, on ``sys.path`` right after the standard library.

    With ``on_path`` false the environment holds a tool the plugin starts as its own process
    (``environment_on_path`` of ``hello``): it is only named in ``DATIVO_PLUGIN_ENV``.

    The environment is added as :func:`site.addsitedir` adds a folder, so the ``.pth`` files of
    the packages in it apply; what it adds comes before the worker's own packages (the SDK,
    pyarrow), which are already imported, so a plugin's dependency wins over a host copy.

    Raises:
        ProtocolError: If ``hello`` named them with the wrong types.
    """
    if environment is not None and not isinstance(environment, str):
        raise ProtocolError("hello: environment must be a folder or null")
    if not isinstance(on_path, bool):
        raise ProtocolError("hello: environment_on_path must be true or false")
    if paths is None:
        paths = []
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ProtocolError("hello: paths must be a list of folders")
    before = list(sys.path)
    if environment is not None:
        os.environ[PLUGIN_ENV_VARIABLE] = environment
        if on_path:
            site.addsitedir(environment)
    for path in paths:
        if path not in sys.path:
            sys.path.append(path)
    known = set(before)
    added = [entry for entry in sys.path if entry not in known]
    if not added:
        return
    position = max((i + 1 for i, entry in enumerate(before) if _is_stdlib(entry)), default=0)
    sys.path[:] = before[:position] + added + before[position:]


def _proc_status() -> dict[str, str]:
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            return dict(line.rstrip("\n").split(":\t", 1) for line in handle if ":\t" in line)
    except OSError:
        return {}


class _LogForwarder(logging.Handler):
    """Sends the plugin's log records to the host as ``log`` control messages."""

    def __init__(self, writer: FrameWriter) -> None:
        super().__init__(logging.INFO)
        self._writer = writer
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self._writer.send_control(
                {"op": "log", "level": record.levelno, "logger": record.name, "message": message[:10_000]}
            )
        except Exception:
            self.handleError(record)


def _error_payload(exc: BaseException, ref: str, method: str, scope: PluginScope | None) -> dict[str, Any]:
    """The error to send for ``exc``: a DativoError as is, anything else as a PluginError.

    The PluginError matches what the in-process backend raises for the same exception.
    Either way its details carry where it was raised (``traceback``: the plugin's own
    frames; ``full_traceback``: every frame), read here, inside the sandbox.
    """
    if isinstance(exc, DativoError):
        data = exc.to_dict()
        data["details"] = with_frames(data["details"], exc, scope, plugin_only=True)
        return data
    if isinstance(exc, SystemExit):
        message = f"plugin {ref!r} called sys.exit({exc.code!r}) in {method}(); plugins must return or raise"
    else:
        traceback.print_exception(exc, file=sys.stderr)
        message = f"plugin {ref!r} raised {type(exc).__name__} in {method}(): {exc}"
    details = {
        "ref": ref,
        "method": method,
        "exception_type": type(exc).__name__,
        "exception": str(exc)[:2000],
    }
    return PluginError(
        message, retryable=is_retryable(exc), details=with_frames(details, exc, scope)
    ).to_dict()


def _wrong_type(ref: str, method: str, value: Any, expected: str) -> PluginError:
    return PluginError(
        f"plugin {ref!r}: {method}() returned {type(value).__name__}, not {expected}",
        details={"ref": ref, "method": method},
    )


def _start_relay(carrier: Any) -> SpanRelay | None:
    """A span relay when the host traces the run (OpenTelemetry is imported only then)."""
    if not isinstance(carrier, Mapping) or not carrier:
        return None
    from dativo_runtime._worker._span_relay import SpanRelay

    return SpanRelay.start({str(k): str(v) for k, v in carrier.items()})


class _Worker:
    """Serves the requests of one plugin run."""

    def __init__(self, reader: FrameReader, writer: FrameWriter, relay: SpanRelay | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.relay = relay
        self.plugin: Any = None
        self.plugin_cls: Any = None
        self.config: Mapping[str, Any] = {}
        self.ref = "?"
        self.method = "__init__"
        self.scope: PluginScope | None = None

    def traced(self, message: Mapping[str, Any]) -> contextlib.AbstractContextManager[Any]:
        """Make the host's trace context of ``message`` current (nothing when not traced)."""
        if self.relay is None:
            return contextlib.nullcontext()
        return self.relay.attached(self.relay, message.get("trace"))

    def error_payload(self, exc: BaseException) -> dict[str, Any]:
        """The ``error`` message's payload for ``exc``, raised by the current request."""
        return _error_payload(exc, self.ref, self.method, self.scope)

    def reply(self, message: dict[str, Any]) -> None:
        """Send ``message`` with the plugin's spans that ended since the last reply."""
        if self.relay is not None:
            spans = self.relay.drain()
            if spans:
                message = {**message, "spans": spans}
        self.writer.send_control(message)

    def open(self, hello: Mapping[str, Any]) -> dict[str, Any]:
        """Load the plugin named in ``hello``, say ``loaded``, build it with the ``configure``d config.

        Returns:
            The ``ready`` message.
        """
        if hello.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolError(f"host speaks protocol {hello.get('protocol')!r}, worker {PROTOCOL_VERSION}")
        role = hello.get("role")
        if role not in ("reader", "writer", "inspect"):
            raise ProtocolError(f"unknown role {role!r}")
        ref = PluginRef.from_dict(hello["ref"])
        self.ref = ref.ref
        self.scope = PluginScope.of_ref(ref)
        if role == "inspect":
            # Describe the class as the sandbox imports it, without building it (and without the
            # SDK check, which the caller reports itself): dativo-conformance under a sandbox.
            plugin_cls = load_plugin_class(ref, check_sdk=False)
        else:
            plugin_cls = load_plugin_class(ref, expected=BaseReader if role == "reader" else BaseWriter)
        self.scope = PluginScope.of_ref(ref, plugin_cls)
        info = plugin_info(plugin_cls, ref)
        # The host checks the config against the plugin's config_schema before it sends it.
        self.reply(
            {"op": "loaded", "info": info.to_dict(), "config_schema": read_config_schema(plugin_cls, ref.ref)}
        )
        configure = self.reader.read_control()
        if configure.get("op") != "configure":
            raise ProtocolError(f"expected 'configure', got {configure.get('op')!r}")
        config = configure.get("config") or {}
        configure = {}  # Drop the message (and its secrets) once the plugin holds the config.
        if role == "inspect":
            pass  # Described in ``loaded``; never built.
        elif role == "reader":
            self.plugin = plugin_cls(config=config)
            # Kept for the new instance each partition is extracted by (see ``extract``).
            self.plugin_cls, self.config = plugin_cls, config
        else:
            columns = hello.get("schema")
            schema = None if columns is None else [Column.from_dict(c) for c in columns]
            self.plugin = plugin_cls(config=config, schema=schema)
        return {"op": "ready", "info": info.to_dict(), "sandbox": self.facts()}

    @staticmethod
    def facts() -> dict[str, Any]:
        """What the host checks about the sandbox the worker runs in (seccomp, privileges)."""
        status = _proc_status()
        return {
            "seccomp": int(status.get("Seccomp", "0").strip() or 0),
            "no_new_privs": int(status.get("NoNewPrivs", "0").strip() or 0),
            "uid": os.getuid(),
            "pid": os.getpid(),
            "python": sys.version.split()[0],
        }

    def handle(self, message: Mapping[str, Any]) -> tuple[bool, Any]:
        """Run one request; return ``(keep_serving, result)`` (``None`` result: already answered)."""
        op = message["op"]
        plugin = self.plugin
        self.method = {"estimate": "get_total_records_estimate"}.get(op, op)
        if op == "check_connection":
            result = plugin.check_connection()
            if not isinstance(result, ConnectionTestResult):
                raise _wrong_type(self.ref, op, result, "a ConnectionTestResult")
            return True, result.to_dict()
        if op == "discover":
            discovery = plugin.discover()
            if not isinstance(discovery, DiscoveryResult):
                raise _wrong_type(self.ref, op, discovery, "a DiscoveryResult")
            return True, discovery.to_dict()
        if op == "estimate":
            value = plugin.get_total_records_estimate()
            valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            return True, value if valid else None
        if op == "partitions":
            return True, self.partitions(message)
        if op == "extract":
            self.extract(message)
            return True, None
        if op == "write_batch":
            table = arrow_from_ipc(self.reader.read_data())
            metadata = plugin.write_batch(records=table, file_counter=int(message["file_counter"]))
            if not isinstance(metadata, list):
                raise PluginError(
                    f"plugin {self.ref!r}: write_batch() returned {type(metadata).__name__}, not a list of "
                    "file metadata",
                    details={"ref": self.ref, "method": "write_batch"},
                )
            return True, metadata
        if op == "commit_files":
            summary = plugin.commit_files(file_metadata=list(message.get("file_metadata") or []))
            return True, dict(summary) if isinstance(summary, Mapping) else {"result": summary}
        if op == "abort":
            plugin.abort()
            return True, None
        if op == "close":
            if plugin is not None:  # None after an inspect hello: nothing was built
                plugin.close()
            return False, None
        raise ProtocolError(f"unknown request {op!r}")

    def partitions(self, message: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run the plugin's ``partitions`` after handing it every partition's committed state."""
        states = message.get("states") or {}
        self.plugin.partition_states = {str(k): dict(v) for k, v in states.items()}
        listed = self.plugin.partitions()
        if not isinstance(listed, list) or not all(isinstance(p, Partition) for p in listed):
            raise _wrong_type(self.ref, "partitions", listed, "a list of Partition objects")
        return [p.to_dict() for p in listed]

    def extract(self, message: Mapping[str, Any]) -> None:
        """Stream the plugin's batches as Arrow, within the host's credit window.

        With a ``partition``, a new instance of the plugin extracts it (its ``partition``
        set first) and is closed at the end; without one the session's instance extracts
        the whole stream.
        """
        partition = message.get("partition")
        if partition is None:
            self.run_extract(self.plugin, message)
            return
        instance = self.plugin_cls(config=self.config)
        try:
            instance.partition = Partition.from_dict(partition)
            self.run_extract(instance, message)
        finally:
            try:
                instance.close()
            except Exception as exc:  # The extract already answered; say it, never fail after.
                logging.getLogger("dativo.plugin").warning(
                    "close() of partition %r failed: %s: %s", instance.partition.name, type(exc).__name__, exc
                )

    def run_extract(self, plugin: Any, message: Mapping[str, Any]) -> None:
        """Stream ``plugin``'s batches as Arrow, within the host's credit window."""
        from dativo_plugin_sdk._arrow import batch_to_arrow

        schema = schema_from_text(message.get("schema"))
        state = State(message.get("state") or {}, stream=message.get("stream"))
        credit = int(message.get("window") or DEFAULT_WINDOW)
        last_state = state.to_dict()
        batches: Iterator[Any] = iter(plugin.extract(state=state))
        try:
            for batch in batches:
                data = batch_to_arrow(batch, schema)
                last_state = state.to_dict()
                payload = arrow_to_ipc(data)
                while credit <= 0:
                    control = self.reader.read_control()
                    if control["op"] == "credit":
                        credit += int(control.get("n", 1))
                    elif control["op"] == "cancel":
                        self.reply({"op": "end", "state": None, "changed": False, "cancelled": True})
                        return
                    else:
                        raise ProtocolError(f"unexpected {control['op']!r} during extract")
                self.writer.send_control_and_data(
                    {"op": "batch", "rows": data.num_rows, "state": last_state}, payload
                )
                credit -= 1
        finally:
            close = getattr(batches, "close", None)
            if callable(close):
                close()
        final_state = state.to_dict()
        changed = final_state != last_state
        self.reply({"op": "end", "state": final_state if changed else None, "changed": changed})


def _serve(reader: FrameReader, writer: FrameWriter, protocol_fd: int) -> int:
    try:
        hello = reader.read_control()
    except EOFError:
        return 0
    if hello["op"] != "hello":
        raise ProtocolError(f"expected 'hello', got {hello['op']!r}")
    _start_watchdog(protocol_fd, hello.get("timeout_s"))
    _apply_rlimits(hello.get("rlimits") or {})
    logging.basicConfig(level=logging.INFO, handlers=[_LogForwarder(writer)], force=True)
    worker = _Worker(reader, writer, _start_relay(hello.get("trace")))
    try:
        use_plugin_paths(
            hello.get("environment"), hello.get("paths"), on_path=hello.get("environment_on_path", True)
        )
        with worker.traced(hello):
            ready = worker.open(hello)
    except MemoryError:
        return _out_of_memory()
    except BaseException as exc:
        worker.reply({"op": "error", "error": worker.error_payload(exc)})
        return 0
    worker.reply(ready)
    # Import pyarrow while the host prepares its first request: the handshake stays fast and
    # the first batch does not wait for it.
    threading.Thread(target=_preload_arrow, name="dativo-preload", daemon=True).start()
    while True:
        try:
            message = reader.read_control()
        except EOFError:
            _close_quietly(worker.plugin)
            return 0
        if message["op"] in ("credit", "cancel"):
            continue  # Left over from an extract that already ended.
        try:
            with worker.traced(message):
                keep_serving, result = worker.handle(message)
            if message["op"] != "extract":
                worker.reply({"op": "result", "value": result})
        except MemoryError:
            return _out_of_memory()
        except FrameTooLargeError as exc:
            # Nothing of the frame was sent: the plugin's result or state is too large, its error is not.
            too_large = PluginError(
                f"plugin {worker.ref!r}: {worker.method}() produced {exc}",
                details={"ref": worker.ref, "method": worker.method},
            )
            worker.reply({"op": "error", "error": too_large.to_dict()})
            keep_serving = message["op"] != "close"
        except ProtocolError:
            raise
        except BaseException as exc:
            try:
                worker.reply({"op": "error", "error": worker.error_payload(exc)})
            except (TypeError, ValueError) as send_exc:
                writer.send_control({"op": "error", "error": worker.error_payload(send_exc)})
            keep_serving = message["op"] != "close"
        if not keep_serving:
            return 0


def _preload_arrow() -> None:
    """Import pyarrow while the plugin starts; a failure here shows again, in full, on first use."""
    try:
        from dativo_plugin_sdk._arrow import import_pyarrow

        import_pyarrow()
    except Exception:
        pass


def _close_quietly(plugin: Any) -> None:
    try:
        if plugin is not None:
            plugin.close()
    except Exception:
        traceback.print_exc(file=sys.stderr)


def _out_of_memory() -> int:
    # Frames may be half written and memory is short: report by exit status only.
    os.write(2, b"dativo worker: MemoryError: the plugin ran out of memory\n")
    os._exit(WORKER_EXIT_OOM)


def main() -> int:
    """Serve one plugin run on stdin/stdout; return the process exit status."""
    protocol_in, protocol_out = _take_protocol_streams()
    reader = FrameReader(protocol_in.readinto)  # type: ignore[attr-defined]
    writer = FrameWriter(protocol_out.write, protocol_out.flush)
    try:
        return _serve(reader, writer, protocol_in.fileno())
    except (BrokenPipeError, EOFError):
        return 0
    except ProtocolError as exc:
        os.write(2, f"dativo worker: protocol error: {exc}\n".encode())
        return 2


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # The plugin is closed; skip the interpreter's slow teardown of pyarrow and friends.
    os._exit(status)
