"""The in-process backend (``none``): plugins run as objects in the runtime's own process.

No isolation at all, so :func:`~dativo_runtime._sandbox.choose_sandbox` allows it only
for trusted plugins in ``self_hosted`` mode. It still speaks the session interface in
Arrow, so the pipeline cannot tell it from a real sandbox. A plugin with an environment
(``mounts.environment``) runs in a child worker process instead (:mod:`._child_worker`),
never in the runtime's own.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

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
from dativo_plugin_sdk._arrow import batch_to_arrow
from dativo_plugin_sdk._frames import PluginScope, with_frames
from dativo_runtime._plugins._config_spec import check_plugin_config, read_config_schema
from dativo_runtime._plugins._ref import PluginInfo, PluginRef, load_plugin_class, plugin_info
from dativo_runtime._sandbox._base import (
    ExtractedBatch,
    ReaderSession,
    Sandbox,
    SandboxLimits,
    SessionMounts,
    WriterSession,
)
from dativo_runtime._sandbox._partitions import checked_partitions
from dativo_runtime._secrets import RedactingStream

__all__ = ["InProcessSandbox"]

T = TypeVar("T")


class _PluginOutput:
    """While any in-process session is open, what plugins print goes to stderr, secrets masked.

    A plugin's ``print()`` must neither corrupt the JSON document a command prints on stdout
    nor leak a secret; a sandbox worker gets the same treatment by construction.
    """

    _lock = threading.Lock()
    _depth = 0
    _saved: tuple[Any, Any] | None = None

    @classmethod
    def hold(cls) -> None:
        with cls._lock:
            if cls._depth == 0:
                cls._saved = (sys.stdout, sys.stderr)
                stream = RedactingStream(sys.stderr)
                sys.stdout = sys.stderr = stream
            cls._depth += 1

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            if cls._depth == 0:
                return
            cls._depth -= 1
            if cls._depth == 0 and cls._saved is not None:
                sys.stdout, sys.stderr = cls._saved
                cls._saved = None


def _plugin_error(exc: BaseException, ref: PluginRef, method: str) -> PluginError:
    """The PluginError for an exception a plugin raised, with where it was raised (as a worker sends it)."""
    details = {
        "ref": ref.ref,
        "method": method,
        "exception_type": type(exc).__name__,
        "exception": str(exc),
    }
    return PluginError(
        f"plugin {ref.ref!r} raised {type(exc).__name__} in {method}(): {exc}",
        retryable=is_retryable(exc),
        details=with_frames(details, exc, _scope(ref)),
    )


@functools.lru_cache(maxsize=128)
def _scope(ref: PluginRef) -> PluginScope | None:
    """Where the plugin's code lives; worked out once per reference (an entry point loads its class)."""
    cls = None
    if ref.kind == "entry_point":
        with contextlib.suppress(Exception):
            cls = load_plugin_class(ref, check_sdk=False)
    return PluginScope.of_ref(ref, cls)


def _located(exc: DativoError, ref: PluginRef) -> None:
    """Give a DativoError the plugin raised (or its import did) where it was raised."""
    exc.details = with_frames(exc.details, exc, _scope(ref), plugin_only=True)


def _call(ref: PluginRef, method: str, function: Callable[..., T], **kwargs: Any) -> T:
    """Call a plugin method, letting Dativo errors through and wrapping anything else."""
    try:
        return function(**kwargs)
    except DativoError as exc:
        _located(exc, ref)
        raise
    except Exception as exc:
        raise _plugin_error(exc, ref, method) from exc


def _validate_arrow(data: pa.RecordBatch, ref: PluginRef) -> None:
    """Refuse an Arrow batch whose buffers lie, before anything reads its values.

    A plugin can build arrays with ``Array.from_buffers`` whose offsets point outside their
    data; whatever reads them next (validation, the Parquet writer) would read memory it
    must not. Batches converted from dicts are built by pyarrow and need no check.
    """
    try:
        data.validate(full=True)
    except pa.ArrowException as exc:
        raise PluginError(
            f"plugin {ref.ref!r} yielded an invalid Arrow batch: {exc}",
            details={"ref": ref.ref, "method": "extract", "exception": str(exc)[:2000]},
        ) from None


