"""The wire protocol between the host runtime and a sandbox worker.

Both directions carry *frames* over the worker's stdin/stdout: a 5-byte header (one type
byte, a 4-byte big-endian length) and a payload. A ``CONTROL`` frame holds one JSON object
(requests, results, state checkpoints, structured errors, log records); a ``DATA`` frame
holds one Arrow IPC stream (schema, dictionaries, one record batch). Records never cross
as JSON.

A session::

    host                                         worker
    CONTROL {"op": "hello", role, ref, limits, schema?, environment?, paths?}
                                                 CONTROL {"op": "loaded", info, config_schema}
                                                 | CONTROL {"op": "error", error}
    CONTROL {"op": "configure", config}          (config only ever here, once the host
                                                  checked it against config_schema)
                                                 CONTROL {"op": "ready", info, seccomp, ...}
                                                 | CONTROL {"op": "error", error}
    CONTROL {"op": "check_connection" | "discover" | "estimate"}
                                                 CONTROL {"op": "result", value}
    CONTROL {"op": "extract", stream, state, schema, window}
                                                 CONTROL {"op": "batch", state, rows}
                                                 DATA    <Arrow IPC stream>
                                                 ...  (at most ``window`` unacknowledged)
    CONTROL {"op": "credit", n} | {"op": "cancel"}
                                                 CONTROL {"op": "end", state}
    CONTROL {"op": "write_batch", file_counter}
    DATA    <Arrow IPC stream>                   CONTROL {"op": "result", value}
    CONTROL {"op": "commit_files" | "abort" | "close"}
                                                 CONTROL {"op": "result", value}

``environment`` (a folder or ``null``) is the plugin's environment: the worker puts it on
``sys.path`` right after the standard library (``.pth`` files apply, as with
``site.addsitedir``) and sets ``DATIVO_PLUGIN_ENV`` before the plugin is imported; ``paths``
are further folders (those holding an installed plugin's package) put after it.

Role ``inspect`` (``dativo-conformance --sandbox``) loads the plugin class, answers
``ready`` with its ``info`` without building it, and then accepts only ``close``.

Any request may be answered with ``{"op": "error", "error": DativoError.to_dict()}``; the
worker may send ``{"op": "log", ...}`` at any time. This module imports only the standard
library at import time (pyarrow lazily) so the worker starts fast.
"""

from __future__ import annotations

import base64
import json
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DEFAULT_WINDOW",
    "FRAME_CONTROL",
    "FRAME_DATA",
    "MAX_CONTROL_BYTES",
    "MAX_FRAME_BYTES",
    "PROTOCOL_VERSION",
    "WORKER_EXIT_DEADLINE",
    "WORKER_EXIT_HOST_GONE",
    "WORKER_EXIT_OOM",
    "WORKER_MODULE",
    "FrameReader",
    "FrameTooLargeError",
    "FrameWriter",
    "ProtocolError",
    "TruncatedFrameError",
    "arrow_from_ipc",
    "arrow_to_ipc",
    "decode_control",
    "encode_control",
    "schema_from_text",
    "schema_to_text",
]

PROTOCOL_VERSION = 4
FRAME_CONTROL = 1
FRAME_DATA = 2
MAX_FRAME_BYTES = 512 * 1024 * 1024
"""Largest data frame either side accepts; a bigger batch fails with a message to yield smaller ones."""
MAX_CONTROL_BYTES = 4 * 1024 * 1024
"""Largest control frame (a JSON message: a request, a result, a state checkpoint, a log record)."""
MAX_CONTROL_CONTAINERS = 200_000
"""Most JSON arrays and objects one control message may hold (each costs the reader memory)."""
_READ_CHUNK = 1 << 20
DEFAULT_WINDOW = 8
"""Batches the worker may send ahead of the host's consumption (the credit window)."""
WORKER_EXIT_OOM = 86
"""Exit status of a worker that ran out of memory (``MemoryError``) and could not report it."""
WORKER_EXIT_DEADLINE = 87
"""Exit status of a worker its own watchdog ended at the session's wall-clock deadline."""
WORKER_EXIT_HOST_GONE = 88
"""Exit status of a worker its watchdog ended because the host hung up the protocol."""
WORKER_MODULE = "dativo_runtime._worker._main"

