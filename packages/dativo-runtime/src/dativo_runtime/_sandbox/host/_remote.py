"""Host side of the worker protocol: reader and writer sessions backed by a sandboxed worker.

Both real backends start a worker (a bubblewrap process, a Docker container) and hand the
host a :class:`~._transport.WorkerTransport`. The pieces of the host side, one module each:

* :mod:`._limits`: defaults, the operator's ceilings, the CPU-time budget;
* :mod:`._transport`: the transport interface, the worker's exit status and stderr tail;
* :mod:`._exit`: how a worker ended, as a ``SandboxError`` whose reason says why;
* :mod:`._worker_messages` and :mod:`._untrusted_arrow`: checks on everything a worker sends;
* :mod:`._client`: the client of one worker (requests, the deadline, the worker's death);
* :mod:`._output_guard`: what a writer leaves in its output folder;
  :mod:`._batch_frames`: a batch for a writer cut into frames that fit its limit;
* this module: Arrow streaming with a credit window (the frame pump), the reader and writer
  sessions, and the base class of the backends that start workers.

The names of those modules that the backends use are re-exported here.
"""

from __future__ import annotations

import abc
import contextvars
import dataclasses
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import (
    Column,
    ConnectionTestResult,
    DativoError,
    DiscoveryResult,
    Partition,
    SandboxError,
    ValidationError,
)
from dativo_runtime._plugins._config_spec import check_plugin_config
from dativo_runtime._plugins._ref import PluginInfo, PluginRef
from dativo_runtime._sandbox._base import (
    ExtractedBatch,
    ReaderSession,
    Sandbox,
    SandboxLimits,
    SessionMounts,
    WriterSession,
)
from dativo_runtime._sandbox._limits import (
    DEFAULT_CPU,
    DEFAULT_DISK_BYTES,
    DEFAULT_MEMORY_BYTES,
    DEFAULT_PIDS,
    DEFAULT_TIMEOUT_S,
    check_ceilings,
    cpu_seconds_budget,
    effective_limits,
    format_bytes,
)
from dativo_runtime._sandbox._partitions import checked_partitions
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._exit import SANDBOX_FAILURE_REASONS, describe_exit
from dativo_runtime._sandbox.host._remote_writer import RemoteWriterSession
from dativo_runtime._sandbox.host._transport import (
    BudgetedFrameReader,
    ExitStatus,
    StderrTail,
    WorkerTransport,
)
from dativo_runtime._sandbox.host._untrusted_arrow import read_untrusted_batch
from dativo_runtime._worker._protocol import DEFAULT_WINDOW, ProtocolError, schema_to_text

__all__ = [
    "DEFAULT_CPU",
    "DEFAULT_DISK_BYTES",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_PIDS",
    "DEFAULT_TIMEOUT_S",
    "SANDBOX_FAILURE_REASONS",
    "ExitStatus",
    "InspectedPlugin",
    "RemoteReaderSession",
    "RemoteWriterSession",
    "StderrTail",
    "WorkerClient",
    "WorkerSandbox",
    "WorkerTransport",
    "check_ceilings",
    "cpu_seconds_budget",
    "describe_exit",
    "effective_limits",
    "format_bytes",
    "open_remote_session",
]


_PUMP_END = object()
_DRAIN_POLL_S = 0.2


