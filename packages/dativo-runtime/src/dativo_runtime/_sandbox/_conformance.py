"""A plugin living in a sandbox worker, as a class ``dativo-conformance --sandbox`` can check.

``dativo-conformance`` (the testkit) never imports the runtime: it finds
:func:`sandboxed_plugin_class` through the entry point ``sandbox`` of the group
``dativo.conformance`` that this package registers, and runs its checks, unchanged, against
the class it yields. That class is a ``BaseReader`` or ``BaseWriter`` subclass (the kind of
the real plugin) carrying what the plugin declares (``__version__``, ``requires_sdk``,
``supports_incremental``), as the sandbox worker reported it after importing the plugin
there (:meth:`WorkerSandbox.inspect`); the plugin itself is never imported in this process.

Each instance opens one sandbox session for its config and forwards every call to it:

* the plugin's errors arrive as they would in-process: its ``DativoError`` as is, any other
  exception as an exception of the same type name and message (the worker wrapped it in a
  ``PluginError``; the original stays on ``.error``), so the checks that tell typed errors
  from untyped ones judge a sandboxed plugin the same way;
* ``extract`` mirrors the worker's state snapshots into the ``State`` object it was given,
  each before its batch is handed on, so the incremental checks see the plugin's progress;
* a writer's dict records become Arrow on this side, as the runtime hands a sandboxed writer
  only Arrow; a record that cannot be converted is refused with a ``ValidationError``, as
  the runtime refuses it before any writer sees it. The writer's ``path`` (resolved against
  the current folder) or the given output folder is mounted writable, and read back here.

Every session still open when the context ends is closed (its worker killed and removed).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from dativo_plugin_sdk import (
    BaseReader,
    BaseWriter,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
    DiscoveryResult,
    Partition,
    PluginError,
    State,
    ValidationError,
    is_arrow_batch,
)
from dativo_plugin_sdk._arrow import arrow_schema_for, batch_to_arrow, records_to_arrow
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import (
    ExtractedBatch,
    ReaderSession,
    SandboxLimits,
    SessionMounts,
    WriterSession,
)
from dativo_runtime._sandbox._plugin_packages import installed_plugin_packages
from dativo_runtime._sandbox._policy import choose_sandbox
from dativo_runtime._sandbox.host._remote import InspectedPlugin, WorkerSandbox

__all__ = ["SANDBOXED_BACKENDS", "SandboxedPluginError", "sandboxed_plugin_class"]

SANDBOXED_BACKENDS = ("process", "docker")
"""The backends ``dativo-conformance --sandbox`` runs a plugin in (``none`` never reaches the runtime)."""
_TIMEOUT_MARGIN_S = 30.0
_END = object()


class SandboxedPluginError(Exception):
    """A plugin's own exception that was not a ``DativoError``, raised again on this side.

    Its class is made per type name (``KeyError``...), so a check reports it as it would
    in-process. ``error`` is the ``PluginError`` the worker sent (with its details).
    """

    error: PluginError

    def __init__(self, text: str, error: PluginError) -> None:
        super().__init__(text)
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt_untyped, (type(self).__name__, str(self), self.error))


_UNTYPED: dict[str, type[SandboxedPluginError]] = {}


def _untyped_class(name: str) -> type[SandboxedPluginError]:
    if name not in _UNTYPED:
        _UNTYPED[name] = type(name, (SandboxedPluginError,), {"__module__": "dativo.sandboxed_plugin"})
    return _UNTYPED[name]


def _rebuilt_untyped(name: str, text: str, error: PluginError) -> SandboxedPluginError:
    return _untyped_class(name)(text, error)


def _as_raised(error: DativoError, ref: str) -> Exception:
    """The exception to raise for a worker's error: untyped again when the plugin's was untyped."""
    if type(error) is not PluginError:
        return error
    details = error.details
    kind = details.get("exception_type")
    wrapped = (
        isinstance(kind, str)
        and kind.isidentifier()
        and "method" in details
        and error.message.startswith(f"plugin {ref!r} raised {kind} ")
    )
    if not wrapped:
        return error
    text = str(details.get("exception") or "")
    if details.get("hint"):
        text += f" ({details['hint']})"
    exc = _untyped_class(str(kind))(text, error)
    exc.__cause__ = error
    return exc


class _Sandboxing:
    """What every instance of one proxy class shares: the backend, the limits, the open sessions."""

    def __init__(
        self, sandbox: WorkerSandbox, ref: PluginRef, limits: SandboxLimits, output_dir: Path | None
    ) -> None:
        self.sandbox = sandbox
        self.ref = ref
        self.limits = limits
        self.output_dir = output_dir
        # An installed plugin's own package; its dependencies would come from its environment.
        self.mounts = SessionMounts(packages=installed_plugin_packages(ref))
        self.columns: dict[str, list[Column]] = {}
        self._open: list[ReaderSession | WriterSession] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def calls(self) -> Iterator[None]:
        """Raise the worker's errors as the plugin raised them."""
        try:
            yield
        except DativoError as error:
            raised = _as_raised(error, self.ref.ref)
            if raised is error:
                raise
            raise raised from error

    def opened(self, session: ReaderSession | WriterSession) -> None:
        with self._lock:
            self._open.append(session)

    def close(self, session: ReaderSession | WriterSession) -> None:
        """Close one session (the plugin's ``close``); the worker is gone afterwards either way."""
        try:
            with self.calls():
                session.close()
        finally:
            with self._lock:
                if session in self._open:
                    self._open.remove(session)

    def close_all(self) -> None:
        """Close every session an instance left open (a check that timed out, an instance dropped)."""
        with self._lock:
            sessions, self._open = self._open, []
        for session in sessions:
            client = getattr(session, "client", None)
            with contextlib.suppress(Exception):
                if client is not None:
                    # Not gracefully: the plugin may still be busy in a check that timed out.
                    client.close(graceful=False)
                session.close()

    def arrow_schema(self, stream: str | None) -> pa.Schema | None:
        """The Arrow schema of a discovered stream, as the runtime passes it to ``extract``."""
        columns = self.columns.get(stream) if stream is not None else None
        return None if not columns else arrow_schema_for(columns)

    def writer_target(self, config: Mapping[str, Any]) -> tuple[Mapping[str, Any], Path | None]:
        """The config a sandboxed writer gets (``path`` absolute) and the folder it may write to."""
        path = config.get("path")
        if isinstance(path, str) and path and "://" not in path:
            folder = Path(path).expanduser().resolve()
            return {**config, "path": str(folder)}, folder
        return config, self.output_dir


