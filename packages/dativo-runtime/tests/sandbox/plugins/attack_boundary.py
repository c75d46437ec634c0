"""Hostile plugins that attack the host through what the worker sends back.

A plugin runs in the worker's interpreter, so it can send anything the worker could: these
find the worker's frame writer and put crafted frames on the protocol, or yield Arrow data
whose buffers lie. Loaded by path by the host-boundary tests, only ever inside a sandbox.
"""

from __future__ import annotations

import gc
import os
import shutil
import struct
import sys
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import BaseReader, BaseWriter, State


def _frame_writer() -> Any:
    """The worker's own FrameWriter (what a plugin that wants to forge frames would find)."""
    for candidate in gc.get_objects():
        if type(candidate).__name__ == "FrameWriter":
            return candidate
    raise RuntimeError("no frame writer found")


def _lying_strings(overread: int) -> pa.RecordBatch:
    """A string column whose middle offset points ``overread`` bytes past its 6-byte data."""
    offsets = struct.pack("<4i", 0, overread, 3, 6)
    array = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets), pa.py_buffer(b"abcdef")])
    return pa.RecordBatch.from_arrays([pa.array([1, 2, 3]), array], names=["id", "name"])


def _compressed_bomb(megabytes: int) -> bytes:
    """An IPC stream whose zstd body is a few kilobytes and decompresses to ``megabytes`` MiB."""
    zeros = pa.repeat(pa.scalar(0, pa.int64()), (megabytes << 20) // 8)
    big = pa.RecordBatch.from_arrays([zeros], names=["id"])
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, big.schema, options=options) as writer:
        writer.write_batch(big)
    return bytes(sink.getvalue())


class BoundaryReader(BaseReader):
    """Attacks the host as ``config['attack']`` says, after one good batch."""

    __version__ = "1.0.0"
    supports_incremental = True

    def extract(self, state: State | None = None) -> Iterator[Any]:
        attack = self.config["attack"]
        yield [{"id": 0, "name": "good"}]
        if attack == "lying_offsets":
            yield _lying_strings(int(self.config.get("overread", 8 << 20)))
        elif attack == "duplicate_columns":
            yield pa.RecordBatch.from_arrays([pa.array([1]), pa.array(["x"])], names=["id", "id"])
        elif attack in ("compressed_bomb", "nan_state", "huge_header", "deep_nesting", "many_lists"):
            writer = _frame_writer()
            raw = writer._write
            with writer._lock:
                if attack == "compressed_bomb":
                    payload = _compressed_bomb(int(self.config.get("megabytes", 256)))
                    control = b'{"op":"batch","rows":1,"state":null}'
                    for _ in range(3):
                        raw(struct.pack(">BI", 1, len(control)) + control)
                        raw(struct.pack(">BI", 2, len(payload)) + payload)
                elif attack == "nan_state":
                    control = b'{"op":"end","state":{"cursor":NaN},"changed":true}'
                    raw(struct.pack(">BI", 1, len(control)) + control)
                elif attack == "huge_header":
                    raw(struct.pack(">BI", 1, 512 << 20) + b"{")
                elif attack == "deep_nesting":
                    control = b'{"op":"log","level":20,"message":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
                    raw(struct.pack(">BI", 1, len(control)) + control)
                else:
                    control = b'{"op":"log","level":20,"x":[' + b"[]," * 1_000_000 + b'[]],"message":"m"}'
                    raw(struct.pack(">BI", 1, len(control)) + control)
                writer._flush()
            if attack == "huge_header":
                import time

                time.sleep(60)  # never send the rest: the host must not wait or allocate for it
        yield [{"id": 1, "name": "after"}]


class BoundaryWriter(BaseWriter):
    """A writer that leaves what ``config['attack']`` says in its output folder."""

    __version__ = "1.0.0"

    def write_batch(self, records: Any, file_counter: int) -> list[dict[str, Any]]:
        folder = self.config["path"]
        os.makedirs(folder, exist_ok=True)
        attack = self.config["attack"]
        path = os.path.join(folder, f"part-{file_counter}.bin")
        with open(path, "wb") as handle:
            handle.write(b"data")
        entry: dict[str, Any] = {"path": path, "record_count": records.num_rows, "size_bytes": 4}
        if attack == "setuid":
            binary = os.path.join(folder, "shell")
            shutil.copyfile(sys.executable, binary)
            os.chmod(binary, 0o4755)
            os.chmod(folder, 0o2777)
        elif attack == "fifo":
            os.mkfifo(os.path.join(folder, "pipe"))
        elif attack == "negative_size":
            entry["size_bytes"] = -5
        elif attack == "outside_path":
            entry["path"] = "/etc/passwd"
        elif attack == "disk":
            chunk = os.urandom(1 << 20)
            for number in range(int(self.config.get("megabytes", 256))):
                with open(os.path.join(folder, f"fill-{number}.bin"), "wb") as handle:
                    handle.write(chunk)
        return [entry]

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        return {"files_committed": len(file_metadata)}


class OversizeResultReader(BaseReader):
    """Answers check_connection with a result larger than a control frame may be."""

    __version__ = "1.0.0"

    def check_connection(self) -> Any:
        from dativo_plugin_sdk import ConnectionTestResult

        return ConnectionTestResult(success=True, message="x" * (5 << 20))

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"id": 1}]
