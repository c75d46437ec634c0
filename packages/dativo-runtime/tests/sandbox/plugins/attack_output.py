"""Hostile plugins that attack the host through a writer's output folder and the batches' size.

Loaded by path by the host-boundary tests, only ever inside a sandbox.
"""

from __future__ import annotations

import gc
import os
import struct
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import BaseReader, BaseWriter, Column, DiscoveredStream, DiscoveryResult, State


class OutputWriter(BaseWriter):
    """A writer that leaves what ``config['attack']`` says in its output folder."""

    __version__ = "1.0.0"

    def write_batch(self, records: Any, file_counter: int) -> list[dict[str, Any]]:
        folder = self.config["path"]
        os.makedirs(folder, exist_ok=True)
        attack = self.config["attack"]
        path = os.path.join(folder, f"part-{file_counter}.bin")
        with open(path, "wb") as handle:
            handle.write(str(records.num_rows).encode())
        entry: dict[str, Any] = {"path": path, "record_count": records.num_rows, "size_bytes": 4}
        if getattr(self, "_attacked", False):
            return [entry]
        self._attacked = True
        if attack == "deep_fifo":
            # Deeper than any path the host could name: only a walk by descriptors reaches the bottom.
            os.chdir(folder)
            for _ in range(int(self.config.get("depth", 3000))):
                os.mkdir("d")
                os.chdir("d")
            os.mkfifo("pipe")
            with open("suid", "wb") as handle:
                handle.write(b"#!/bin/sh\n")
            os.chmod("suid", 0o4755)
        elif attack == "deep_disk":
            os.chdir(folder)
            for _ in range(int(self.config.get("depth", 1200))):
                os.mkdir("d")
                os.chdir("d")
            chunk = os.urandom(1 << 20)
            for number in range(int(self.config.get("megabytes", 200))):
                with open(f"fill-{number}", "wb") as handle:
                    handle.write(chunk)
        elif attack == "inodes":
            many = os.path.join(folder, "many")
            os.makedirs(many, exist_ok=True)
            for number in range(int(self.config.get("count", 200_000))):
                os.close(os.open(os.path.join(many, str(number)), os.O_CREAT | os.O_WRONLY, 0o644))
        return [entry]

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        return {"files_committed": len(file_metadata)}


def _frame_writer() -> Any:
    """The worker's own FrameWriter (what a plugin that wants to forge frames would find)."""
    for candidate in gc.get_objects():
        if type(candidate).__name__ == "FrameWriter":
            return candidate
    raise RuntimeError("no frame writer found")


class _Sink:
    """A file-like object over the worker's raw pipe writer, for pyarrow to stream into."""

    def __init__(self, write: Any) -> None:
        self.write_raw = write
        self.closed = False

    def write(self, data: Any) -> int:
        self.write_raw(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _flood(megabytes: int, count: int) -> None:
    """Put ``count`` data frames of ``megabytes`` MiB on the protocol at once, ignoring the credit."""
    rows = (megabytes << 20) // 8
    ids = pa.Array.from_buffers(pa.int64(), rows, [None, pa.allocate_buffer(rows * 8)])
    batch = pa.RecordBatch.from_arrays([ids], names=["id"])
    measure = pa.MockOutputStream()
    with pa.ipc.new_stream(measure, batch.schema) as writer:
        writer.write_batch(batch)
    writer_of_frames = _frame_writer()
    with writer_of_frames._lock:
        for _ in range(count):
            control = b'{"op":"batch","rows":%d,"state":null}' % rows
            writer_of_frames._write(struct.pack(">BI", 1, len(control)) + control)
            writer_of_frames._write(struct.pack(">BI", 2, measure.size()))
            sink = pa.PythonFile(_Sink(writer_of_frames._write), mode="w")
            with pa.ipc.new_stream(sink, batch.schema) as stream:
                stream.write_batch(batch)
            writer_of_frames._flush()


class SizeReader(BaseReader):
    """Sends batches whose size attacks the host as ``config['attack']`` says."""

    __version__ = "1.0.0"

    def discover(self) -> DiscoveryResult:
        extra = int(self.config.get("string_columns", 1))
        columns = (Column("id", "integer"), *(Column(f"s{n}", "string") for n in range(extra)))
        return DiscoveryResult([DiscoveredStream("s", columns)])

    def extract(self, state: State | None = None) -> Iterator[Any]:
        attack = self.config["attack"]
        if attack == "flood":
            yield pa.RecordBatch.from_arrays([pa.array([0], pa.int64())], names=["id"])
            _flood(int(self.config.get("megabytes", 60)), int(self.config.get("count", 40)))
        elif attack == "big_batch":
            # Fits a data frame as sent; the host's coercion (adding the declared string
            # columns) makes it larger than the writer's frame limit.
            rows = (int(self.config.get("megabytes", 64)) << 20) // 8
            ids = pa.Array.from_buffers(pa.int64(), rows, [None, pa.allocate_buffer(rows * 8)])
            yield pa.RecordBatch.from_arrays([ids], names=["id"])