_HEADER = struct.Struct(">BI")


class ProtocolError(Exception):
    """A peer sent something that is not a valid frame or message."""


class FrameTooLargeError(ProtocolError):
    """A frame this side was about to send is over the protocol's limit (nothing was sent)."""


class TruncatedFrameError(ProtocolError):
    """The stream ended inside a frame (the peer died, or closed its end, while sending)."""


class FrameWriter:
    """Writes frames to a binary sink; safe to share between threads.

    Args:
        write: Writes all of the given bytes (``file.write`` of a buffered writer).
        flush: Flushes the sink after each frame.
    """

    def __init__(self, write: Callable[[Any], Any], flush: Callable[[], Any]) -> None:
        self._write = write
        self._flush = flush
        self._lock = threading.Lock()

    def _write_frame(self, kind: int, payload: Any, size: int) -> None:
        if kind == FRAME_CONTROL and size > MAX_CONTROL_BYTES:
            raise FrameTooLargeError(
                f"a message of {size} bytes exceeds the protocol limit of {MAX_CONTROL_BYTES} bytes for "
                "control messages (results, state, errors); keep state and results small"
            )
        if size > MAX_FRAME_BYTES:
            raise FrameTooLargeError(
                f"a frame of {size} bytes exceeds the protocol limit of {MAX_FRAME_BYTES} bytes; "
                "yield smaller batches"
            )
        self._write(_HEADER.pack(kind, size))
        if size:
            self._write(payload)

    def send_control(self, message: dict[str, Any]) -> None:
        """Send one JSON control message."""
        payload = encode_control(message)
        with self._lock:
            self._write_frame(FRAME_CONTROL, payload, len(payload))
            self._flush()

    def send_data(self, payload: Any) -> None:
        """Send one Arrow IPC payload (bytes, memoryview or ``pyarrow.Buffer``)."""
        view = memoryview(payload)
        with self._lock:
            self._write_frame(FRAME_DATA, view, view.nbytes)
            self._flush()

    def send_control_and_data(self, message: dict[str, Any], payload: Any) -> None:
        """Send a control message directly followed by its data frame, with no frame in between."""
        control = encode_control(message)
        view = memoryview(payload)
        with self._lock:
            self._write_frame(FRAME_CONTROL, control, len(control))
            self._write_frame(FRAME_DATA, view, view.nbytes)
            self._flush()


class FrameReader:
    """Reads frames from a binary source, trusting nothing the peer announces.

    A frame's body is read in chunks as it arrives, so a header announcing hundreds of
    megabytes costs nothing until the bytes are really sent; control frames are limited to
    :data:`MAX_CONTROL_BYTES`, data frames to ``max_data_bytes``.

    Args:
        readinto: Fills a memoryview with up to its length in bytes and returns how many
            it read (0 at end of stream), like ``io.BufferedReader.readinto``.
        max_data_bytes: Largest data frame accepted (at most :data:`MAX_FRAME_BYTES`).
    """

    def __init__(self, readinto: Callable[[memoryview], int], max_data_bytes: int = MAX_FRAME_BYTES) -> None:
        self._readinto = readinto
        self.max_data_bytes = min(max_data_bytes, MAX_FRAME_BYTES)

    def _read_exact(self, size: int, *, at_boundary: bool) -> bytearray:
        buffer = bytearray(min(size, _READ_CHUNK))
        filled = 0
        while filled < size:
            if filled == len(buffer):
                # Grow as the bytes arrive (doubling), never to more than the header announced.
                buffer.extend(bytes(min(len(buffer), size - len(buffer))))
            with memoryview(buffer) as view:
                count = self._readinto(view[filled:])
            if not count:
                if filled == 0 and at_boundary:
                    raise EOFError("the peer closed the stream")
                raise TruncatedFrameError(f"stream ended inside a frame ({filled} of {size} bytes)")
            filled += count
        return buffer

    def read_frame(self) -> tuple[int, bytearray]:
        """Read one frame.

        Returns:
            The frame type and its payload.

        Raises:
            EOFError: If the stream ended cleanly between frames.
            ProtocolError: If the stream ended inside a frame or the frame is invalid.
        """
        kind, size = _HEADER.unpack(self._read_exact(_HEADER.size, at_boundary=True))
        if kind not in (FRAME_CONTROL, FRAME_DATA):
            raise ProtocolError(f"unknown frame type {kind}")
        limit = MAX_CONTROL_BYTES if kind == FRAME_CONTROL else self.max_data_bytes
        if size > limit:
            what = "control message" if kind == FRAME_CONTROL else "data frame"
            raise ProtocolError(f"a {what} of {size} bytes exceeds the limit of {limit} bytes")
        return kind, self._read_exact(size, at_boundary=False) if size else bytearray()

    def read_control(self) -> dict[str, Any]:
        """Read one frame that must be a control message and return the message."""
        kind, payload = self.read_frame()
        if kind != FRAME_CONTROL:
            raise ProtocolError("expected a control frame, got a data frame")
        return decode_control(payload)

    def read_data(self) -> bytearray:
        """Read one frame that must be a data frame and return its payload."""
        kind, payload = self.read_frame()
        if kind != FRAME_DATA:
            raise ProtocolError("expected a data frame, got a control frame")
        return payload


