"""A batch the host sends to a sandboxed writer, cut into data frames that fit the writer's limit.

The host coerces what a reader sent to the declared schema (adding the columns it lacks,
casting others), so a batch that crossed the boundary within a data frame's limit may be
larger than that limit on its way to the writer. Such a batch is cut into row slices
(``slice`` shares the buffers: nothing is copied but each slice's own IPC form), each sent
to the plugin's ``write_batch`` on its own, and only one slice's IPC form exists at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pyarrow as pa

from dativo_plugin_sdk import SandboxError
from dativo_runtime._sandbox._limits import format_bytes
from dativo_runtime._worker._protocol import arrow_to_ipc

__all__ = ["SLICE_COUNTER_STRIDE", "ipc_slices", "slice_counter"]

SLICE_COUNTER_STRIDE = 1 << 32
"""What separates the ``file_counter`` of one slice of a batch from the next (file names stay unique)."""


def slice_counter(file_counter: int, number: int) -> int:
    """The ``file_counter`` the plugin sees for slice ``number`` of the batch ``file_counter``."""
    return file_counter + number * SLICE_COUNTER_STRIDE


def _ipc_size(data: pa.RecordBatch | pa.Table) -> int:
    sink = pa.MockOutputStream()  # Measures the IPC stream without writing it anywhere.
    with pa.ipc.new_stream(sink, data.schema) as writer:
        if isinstance(data, pa.Table):
            writer.write_table(data)
        else:
            writer.write_batch(data)
    return int(sink.size())


def ipc_slices(data: pa.RecordBatch | pa.Table, limit: int, *, ref: str, backend: str) -> Iterator[pa.Buffer]:
    """The IPC streams of ``data`` in order, each at most ``limit`` bytes (one when it fits).

    Args:
        data: The batch for the writer.
        limit: The largest data frame the writer's worker is sent.
        ref: The plugin reference, for the message.
        backend: The backend's name, for the message.

    Yields:
        One Arrow IPC stream per slice, built when asked for.

    Raises:
        SandboxError: If a single row is larger than ``limit`` (reason ``crash``, ``details.limit``
            ``frame_bytes``).
    """
    size = _ipc_size(data)
    if size <= limit:
        yield arrow_to_ipc(data)
        return
    pieces = math.ceil(size / limit)
    step = max(1, math.ceil(data.num_rows / pieces))
    pending = [data.slice(offset, step) for offset in reversed(range(0, data.num_rows, step))]
    while pending:
        part = pending.pop()
        size = _ipc_size(part)
        if size <= limit:
            yield arrow_to_ipc(part)
        elif part.num_rows > 1:
            half = part.num_rows // 2
            pending += [part.slice(half), part.slice(0, half)]
        else:
            raise SandboxError(
                f"a row of {format_bytes(size)} is larger than the data frames the host sends to plugin "
                f"{ref!r} in the {backend} sandbox ({format_bytes(limit)}, from the writer's "
                "sandbox.memory); raise the target's sandbox.memory or write smaller rows",
                details={
                    "reason": "crash",
                    "backend": backend,
                    "ref": ref,
                    "limit": "frame_bytes",
                    "max_frame_bytes": limit,
                },
            )
