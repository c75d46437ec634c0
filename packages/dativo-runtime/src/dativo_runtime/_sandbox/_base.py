"""The one small interface every execution backend implements, like an HTTP transport.

A :class:`Sandbox` opens *sessions*: one long-lived plugin instance (a worker process,
a container, or an object in this process) per plugin run. The pipeline talks only to
:class:`ReaderSession` and :class:`WriterSession`, and only in Arrow, so a backend that
runs the plugin in another process streams Arrow IPC and nothing in the pipeline changes.

Backends map their own failures to :class:`dativo_plugin_sdk.SandboxError` at this
boundary; errors raised by the plugin arrive as the same ``DativoError`` subclass with
the same code, ``retryable`` and details.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import pyarrow as pa

from dativo_plugin_sdk import Column, ConnectionTestResult, DiscoveryResult, Partition, SandboxError
from dativo_runtime._plugins._ref import PluginInfo, PluginRef

__all__ = [
    "ExtractedBatch",
    "ReaderSession",
    "Sandbox",
    "SandboxLimits",
    "SessionMounts",
    "WriterSession",
]


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits for one plugin run; ``None`` means the backend's default.

    Args:
        cpu: CPU cores (Docker) / CPU seconds budget derived from it (process backend).
        memory_bytes: Memory ceiling in bytes.
        timeout_s: Wall-clock limit for the whole session, in seconds.
        pids: Maximum number of processes/threads.
        network: Whether the plugin may open network connections (egress).
        disk_bytes: What the plugin may write in all: the largest file (``RLIMIT_FSIZE``) and
            the total of its output folder and scratch space.
    """

    cpu: float | None = None
    memory_bytes: int | None = None
    timeout_s: float | None = None
    pids: int | None = None
    network: bool = False
    disk_bytes: int | None = None


@dataclass(frozen=True)
class SessionMounts:
    """What a plugin run sees besides its own folder: its environment and the host paths it may read.

    Every backend gives the plugin the same view: ``process`` and ``docker`` mount each path
    read-only at its host path; ``none`` runs a plugin with an environment in a child worker
    process (never in the runtime's own), and sees everything anyway.

    Args:
        environment: The plugin's environment, a folder of packages (a ``pip install --target``
            layout); the worker puts it on ``sys.path`` right after the standard library, with
            ``site.addsitedir`` semantics (``.pth`` files apply), and sets ``DATIVO_PLUGIN_ENV``.
        read_only_paths: Host files or folders the plugin may read, at the same path
            (``sandbox.read_only_paths`` of the job).
        packages: Extra package folders or single-module files (an installed plugin's own
            package, its ``.dist-info``) made importable by name: each is mounted at its host
            path and its parent folder put on ``sys.path``.
        tool_environment: The environment holds a program the plugin starts as a process of
            its own (a Singer tap, an Airbyte source), not packages the plugin imports: the
            worker only names it in ``DATIVO_PLUGIN_ENV``, so the tool's dependencies (an old
            numpy, say) never shadow the worker's.
    """

    environment: Path | None = None
    read_only_paths: tuple[Path, ...] = ()
    packages: tuple[Path, ...] = ()
    tool_environment: bool = False

    def __post_init__(self) -> None:
        for name in ("read_only_paths", "packages"):
            value = getattr(self, name)
            if isinstance(value, (str, Path)):
                raise TypeError(f"SessionMounts.{name} takes a sequence of paths, not one path")
            object.__setattr__(self, name, tuple(Path(p) for p in value))
        if self.environment is not None:
            object.__setattr__(self, "environment", Path(self.environment))
        for path in (self.environment, *self.read_only_paths, *self.packages):
            if path is not None and not path.is_absolute():
                raise ValueError(f"SessionMounts paths must be absolute, got {str(path)!r}")

    def resolved(self, ref: str, backend: str) -> SessionMounts:
        """These mounts with every path resolved, as a sandbox binds them.

        Raises:
            SandboxError: If a path does not exist (``startup_failed``), naming it.
        """
        environment = [self.environment] if self.environment is not None else []
        missing = [str(p) for p in [*environment, *self.packages, *self.read_only_paths] if not p.exists()]
        if missing:
            raise SandboxError(
                f"the {backend} sandbox cannot run plugin {ref!r}: {', '.join(missing)} "
                f"{'does' if len(missing) == 1 else 'do'} not exist",
                details={"reason": "startup_failed", "backend": backend, "paths": missing},
            )
        return SessionMounts(
            environment=None if self.environment is None else self.environment.resolve(),
            read_only_paths=tuple(p.resolve() for p in self.read_only_paths),
            packages=tuple(p.resolve() for p in self.packages),
            tool_environment=self.tool_environment,
        )

    def hello(self) -> dict[str, Any]:
        """What the worker's ``hello`` carries of these mounts (environment, its place, paths)."""
        paths: list[str] = []
        for package in self.packages:
            parent = str(package.parent)
            if parent not in paths:
                paths.append(parent)
        return {
            "environment": None if self.environment is None else str(self.environment),
            "environment_on_path": not self.tool_environment,
            "paths": paths,
        }


