"""A compiled reader: rows computed in C (squares_stream.c), handed over as Arrow by the C stream interface.

The hot loop lives in ``libsquares.so``; this class owns what a reader owns in Python: the
configuration, the schema, the errors and the incremental state. The library fills an
``ArrowArrayStream``; :class:`SquaresStream` exposes it through the Arrow PyCapsule interface
(``__arrow_c_stream__``), so pyarrow (or polars, or DuckDB) reads the batches without a Python
object per row. Build the library beside this file, then reference the class:

    cc -shared -fPIC -O2 -o libsquares.so squares_stream.c
    dativo-conformance squares_reader.py:SquaresReader --config squares.json

In a job: ``source: {plugin: plugins/native/squares_reader.py:SquaresReader, config: {count: 1000000}}``.
The library sits in the plugin's folder, which every sandbox backend mounts, so it loads in the
sandbox worker like the Python file does. Tested by tests/test_native_plugins.py.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from dativo_plugin_sdk import (
    BaseReader,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    PluginError,
)

LIBRARY = Path(__file__).with_name("libsquares.so")
BUILD = "cc -shared -fPIC -O2 -o libsquares.so squares_stream.c"


class ArrowArrayStream(ctypes.Structure):
    """The C stream interface's struct; only the producer and pyarrow call its functions."""

    _fields_ = [
        ("get_schema", ctypes.c_void_p),
        ("get_next", ctypes.c_void_p),
        ("get_last_error", ctypes.c_void_p),
        ("release", ctypes.CFUNCTYPE(None, ctypes.c_void_p)),
        ("private_data", ctypes.c_void_p),
    ]


_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


class SquaresStream:
    """One stream from the C library, readable by any Arrow consumer through ``__arrow_c_stream__``."""

    def __init__(self, library: ctypes.CDLL, start: int, end: int, batch_size: int) -> None:
        self._stream = ArrowArrayStream()
        status = library.squares_open(start, end, batch_size, ctypes.byref(self._stream))
        if status != 0:
            raise PluginError(f"squares_open({start}, {end}, {batch_size}) failed with errno {status}")

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        """A capsule of the stream; the consumer moves the stream out of it (its release becomes NULL)."""
        return _capsule_new(ctypes.addressof(self._stream), b"arrow_array_stream", None)

    def close(self) -> None:
        """Release the stream if no consumer took it."""
        if self._stream.release:
            self._stream.release(ctypes.addressof(self._stream))


class SquaresReader(BaseReader):
    """Config: ``count`` (required) rows (id, id * id), ``batch_size`` rows per batch (65536)."""

    __version__ = "1.0.0"
    requires_sdk = ">=1.0,<2"
    supports_incremental = True
    config_schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 0, "description": "rows to produce"},
            "batch_size": {"type": "integer", "minimum": 1, "default": 65536},
        },
        "required": ["count"],
        "additionalProperties": False,
    }

    def __init__(self, config):
        super().__init__(config)
        self.count = self._integer("count", None, minimum=0)
        self.batch_size = self._integer("batch_size", 65536, minimum=1)
        try:
            self.library = ctypes.CDLL(str(LIBRARY))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot load {LIBRARY} ({exc}); build it beside squares_reader.py: {BUILD}"
            ) from None
        self.library.squares_open.restype = ctypes.c_int
        self.library.squares_open.argtypes = [ctypes.c_int64] * 3 + [ctypes.POINTER(ArrowArrayStream)]

    def _integer(self, key, default, *, minimum):
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(
                f"SquaresReader needs '{key}', an integer >= {minimum}; got {value!r}", details={"field": key}
            )
        return value

    def check_connection(self):
        return ConnectionTestResult(True, f"{LIBRARY.name} loaded")

    def discover(self):
        schema = [Column("id", "integer", nullable=False), Column("square", "integer", nullable=False)]
        return DiscoveryResult([DiscoveredStream("squares", schema, primary_key=["id"], cursor_field="id")])

    def extract(self, state=None):
        import pyarrow as pa

        next_id = int(state.get("next_id", 0)) if state is not None else 0
        stream = SquaresStream(self.library, next_id, max(self.count, next_id), self.batch_size)
        batches = pa.RecordBatchReader.from_stream(stream)  # the PyCapsule interface: no copy
        try:
            for batch in batches:
                yield batch
                next_id += batch.num_rows
                if state is not None:
                    state.set("next_id", next_id)  # after the yield: the runtime has the batch
        finally:
            batches.close()
            stream.close()