def encode_control(message: dict[str, Any]) -> bytes:
    """Serialise a control message (values JSON cannot hold become strings)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False, default=str).encode()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (non-finite numbers are refused)")


def decode_control(payload: bytes | bytearray) -> dict[str, Any]:
    """Parse a control payload into a message dict with an ``op``.

    Strict JSON only: ``NaN`` and ``Infinity`` are refused, and so are messages nested
    deeper than the interpreter's recursion limit or holding more than
    :data:`MAX_CONTROL_CONTAINERS` arrays and objects.

    Raises:
        ProtocolError: If the payload is not such a message.
    """
    if payload.count(b"[") + payload.count(b"{") > MAX_CONTROL_CONTAINERS:
        raise ProtocolError(f"control frame holds more than {MAX_CONTROL_CONTAINERS} arrays and objects")
    try:
        message = json.loads(payload, parse_constant=_refuse_constant)
    except RecursionError:
        raise ProtocolError("control frame is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"control frame is not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("control frame is not an object with an 'op'")
    return message


def arrow_to_ipc(data: pa.RecordBatch | pa.Table) -> pa.Buffer:
    """Serialise a record batch or table as one Arrow IPC stream.

    The stream is measured first (``MockOutputStream`` copies nothing), then written into
    one buffer of that exact size: a growing ``BufferOutputStream`` reallocates and
    touches fresh pages as it grows, which costs about 60 times more for a 1 MB batch.
    """
    import pyarrow as pa

    def write(sink: pa.NativeFile) -> None:
        with pa.ipc.new_stream(sink, data.schema) as writer:
            if isinstance(data, pa.Table):
                writer.write_table(data)
            else:
                writer.write_batch(data)

    measure = pa.MockOutputStream()
    write(measure)
    buffer = pa.allocate_buffer(measure.size())
    write(pa.FixedSizeBufferWriter(buffer))
    return buffer


def arrow_from_ipc(payload: bytes | bytearray) -> pa.Table:
    """Read one Arrow IPC stream (without copying the buffers) and validate it.

    Raises:
        ProtocolError: If the payload is not a valid Arrow IPC stream.
    """
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
        table.validate()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise ProtocolError(f"data frame is not a valid Arrow IPC stream: {exc}") from None
    return table


def schema_to_text(schema: pa.Schema | None) -> str | None:
    """Encode an Arrow schema for a control message (base64 of its IPC form)."""
    if schema is None:
        return None
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


def schema_from_text(text: str | None) -> pa.Schema | None:
    """Decode :func:`schema_to_text` output."""
    if text is None:
        return None
    import pyarrow as pa

    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