class _FramePump:
    """Reads one extract's frames on a thread of its own, so the worker never waits on the host.

    While the pipeline validates and writes a batch, this thread already receives and
    decodes the next ones (reading the pipe and decoding Arrow release the GIL), so the
    worker converts and sends on its core while the host writes on the other. Memory stays
    bounded by the protocol's credit window: the worker sends at most ``window`` batches the
    host has not acknowledged (one more is a protocol violation), and the queue holds no
    more than that. The bytes held are bounded too: the thread learns each data frame's size
    from its header and reads its body only once the frames waiting in the queue and that
    one together fit in one data frame's limit (``client.data_limit``), so the host holds at
    most that besides the batch the pipeline is writing.

    Every data frame is decoded as untrusted (see :mod:`._untrusted_arrow`): a batch reaches
    the pipeline only once it is known to be safe to read.
    """

    def __init__(self, client: WorkerClient, window: int) -> None:
        self.client = client
        self.window = max(1, window)
        self._queue: queue.Queue[tuple[Any, Any]] = queue.Queue(maxsize=self.window)
        self._frames = BudgetedFrameReader(client.transport.readinto, max_data_bytes=client.data_limit)
        self._held = 0
        self.peak_held = 0
        self._received = 0
        self._credited = 0
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
                    self._count_batch()
                    try:
                        payload = self._frames.read_data_within(self._reserve)
                        batch = read_untrusted_batch(payload)
                    except (EOFError, OSError, ProtocolError) as exc:
                        raise client._dead(exc) from None
                    except ValidationError as exc:
                        client.refuse(exc)  # The plugin's stream is over; the run fails on this error.
                        raise
                    self._queue.put((message, (batch, len(payload))))
                elif op == "end":
                    self._queue.put((message, _PUMP_END))
                    return
                else:
                    raise client._dead(ProtocolError(f"unexpected {op!r} during extract"))
        except BaseException as exc:
            self._queue.put((exc, None))

    def _count_batch(self) -> None:
        with self._budget:
            self._received += 1
            over = self._received - self._credited > self.window
        if over:
            raise self.client._dead(
                ProtocolError(f"sent more batches than its credit window of {self.window} allows")
            )

    def _reserve(self, size: int) -> None:
        """Wait until the frames held and one of ``size`` bytes fit in one data frame's limit."""
        limit = self.client.data_limit
        with self._budget:
            self._budget.wait_for(lambda: self._held + size <= limit or self.done)
            self._held += size
            self.peak_held = max(self.peak_held, self._held)

    def credit(self) -> None:
        """Give the worker credit for one more batch (the pipeline took one)."""
        with self._budget:
            self._credited += 1
        self.client.send({"op": "credit", "n": 1})

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
        """Discard frames until the extract ends (after a ``cancel``) or the worker fails.

        Another thread may still be waiting in :meth:`next` (a consumer abandoned after a
        timeout) and take the pump's last item: this loop wakes up to see ``done`` then,
        rather than wait for an item that will never come.
        """
        while not self.done:
            try:
                _, data = self._queue.get(timeout=_DRAIN_POLL_S)
            except queue.Empty:
                continue
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

    def partitions(self, states: Mapping[str, Mapping[str, Any]]) -> list[Partition]:
        """Run the plugin's ``partitions`` in the worker; check what comes back."""
        value = self.client.request("partitions", states={k: dict(v) for k, v in states.items()})
        return checked_partitions(value, self.info.ref)

    def extract(
        self,
        *,
        stream: str | None = None,
        state: Mapping[str, Any] | None = None,
        schema: pa.Schema | None = None,
        partition: Partition | None = None,
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
                "partition": partition.to_dict() if partition is not None else None,
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
                    pump.credit()
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


@dataclasses.dataclass(frozen=True)
class InspectedPlugin:
    """A plugin class as a worker loaded it without building it (role ``inspect``).

    Args:
        info: What the class declares (role, version, ``requires_sdk``, capabilities).
        config_schema: Its ``config_schema`` as JSON data, or ``None`` when it declares none.
    """

    info: PluginInfo
    config_schema: dict[str, Any] | None


def open_remote_session(
    client: WorkerClient,
    *,
    role: str,
    config: Mapping[str, Any],
    rlimits: Mapping[str, Any],
    schema: Sequence[Column] | None = None,
    require_seccomp: bool = True,
    mounts: SessionMounts = SessionMounts(),  # noqa: B008
) -> RemoteReaderSession | RemoteWriterSession | InspectedPlugin:
    """Handshake with a started worker and wrap it in a reader or writer session.

    The worker loads the plugin and sends its ``config_schema``; the config is checked
    against it here (:func:`check_plugin_config`) and only then sent to build the plugin.
    ``hello`` names the plugin's environment and package folders of ``mounts`` (which the
    backend has mounted), for the worker to put on ``sys.path``. Role ``inspect`` loads the
    plugin class without building it: the worker is closed at once and the plugin's
    :class:`PluginInfo` and ``config_schema`` returned (see :meth:`WorkerSandbox.inspect`).

    Raises:
        DativoError: The plugin's loading or construction error, or a ``SandboxError``.
    """
    rlimits = dict(rlimits)
    if client.limits.disk_bytes and "fsize" not in rlimits:
        rlimits["fsize"] = client.limits.disk_bytes  # no file larger than sandbox.disk
    hello: dict[str, Any] = {
        "role": role,
        "ref": client.ref.to_dict(),
        "rlimits": rlimits,
        # The worker enforces the wall clock too, so a worker outlives no crashed host.
        "timeout_s": client.limits.timeout_s,
        **mounts.hello(),
    }
    if role == "writer":
        hello["schema"] = None if schema is None else [c.to_dict() for c in schema]

    declared: list[dict[str, Any] | None] = []

    def checked_config(info: PluginInfo, config_schema: dict[str, Any] | None) -> Mapping[str, Any]:
        del info
        declared.append(config_schema)
        if role == "inspect":
            return {}  # Nothing is built: the schema is only reported.
        check_plugin_config(client.ref.ref, config_schema, config)
        return config

    info = client.handshake(hello, checked_config)
    if require_seccomp:
        client.require_seccomp()
    if role == "inspect":
        client.close()
        return InspectedPlugin(info, declared[0])
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
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> ReaderSession | WriterSession | InspectedPlugin:
        """Start a worker for ``role`` (``reader``, ``writer``, ``inspect``) and return its session.

        ``mounts`` are mounted read-only at their host paths (see :class:`SessionMounts`).
        Role ``inspect`` returns an :class:`InspectedPlugin` (see :func:`open_remote_session`).
        """

    def inspect(
        self,
        ref: PluginRef,
        *,
        limits: SandboxLimits = SandboxLimits(),  # noqa: B008
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> InspectedPlugin:
        """Load the plugin class in a worker, without building it, and describe it.

        The class is imported where it would run, with what that sandbox can import, and
        nothing of it is imported in this process (``dativo-conformance --sandbox``).

        Args:
            ref: The plugin reference.
            limits: The worker's limits.
            mounts: The plugin's environment and the paths it reads (see :class:`SessionMounts`).

        Returns:
            What the plugin declares: its role, version, ``requires_sdk``, capabilities
            and ``config_schema``.

        Raises:
            DativoError: The plugin's loading error (``ConfigurationError`` naming the file
                and line; a missing module with how to make it available to this backend),
                ``PluginError`` for an abstract class, or a ``SandboxError``.
        """
        info = self._open("inspect", ref, {}, limits=limits, mounts=mounts)
        assert isinstance(info, InspectedPlugin)
        return info

    def open_reader(
        self,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        limits: SandboxLimits = SandboxLimits(),  # noqa: B008
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> ReaderSession:
        """Start a worker for a source plugin; see :meth:`Sandbox.open_reader`."""
        session = self._open("reader", ref, config, limits=limits, mounts=mounts)
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
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> WriterSession:
        """Start a worker for a target plugin; ``output_dir`` is its one writable folder."""
        session = self._open(
            "writer", ref, config, limits=limits, schema=schema, output_dir=output_dir, mounts=mounts
        )
        assert isinstance(session, WriterSession)
        if isinstance(session, RemoteWriterSession):
            session.guard_output(output_dir)
        return session
