"""Native reader libraries with the dativo-ingest ABI, run through ctypes: ``path/libx.so:create_reader``.

Private but shared: the sandbox worker, the runtime's in-process backend and
``dativo-conformance`` all get a reader class for such a reference from
:func:`native_reader_class`, through the shared loader (:mod:`._loading`). Making the class
never loads the library: only constructing a reader does, so a sandboxed run loads it in
the sandbox worker and never in the host.

The ABI (the one dativo-ingest's Rust plugins export; nothing else is required)::

    void*       create_reader(const char* config_json);  // NULL: the config was refused
    const char* extract_batch(void* reader);             // a JSON array of record objects; NULL: done
    void        free_string(const char* batch);          // frees what extract_batch returned
    void        free_reader(void* reader);

The constructor's name is the reference's symbol (``create_reader`` by convention); the
other three names are fixed. The library receives the job's ``source.config`` as JSON.
Each batch becomes a list of dict records, which the worker turns into Arrow with the
stream's schema. The schema :meth:`NativeLibraryReader.discover` reports is inferred from
the first batch (the ABI has no schema export). The library keeps no cursor the runtime
can save, so these readers are not incremental.

Imports only the standard library and the SDK; pyarrow is not needed here.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from ._compat import DEFAULT_REQUIRES_SDK
from ._errors import ConfigurationError, PluginError
from ._reader import BaseReader
from ._results import ConnectionTestResult, DiscoveryResult
from ._schema import Column, ColumnType, DiscoveredStream

__all__ = ["ABI_SYMBOLS", "NATIVE_SUFFIXES", "NativeLibraryReader", "native_reader_class"]

ABI_SYMBOLS = ("extract_batch", "free_string", "free_reader")
"""The symbols a library must export besides its constructor."""

NATIVE_SUFFIXES = (".so", ".dylib")
"""File suffixes a reference's library part may end with (``libx.so:create_reader``)."""

_ABI = (
    "a dativo-ingest reader library exports create_reader(const char* config_json) -> void*, "
    "extract_batch(void*) -> const char* (a JSON array of records, NULL when done), "
    "free_string(const char*) and free_reader(void*)"
)


def _column_type(values: list[Any]) -> ColumnType:
    """The column type of a JSON column: from its first non-null value (text when all are null)."""
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool):
            return ColumnType.BOOLEAN
        if isinstance(value, int):
            # A float later in the column makes it a float column (JSON writes 1.0 as 1 at times).
            return ColumnType.FLOAT if any(isinstance(v, float) for v in values) else ColumnType.INTEGER
        if isinstance(value, float):
            return ColumnType.FLOAT
        if isinstance(value, str):
            return ColumnType.STRING
        return ColumnType.JSON
    return ColumnType.STRING


def _columns_of(records: list[dict[str, Any]]) -> list[Column]:
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return [Column(name, _column_type([r.get(name) for r in records])) for name in names]


_STDERR_TAIL_CHARS = 2000


@contextlib.contextmanager
def _stderr_captured(into: list[str]) -> Iterator[None]:
    """Collect what native code writes to fd 2 meanwhile (and write it on to stderr afterwards).

    A library refusing its config says why on stderr (``eprintln!``); the error the reader
    raises quotes it, so the reason reaches the author even from a sandbox worker, whose
    stderr is otherwise shown only when the worker dies.
    """
    sys.stderr.flush()
    try:
        sink = tempfile.TemporaryFile()  # noqa: SIM115  (closed by the with below, after fd 2 is back)
    except OSError:  # No temporary file to spare: the library's stderr goes where it goes.
        yield
        return
    with sink:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            written = sink.read()
            if written:
                with contextlib.suppress(OSError):
                    os.write(2, written)
                into.append(written[-_STDERR_TAIL_CHARS:].decode("utf-8", "replace").strip())


class _Library:
    """One opened library and its four functions, typed for ctypes."""

    def __init__(self, path: str, constructor: str, ref: str) -> None:
        self.path = path
        self.ref = ref
        try:
            self.dll = ctypes.CDLL(path)
        except OSError as exc:
            raise ConfigurationError(
                f"native library {path!r} (from reference {ref!r}) cannot be loaded: {exc}. Build it for "
                "this platform (a sandboxed run loads it inside the sandbox: under 'docker', for the "
                "image's C library) and install the shared libraries it links to",
                details={"ref": ref, "library": path},
            ) from None
        self.create = self._function(constructor, ctypes.c_void_p, [ctypes.c_char_p])
        self.extract = self._function("extract_batch", ctypes.c_void_p, [ctypes.c_void_p])
        self.free_string = self._function("free_string", None, [ctypes.c_void_p])
        self.free_reader = self._function("free_reader", None, [ctypes.c_void_p])

    def _function(self, name: str, restype: Any, argtypes: list[Any]) -> Any:
        try:
            function = getattr(self.dll, name)
        except AttributeError:
            raise ConfigurationError(
                f"native library {self.path!r} (from reference {self.ref!r}) does not export {name!r}; "
                f"{_ABI}. Check the symbol in the reference and that the functions are "
                "'#[no_mangle] pub extern \"C\"' (Rust) or not static (C)",
                details={"ref": self.ref, "library": self.path, "symbol": name},
            ) from None
        function.restype = restype
        function.argtypes = argtypes
        return function