def _mirror(state: State, snapshot: Mapping[str, Any] | None) -> None:
    if snapshot is None:
        return
    for key in list(state.keys()):
        state.delete(key)
    state.update(snapshot)


class _SandboxedReader(BaseReader):
    """A reader whose every call runs in a sandbox session of its own."""

    dativo_sandbox: ClassVar[_Sandboxing]

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        sandboxing = self.dativo_sandbox
        with sandboxing.calls():
            self._session = sandboxing.sandbox.open_reader(
                sandboxing.ref, config, limits=sandboxing.limits, mounts=sandboxing.mounts
            )
        sandboxing.opened(self._session)

    def check_connection(self) -> ConnectionTestResult:
        with self.dativo_sandbox.calls():
            return self._session.check_connection()

    def discover(self) -> DiscoveryResult:
        with self.dativo_sandbox.calls():
            result = self._session.discover()
        for stream in result.objects:
            self.dativo_sandbox.columns.setdefault(stream.name, list(stream.schema))
        return result

    def get_total_records_estimate(self) -> int | None:
        with self.dativo_sandbox.calls():
            return self._session.estimate()

    def partitions(self) -> list[Partition]:
        with self.dativo_sandbox.calls():
            return self._session.partitions(self.partition_states)

    def extract(self, state: State | None = None) -> Iterator[pa.RecordBatch]:
        sandboxing = self.dativo_sandbox
        state = state if state is not None else State()
        # The worker builds a new instance of the plugin for a partition, as in a run.
        partition = None if self.partition.is_whole_stream else self.partition
        batches = self._session.extract(
            stream=state.stream,
            state=state.to_dict(),
            schema=sandboxing.arrow_schema(state.stream),
            partition=partition,
        )

        def pull() -> Any:
            with sandboxing.calls():
                return next(batches, _END)

        try:
            item = pull()
            while item is not _END:
                assert isinstance(item, ExtractedBatch)
                following = pull() if item.data.num_rows == 0 else None
                if following is _END:
                    _mirror(state, item.state)  # the state-only item that ends an extract
                    return
                _mirror(state, item.state)
                yield item.data
                item = following if following is not None else pull()
        finally:
            close = getattr(batches, "close", None)
            if callable(close):
                close()

    def close(self) -> None:
        self.dativo_sandbox.close(self._session)


