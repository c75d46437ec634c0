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
from dativo_runtime._sandbox.host._batch_frames import ipc_slices, slice_counter
from dativo_runtime._sandbox.host._client import WorkerClient
from dativo_runtime._sandbox.host._exit import SANDBOX_FAILURE_REASONS, describe_exit
from dativo_runtime._sandbox.host._output_guard import DiskQuota, sanitize_output
from dativo_runtime._sandbox.host._transport import (
    BudgetedFrameReader,
    ExitStatus,
    StderrTail,
    WorkerTransport,
)
from dativo_runtime._sandbox.host._untrusted_arrow import read_untrusted_batch
from dativo_runtime._sandbox.host._worker_messages import check_file_metadata
from dativo_runtime._worker._protocol import DEFAULT_WINDOW, FrameTooLargeError, ProtocolError, schema_to_text

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


class RemoteWriterSession(WriterSession):
    """A target plugin running in a sandbox worker.

    When the writer has a local output folder (:meth:`guard_output`), the host checks what
    it leaves there (see :mod:`._output_guard`): the disk quota after every request and
    while the plugin works, setuid/setgid bits and special files before and after the
    commit and at the end, and the file metadata the plugin returns. Whatever check fails
    stops the writer and removes everything it added: nothing of it is committed.

    A batch larger than the writer's data frame limit is sent in slices (see
    :mod:`._batch_frames`).
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
        if folder is not None:
            disk = self.client.limits.disk_bytes or None
            self.quota = DiskQuota(folder, disk, self._on_exceeded).start()

    def _on_exceeded(self) -> None:
        """The quota's watcher saw the writer go over: stop it (the request in flight then fails)."""
        assert self.quota is not None
        self.client.exceed_disk(self.quota.exceeded_by or 0)

    def _check_disk(self) -> None:
        if self.quota is not None and self.quota.over():
            self.client.exceed_disk(self.quota.exceeded_by or 0)
            raise self._guard_failure(self.client._dead())

    def _guard_failure(self, error: SandboxError) -> SandboxError:
        """Stop the writer, remove what it added, and return the error the run fails with."""
        described = self.quota.describe() if self.quota is not None else ""
        if described:
            client = self.client
            error = SandboxError(
                f"plugin {client.ref.ref!r} in the {client.backend} sandbox {described}; the host "
                "stopped it and removed what it added. Nothing was committed.",
                details={**error.details, "reason": "disk", "limit": self.quota and self.quota.problem},
            )
        self.client.refuse(error)
        self._discard_added()
        return error

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

    def _too_large(self, exc: FrameTooLargeError, what: str) -> SandboxError:
        """A frame the host could not send: the worker's stream may be cut, so it is stopped."""
        client = self.client
        error = SandboxError(
            f"the host cannot send {what} to plugin {client.ref.ref!r} in the {client.backend} "
            f"sandbox: {exc}",
            details={
                "reason": "crash",
                "backend": client.backend,
                "ref": client.ref.ref,
                "limit": "frame_bytes",
            },
        )
        client.refuse(error)
        return error

    def check_connection(self) -> ConnectionTestResult:
        """Run the plugin's ``check_connection`` in the worker."""
        return ConnectionTestResult.from_dict(self.client.request("check_connection"))

    def write_batch(self, data: pa.RecordBatch | pa.Table, file_counter: int) -> list[dict[str, Any]]:
        """Send one Arrow batch to the plugin's ``write_batch``; return its file metadata.

        A batch larger than the writer's data frame limit goes in slices, one ``write_batch``
        each, slice ``k`` with ``file_counter + k * 2**32`` (file names stay unique).
        """
        client = self.client
        metadata: list[dict[str, Any]] = []
        frames = ipc_slices(data, client.data_limit, ref=client.ref.ref, backend=client.backend)
        for number, frame in enumerate(frames):
            metadata += self._write_frame(frame, slice_counter(int(file_counter), number))
        return metadata

    def _write_frame(self, frame: pa.Buffer, file_counter: int) -> list[dict[str, Any]]:
        try:
            self.client.send({"op": "write_batch", "file_counter": file_counter}, frame)
        except FrameTooLargeError as exc:
            raise self._too_large(exc, "a batch") from None
        try:
            value = self.client.result()
        except SandboxError as exc:
            if exc.details.get("reason") == "disk":
                raise self._guard_failure(exc) from None
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
        try:
            self._sanitize(before_commit=True)
        except SandboxError as exc:
            raise self._guard_failure(exc) from None
        try:
            value = self.client.request("commit_files", file_metadata=list(file_metadata))
        except FrameTooLargeError as exc:
            raise self._too_large(exc, "the file metadata of commit_files") from None
        except SandboxError as exc:
            if exc.details.get("reason") == "disk":
                raise self._guard_failure(exc) from None
            raise
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
                if self.quota.exceeded_by is not None:
                    self.quota.remove_added()
            self._sanitize(before_commit=False)


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