@dataclass
class ExtractedBatch:
    """One batch read from a source, with a state snapshot that is safe to persist with it.

    Plugins call ``state.set(...)`` *after* yielding the batch the progress belongs to, so
    the snapshot a session takes when batch *k* arrives covers batches ``< k`` only. Every
    session therefore follows one rule: ``state`` is the snapshot taken when this batch
    arrived, and once the plugin's generator is exhausted the session yields one final
    ``ExtractedBatch`` with **zero rows** carrying the final state. The pipeline persists
    the last ``state`` it saw, and only after everything before it is committed.

    Args:
        data: The records, already Arrow (zero rows for the final state-only item).
        state: The stream's state snapshot (``None`` when the session passes no state).
    """

    data: pa.RecordBatch
    state: dict[str, Any] | None = None


class _Session(abc.ABC):
    """Behaviour shared by reader and writer sessions."""

    info: PluginInfo

    @abc.abstractmethod
    def check_connection(self) -> ConnectionTestResult:
        """Run the plugin's ``check_connection`` and return its result."""

    @abc.abstractmethod
    def close(self) -> None:
        """Call the plugin's ``close`` and release the worker. Safe to call twice."""

    def __enter__(self) -> _Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ReaderSession(_Session):
    """A source plugin instance running in some backend."""

    @abc.abstractmethod
    def discover(self) -> DiscoveryResult:
        """Run the plugin's ``discover``."""

    @abc.abstractmethod
    def partitions(self, states: Mapping[str, Mapping[str, Any]]) -> list[Partition]:
        """Run the plugin's ``partitions`` (SDK 1.1), its ``partition_states`` set to ``states``.

        Returns:
            The partitions, checked (:func:`~._partitions.checked_partitions`).
        """

    @abc.abstractmethod
    def extract(
        self,
        *,
        stream: str | None = None,
        state: Mapping[str, Any] | None = None,
        schema: pa.Schema | None = None,
        partition: Partition | None = None,
    ) -> Iterator[ExtractedBatch]:
        """Stream the plugin's batches as Arrow.

        Args:
            stream: The stream to read (given to the plugin as ``State.stream``).
            state: The saved state to resume from (``None``: a full read, still with an
                empty ``State`` object so an incremental plugin can record progress).
            schema: Arrow schema dict batches are converted with (see ``batch_to_arrow``).
            partition: The partition to extract, by a new instance of the plugin whose
                ``partition`` is set to it; ``None``: the session's instance reads the
                whole stream.

        Yields:
            :class:`ExtractedBatch` objects, in the order the plugin yielded them. Each
            carries ``state.to_dict()`` taken when the batch arrived (a plugin records
            progress *after* yielding, so that snapshot never runs ahead of the data).
            When the plugin's iterator ends with a state different from the last
            snapshot, one more zero-row batch carries that final state.

        Raises:
            DativoError: The plugin's own error, rebuilt, or a ``SandboxError``.
        """

    @abc.abstractmethod
    def estimate(self) -> int | None:
        """Run the plugin's ``get_total_records_estimate``."""


class WriterSession(_Session):
    """A target plugin instance running in some backend.

    Attributes:
        concurrent_writes: Whether ``write_batch`` may run on a thread other than the one
            that opened the session, so the pipeline can write behind the reader. True for
            sandboxed plugins (the host thread only sends frames) and the built-in writers;
            False for other in-process plugins, which may hold thread-bound resources.
    """

    concurrent_writes: bool = False

    @abc.abstractmethod
    def write_batch(self, data: pa.RecordBatch | pa.Table, file_counter: int) -> list[dict[str, Any]]:
        """Pass one Arrow batch to the plugin's ``write_batch`` (as a ``pyarrow.Table``)."""

    @abc.abstractmethod
    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        """Run the plugin's ``commit_files``."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Run the plugin's ``abort``."""


class Sandbox(abc.ABC):
    """An execution backend: where and how isolated plugin code runs.

    Attributes:
        name: The backend's name in job files (``none``, ``process``, ``docker``).
        isolated: Whether plugin code runs outside the host process.
    """

    name: ClassVar[str]
    isolated: ClassVar[bool] = True

    @classmethod
    @abc.abstractmethod
    def availability(cls) -> tuple[bool, str]:
        """Tell whether this backend works on this machine, and why not when it does not."""

    @abc.abstractmethod
    def open_reader(
        self,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        limits: SandboxLimits = SandboxLimits(),
        mounts: SessionMounts = SessionMounts(),
    ) -> ReaderSession:
        """Start a source plugin; loading and version checks happen where it runs.

        ``mounts`` is what the plugin sees besides its own folder (see :class:`SessionMounts`).

        Raises:
            DativoError: ``ConfigurationError``/``PluginError``/``PluginVersionError`` from
                loading, or ``SandboxError`` when the backend fails.
        """

    @abc.abstractmethod
    def open_writer(
        self,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        schema: Sequence[Column] | None = None,
        limits: SandboxLimits = SandboxLimits(),
        output_dir: Path | None = None,
        mounts: SessionMounts = SessionMounts(),
    ) -> WriterSession:
        """Start a target plugin; ``output_dir`` is the one folder it may write to (if local).

        ``mounts`` is what the plugin sees besides its own folder (see :class:`SessionMounts`).
        """