class _SandboxedWriter(BaseWriter):
    """A writer whose every call runs in a sandbox session of its own."""

    dativo_sandbox: ClassVar[_Sandboxing]

    def __init__(self, config: Mapping[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__(config, schema)
        sandboxing = self.dativo_sandbox
        sent, folder = sandboxing.writer_target(config)
        with sandboxing.calls():
            self._session = sandboxing.sandbox.open_writer(
                sandboxing.ref,
                sent,
                schema=schema,
                limits=sandboxing.limits,
                output_dir=folder,
                mounts=sandboxing.mounts,
            )
        sandboxing.opened(self._session)

    def _arrow(self, records: Any) -> pa.RecordBatch | pa.Table:
        if is_arrow_batch(records):
            return records if isinstance(records, (pa.Table, pa.RecordBatch)) else batch_to_arrow(records)
        try:
            if self.schema:
                return records_to_arrow(records, self.schema)
            return batch_to_arrow(records)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                f"a record does not fit the schema ({exc}); the runtime refuses such records before a "
                "sandboxed writer sees them",
                details={"ref": self.dativo_sandbox.ref.ref},
            ) from None

    def check_connection(self) -> ConnectionTestResult:
        with self.dativo_sandbox.calls():
            return self._session.check_connection()

    def write_batch(self, records: Any, file_counter: int) -> list[dict[str, Any]]:
        data = self._arrow(records)
        with self.dativo_sandbox.calls():
            return self._session.write_batch(data, file_counter)

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        with self.dativo_sandbox.calls():
            return self._session.commit_files(list(file_metadata))

    def abort(self) -> None:
        with self.dativo_sandbox.calls():
            self._session.abort()

    def close(self) -> None:
        self.dativo_sandbox.close(self._session)


def _proxy_class(inspected: InspectedPlugin, sandboxing: _Sandboxing) -> type[Any]:
    info = inspected.info
    # ``pkg.module.Class`` or, for a file, the reference ``path/file.py:Class``
    name = info.class_name.rpartition(":")[2].rpartition(".")[2] or "Plugin"
    namespace: dict[str, Any] = {
        "__module__": "dativo.sandboxed_plugin",
        "__qualname__": name,
        "__doc__": f"{info.ref!r} running in the {sandboxing.sandbox.name} sandbox.",
        "__version__": info.plugin_version,
        "requires_sdk": info.requires_sdk,
        "dativo_sandbox": sandboxing,
        "dativo_plugin_info": info,
    }
    if inspected.config_schema is not None:
        namespace["config_schema"] = inspected.config_schema
    if info.role == "reader":
        namespace["supports_incremental"] = "incremental" in info.capabilities
        return type(name, (_SandboxedReader,), namespace)
    return type(name, (_SandboxedWriter,), namespace)


@contextlib.contextmanager
def sandboxed_plugin_class(
    ref: str,
    *,
    backend: str,
    base_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
    network: bool = False,
    timeout_s: float | None = None,
) -> Iterator[type[Any]]:
    """Load a plugin in a sandbox worker and yield a class whose instances run it there.

    The entry point ``dativo.conformance:sandbox``: ``dativo-conformance --sandbox`` runs
    its checks against the yielded class. The sandbox is chosen as for a ``self_hosted``
    job asking for ``backend`` (the operator's policy, ``DATIVO_RUNTIME_CONFIG``, applies).

    Args:
        ref: The plugin reference as the user wrote it (``path/x.py:Class``, ``pkg.mod:Class``,
            an entry-point name).
        backend: ``process`` or ``docker``.
        base_dir: Folder a relative file reference starts at (default: the current folder).
        output_dir: Writers: the folder mounted writable when the config names no local ``path``.
        network: Let the plugin open network connections (a job's ``sandbox.network``).
        timeout_s: Each session's wall-clock limit is this plus a margin (the checks' own
            time limit normally fires first).

    Yields:
        A ``BaseReader`` or ``BaseWriter`` subclass, named like the plugin's class. Sessions
        its instances left open are closed when the context ends.

    Raises:
        ConfigurationError: For an unknown backend, a built-in connector (always in-process),
            a limit the operator's policy refuses, or a plugin that cannot be imported in the
            sandbox (a missing module is named, with how to make it available there).
        PluginError: If the plugin class is abstract.
        SandboxError: If the backend does not work on this machine (the message says why
            and how to fix it, as ``dativo-run sandbox doctor`` does).
    """
    if backend not in SANDBOXED_BACKENDS:
        raise ConfigurationError(
            f"unknown sandbox {backend!r}; use one of none, {', '.join(SANDBOXED_BACKENDS)}",
            details={"setting": "sandbox", "value": backend},
        )
    parsed = PluginRef.parse(ref, base_dir=Path(base_dir) if base_dir is not None else Path.cwd())
    if parsed.kind == "builtin":
        raise ConfigurationError(
            f"{ref!r} is a built-in connector: dativo-run always runs it in-process, never in a sandbox; "
            "check it without --sandbox",
            details={"ref": ref},
        )
    limits = SandboxLimits(
        timeout_s=None if timeout_s is None else timeout_s + _TIMEOUT_MARGIN_S, network=network
    )
    sandbox = choose_sandbox("self_hosted", backend, parsed, limits=limits)
    if not isinstance(sandbox, WorkerSandbox):  # pragma: no cover - the policy pinned 'none'
        raise ConfigurationError(
            f"the operator's policy runs {ref!r} in-process, so it cannot be checked in the {backend} "
            "sandbox",
            details={"ref": ref, "backend": backend},
        )
    inspected = sandbox.inspect(
        parsed, limits=limits, mounts=SessionMounts(packages=installed_plugin_packages(parsed))
    )
    sandboxing = _Sandboxing(
        sandbox, parsed, limits, None if output_dir is None else Path(output_dir).expanduser().resolve()
    )
    try:
        yield _proxy_class(inspected, sandboxing)
    finally:
        sandboxing.close_all()