def _check_result(value: Any, ref: PluginRef) -> ConnectionTestResult:
    if isinstance(value, ConnectionTestResult):
        return value
    raise PluginError(
        f"plugin {ref.ref!r}: check_connection() returned {type(value).__name__}, not a ConnectionTestResult",
        details={"ref": ref.ref, "method": "check_connection"},
    )


class _InProcessReader(ReaderSession):
    def __init__(self, ref: PluginRef, plugin: BaseReader) -> None:
        self.ref = ref
        self.plugin = plugin
        self.info = plugin_info(type(plugin), ref)
        self._closed = False

    def check_connection(self) -> ConnectionTestResult:
        return _check_result(_call(self.ref, "check_connection", self.plugin.check_connection), self.ref)

    def discover(self) -> DiscoveryResult:
        result = _call(self.ref, "discover", self.plugin.discover)
        if not isinstance(result, DiscoveryResult):
            raise PluginError(
                f"plugin {self.ref.ref!r}: discover() returned {type(result).__name__}, "
                "not a DiscoveryResult",
                details={"ref": self.ref.ref, "method": "discover"},
            )
        return result

    def estimate(self) -> int | None:
        value = _call(self.ref, "get_total_records_estimate", self.plugin.get_total_records_estimate)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    def partitions(self, states: Mapping[str, Mapping[str, Any]]) -> list[Partition]:
        self.plugin.partition_states = {str(k): dict(v) for k, v in states.items()}
        return checked_partitions(_call(self.ref, "partitions", self.plugin.partitions), self.ref.ref)

    def extract(
        self,
        *,
        stream: str | None = None,
        state: Mapping[str, Any] | None = None,
        schema: pa.Schema | None = None,
        partition: Partition | None = None,
    ) -> Iterator[ExtractedBatch]:
        if partition is None:
            yield from self._extract(self.plugin, stream, state, schema)
            return
        instance = _call(self.ref, "__init__", type(self.plugin), config=self.plugin.config)
        try:
            instance.partition = partition
            yield from self._extract(instance, stream, state, schema)
        finally:
            _call(self.ref, "close", instance.close)

    def _extract(
        self,
        plugin: BaseReader,
        stream: str | None,
        state: Mapping[str, Any] | None,
        schema: pa.Schema | None,
    ) -> Iterator[ExtractedBatch]:
        plugin_state = State(state or {}, stream=stream)
        iterator = _call(self.ref, "extract", plugin.extract, state=plugin_state)
        last_schema = schema
        try:
            while True:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                except DativoError as exc:
                    _located(exc, self.ref)
                    raise
                except Exception as exc:
                    raise _plugin_error(exc, self.ref, "extract") from exc
                data = batch_to_arrow(batch, schema)
                if not isinstance(batch, list):
                    _validate_arrow(data, self.ref)
                last_schema = data.schema
                yield ExtractedBatch(data=data, state=plugin_state.to_dict())
        finally:
            close = getattr(iterator, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
        # The rule every session follows (see ExtractedBatch): a last, empty batch carries the
        # state the plugin left once its generator was exhausted.
        empty_schema = last_schema if last_schema is not None else pa.schema([])
        empty = pa.RecordBatch.from_arrays([pa.array([], f.type) for f in empty_schema], schema=empty_schema)
        yield ExtractedBatch(data=empty, state=plugin_state.to_dict())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            _call(self.ref, "close", self.plugin.close)
        finally:
            _PluginOutput.release()


class _InProcessWriter(WriterSession):
    def __init__(self, ref: PluginRef, plugin: BaseWriter) -> None:
        self.ref = ref
        self.plugin = plugin
        # The built-in writers are thread-agnostic; another plugin may keep thread-bound state.
        self.concurrent_writes = ref.kind == "builtin"
        self.info = plugin_info(type(plugin), ref)
        self._closed = False

    def check_connection(self) -> ConnectionTestResult:
        return _check_result(_call(self.ref, "check_connection", self.plugin.check_connection), self.ref)

    def write_batch(self, data: pa.RecordBatch | pa.Table, file_counter: int) -> list[dict[str, Any]]:
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        result = _call(
            self.ref, "write_batch", self.plugin.write_batch, records=table, file_counter=file_counter
        )
        if not isinstance(result, list):
            raise PluginError(
                f"plugin {self.ref.ref!r}: write_batch() returned {type(result).__name__}, "
                "not a list of file metadata",
                details={"ref": self.ref.ref, "method": "write_batch"},
            )
        return result

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        result = _call(self.ref, "commit_files", self.plugin.commit_files, file_metadata=file_metadata)
        return dict(result) if isinstance(result, Mapping) else {"result": result}

    def abort(self) -> None:
        _call(self.ref, "abort", self.plugin.abort)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            _call(self.ref, "close", self.plugin.close)
        finally:
            _PluginOutput.release()


def _instantiate(ref: PluginRef, cls: type[Any], **kwargs: Any) -> Any:
    try:
        return cls(**kwargs)
    except DativoError as exc:
        _located(exc, ref)
        raise
    except Exception as exc:
        raise _plugin_error(exc, ref, "__init__") from exc


class InProcessSandbox(Sandbox):
    """Runs plugins in this process: no isolation, no limits (``sandbox.backend: none``)."""

    name = "none"
    isolated = False

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Always available."""
        return True, "plugins run in the runtime's own process, without isolation"

    def open_reader(
        self,
        ref: PluginRef,
        config: Mapping[str, Any],
        *,
        limits: SandboxLimits = SandboxLimits(),  # noqa: B008
        mounts: SessionMounts = SessionMounts(),  # noqa: B008
    ) -> ReaderSession:
        """Load the reader class here, check it and ``config`` (its ``config_schema``), and build it.

        With an environment (``mounts.environment``) the reader runs in a child worker process.
        """
        if mounts.environment is not None:
            from dativo_runtime._sandbox._child_worker import open_child_session

            session = open_child_session("reader", ref, config, mounts=mounts)
            assert isinstance(session, ReaderSession)
            return session
        _PluginOutput.hold()
        try:
            cls = load_plugin_class(ref, expected=BaseReader)
            check_plugin_config(ref.ref, read_config_schema(cls, ref.ref), config, untrusted=False)
            return _InProcessReader(ref, _instantiate(ref, cls, config=dict(config)))
        except BaseException as exc:
            _PluginOutput.release()
            if isinstance(exc, DativoError):
                _located(exc, ref)
            raise

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
        """Load the writer class here, check it and ``config``, and build it with ``schema``.

        With an environment (``mounts.environment``) the writer runs in a child worker process.
        """
        if mounts.environment is not None:
            from dativo_runtime._sandbox._child_worker import open_child_session

            session = open_child_session("writer", ref, config, mounts=mounts, schema=schema)
            assert isinstance(session, WriterSession)
            return session
        _PluginOutput.hold()
        try:
            cls = load_plugin_class(ref, expected=BaseWriter)
            check_plugin_config(ref.ref, read_config_schema(cls, ref.ref), config, untrusted=False)
            return _InProcessWriter(ref, _instantiate(ref, cls, config=dict(config), schema=schema))
        except BaseException as exc:
            _PluginOutput.release()
            if isinstance(exc, DativoError):
                _located(exc, ref)
            raise


def describe_plugin(ref: PluginRef) -> tuple[PluginInfo, type[Any]]:
    """Load a plugin class in this process, without the SDK check, and describe it."""
    cls = load_plugin_class(ref, check_sdk=False)
    return plugin_info(cls, ref), cls