class NativeLibraryReader(BaseReader):
    """A reader backed by a native library with the dativo-ingest ABI (see the module docstring).

    Subclasses made by :func:`native_reader_class` name the library; constructing one loads
    it and calls the constructor with the config as JSON.

    Raises:
        ConfigurationError: From the constructor: the config is not JSON, the library cannot be
            loaded, lacks a symbol of the ABI, or its constructor returned NULL.
    """

    __version__ = "1.0.0"
    requires_sdk = DEFAULT_REQUIRES_SDK
    supports_incremental = False

    library_path: ClassVar[str] = ""
    """The library's absolute path."""
    constructor_symbol: ClassVar[str] = "create_reader"
    """The exported function that makes a reader from the config."""
    reference: ClassVar[str] = ""
    """The plugin reference as written (messages name the plugin by it)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        if not self.library_path:
            raise TypeError("NativeLibraryReader is abstract: use native_reader_class(...)")
        try:
            self._config_json = json.dumps(dict(self.config), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"plugin {self.reference!r}: source.config cannot be passed to a native library as JSON "
                f"({exc}); use plain JSON values",
                details={"ref": self.reference},
            ) from None
        self._lock = threading.Lock()
        self._lib = _Library(self.library_path, self.constructor_symbol, self.reference)
        self._unused: int | None = self._create()  # Refuse a bad config now, as every reader does.
        self._discovered: DiscoveryResult | None = None

    # The library's functions ------------------------------------------------------------

    def _create(self) -> int:
        printed: list[str] = []
        with _stderr_captured(printed):
            handle = self._lib.create(self._config_json)
        if not handle:
            said = " ".join(" ".join(printed).split())
            why = f"; it printed: {said}" if said else " (it printed nothing to say why)"
            raise ConfigurationError(
                f"plugin {self.reference!r}: {self.constructor_symbol}() of {self.library_path!r} returned "
                f"NULL: the library refused source.config{why}",
                details={
                    "ref": self.reference,
                    "library": self.library_path,
                    "symbol": self.constructor_symbol,
                },
            )
        return int(handle)

    def _handle(self) -> int:
        with self._lock:
            handle, self._unused = self._unused, None
        return handle if handle is not None else self._create()

    def _free(self, handle: int) -> None:
        self._lib.free_reader(handle)

    def _next_batch(self, handle: int) -> list[dict[str, Any]] | None:
        pointer = self._lib.extract(handle)
        if not pointer:
            return None
        try:
            text = ctypes.string_at(pointer)
        finally:
            self._lib.free_string(pointer)
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise self._bad_batch(f"text that is not JSON ({exc}): {text[:80]!r}") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise self._bad_batch(f"JSON that is not an array of record objects: {text[:80]!r}")
        return records

    def _bad_batch(self, what: str) -> PluginError:
        return PluginError(
            f"plugin {self.reference!r}: extract_batch() of {self.library_path!r} returned {what}; "
            "it must return a JSON array of objects, or NULL when done",
            details={"ref": self.reference, "library": self.library_path, "symbol": "extract_batch"},
        )

    # The reader --------------------------------------------------------------------------

    @property
    def stream_name(self) -> str:
        """The stream's name: ``config["stream"]``, else the library's name (``libitems.so``: ``items``)."""
        name = self.config.get("stream")
        if isinstance(name, str) and name:
            return name
        stem = Path(self.library_path).name.split(".")[0]
        return stem[3:] if stem.startswith("lib") and len(stem) > 3 else stem

    def check_connection(self) -> ConnectionTestResult:
        """Succeed: the library loaded and its constructor accepted the config."""
        return ConnectionTestResult(True, f"{Path(self.library_path).name} loaded and accepted the config")

    def discover(self) -> DiscoveryResult:
        """One stream whose columns are inferred from the first batch (no batch: no columns)."""
        if self._discovered is None:
            handle = self._handle()
            try:
                first = self._next_batch(handle) or []
            finally:
                self._free(handle)
            stream = DiscoveredStream(self.stream_name, tuple(_columns_of(first)))
            self._discovered = DiscoveryResult([stream], metadata={"library": Path(self.library_path).name})
        return self._discovered

    def extract(self, state: Any = None) -> Iterator[list[dict[str, Any]]]:
        """Yield each batch the library returns, until ``extract_batch`` returns NULL."""
        handle = self._handle()
        try:
            while (records := self._next_batch(handle)) is not None:
                yield records
        finally:
            self._free(handle)

    def close(self) -> None:
        """Free the reader made at construction if no read used it."""
        with self._lock:
            handle, self._unused = self._unused, None
        if handle is not None:
            self._free(handle)


_CLASSES: dict[tuple[str, str, str], type[NativeLibraryReader]] = {}
_CLASSES_LOCK = threading.Lock()


def native_reader_class(library: str, constructor: str, ref: str) -> type[NativeLibraryReader]:
    """The reader class for a native library, without loading the library.

    Args:
        library: The library's absolute path.
        constructor: The exported constructor (``create_reader``).
        ref: The reference as written.

    Returns:
        A :class:`NativeLibraryReader` subclass; the same one for the same reference (each
        reference keeps its own name in messages).
    """
    with _CLASSES_LOCK:
        cls = _CLASSES.get((library, constructor, ref))
        if cls is None:
            namespace = {
                "library_path": library,
                "constructor_symbol": constructor,
                "reference": ref,
                "__doc__": f"The native reader {ref!r}: {Path(library).name}, made by {constructor}().",
                "__dativo_display_name__": ref,
                "__module__": __name__,
                "__qualname__": NativeLibraryReader.__qualname__,
            }
            cls = type("NativeLibraryReader", (NativeLibraryReader,), namespace)
            _CLASSES[(library, constructor, ref)] = cls
        return cls
