"""What the host does with bytes from a worker: Arrow frames, control frames, writer output.

Unit level (no sandbox): the payloads are built here as a hostile worker would send them;
test_host_boundary.py runs the same attacks from real sandboxed plugins.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import time
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import PluginError, SandboxError, ValidationError
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._sandbox.host._output_guard import DiskQuota, folder_usage, sanitize_output
from dativo_runtime._sandbox.host._untrusted_arrow import read_untrusted_batch
from dativo_runtime._sandbox.host._worker_messages import (
    MAX_STATE_BYTES,
    check_file_metadata,
    check_message,
    data_frame_limit,
)
from dativo_runtime._worker._protocol import (
    MAX_CONTROL_BYTES,
    FrameReader,
    ProtocolError,
    TruncatedFrameError,
    arrow_to_ipc,
    decode_control,
)

GOOD = pa.RecordBatch.from_pydict(
    {
        "id": [1, 2, 3],
        "name": ["a", "bb", None],
        "tags": [[1], [2, 3], None],
        "point": [{"x": 1.5}, None, {"x": 3.0}],
        "kind": pa.array(["x", "y", "x"]).dictionary_encode(),
    }
)
GOOD_IPC = bytes(arrow_to_ipc(GOOD).to_pybytes())


def _lying_strings(overread: int) -> pa.RecordBatch:
    offsets = struct.pack("<4i", 0, overread, 3, 6)
    array = pa.Array.from_buffers(pa.string(), 3, [None, pa.py_buffer(offsets), pa.py_buffer(b"abcdef")])
    return pa.RecordBatch.from_arrays([array], names=["name"])


def test_a_good_batch_reads_back_unchanged():
    assert read_untrusted_batch(GOOD_IPC).equals(GOOD)


@pytest.mark.parametrize("overread", [1 << 10, 1 << 20, 64 << 20])
def test_offsets_past_the_data_are_refused_though_the_cheap_check_passes(overread):
    batch = _lying_strings(overread)
    batch.validate()  # what the host used to rely on
    with pytest.raises(ProtocolError, match="Offset invariant failure"):
        read_untrusted_batch(arrow_to_ipc(batch).to_pybytes())


@pytest.mark.parametrize("codec", ["zstd", "lz4"])
def test_compressed_bodies_are_refused_before_decompression(codec):
    big = pa.RecordBatch.from_arrays([pa.repeat(pa.scalar(0, pa.int64()), 4 << 20)], names=["id"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, big.schema, options=pa.ipc.IpcWriteOptions(compression=codec)) as writer:
        writer.write_batch(big)
    payload = sink.getvalue().to_pybytes()
    assert len(payload) < 256 << 10  # 32 MiB of values in a few kilobytes
    with pytest.raises(ProtocolError, match="compressed"):
        read_untrusted_batch(payload)


def test_rows_without_buffers_are_bounded():
    with pytest.raises(ProtocolError, match="rows"):
        read_untrusted_batch(arrow_to_ipc(pa.RecordBatch.from_arrays([pa.nulls(1 << 30)], names=["n"])))


def test_duplicate_column_names_are_a_validation_error():
    batch = pa.RecordBatch.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(ValidationError, match="duplicate column names: 'a'"):
        read_untrusted_batch(arrow_to_ipc(batch))


def test_two_batches_in_one_frame_are_refused():
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, GOOD.schema) as writer:
        writer.write_batch(GOOD)
        writer.write_batch(GOOD)
    with pytest.raises(ProtocolError, match="at most one record batch"):
        read_untrusted_batch(sink.getvalue().to_pybytes())


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(GOOD_IPC) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_frames_are_refused_or_read_safely(flips):
    payload = bytearray(GOOD_IPC)
    for position, value in flips:
        payload[position] = value
    try:
        batch = read_untrusted_batch(bytes(payload))
    except (ProtocolError, ValidationError):
        return
    batch.to_pylist()  # anything accepted is safe to read in full


@given(st.binary(max_size=300))
def test_garbage_is_a_protocol_error(garbage):
    with pytest.raises((ProtocolError, ValidationError)):
        read_untrusted_batch(garbage)


def _frame(kind: int, payload: bytes, announced: int | None = None) -> bytes:
    return struct.pack(">BI", kind, len(payload) if announced is None else announced) + payload


def test_a_huge_header_allocates_nothing_before_its_bytes_arrive():
    reader = FrameReader(io.BytesIO(_frame(2, b"x" * 10, announced=500 << 20)).readinto)
    started = time.perf_counter()
    with pytest.raises(TruncatedFrameError, match="10 of 524288000"):
        reader.read_frame()
    assert time.perf_counter() - started < 0.5


def test_control_frames_have_their_own_small_limit():
    reader = FrameReader(io.BytesIO(_frame(1, b"{", announced=MAX_CONTROL_BYTES + 1)).readinto)
    with pytest.raises(ProtocolError, match="control message of 4194305 bytes exceeds the limit"):
        reader.read_frame()
    limited = FrameReader(io.BytesIO(_frame(2, b"", announced=65 << 20)).readinto, max_data_bytes=64 << 20)
    with pytest.raises(ProtocolError, match="data frame"):
        limited.read_frame()


def test_data_frames_are_limited_by_the_sandbox_memory():
    assert data_frame_limit(SandboxLimits(memory_bytes=16 << 20)) == 64 << 20
    assert data_frame_limit(SandboxLimits(memory_bytes=256 << 20)) == 256 << 20
    assert data_frame_limit(SandboxLimits(memory_bytes=64 << 30)) == 512 << 20


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b'{"op":"end","state":{"x":NaN}}', "not a JSON number"),
        (b'{"op":"end","state":{"x":-Infinity}}', "not a JSON number"),
        (b'{"op":"log","m":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"op":"log","m":[' + b"[]," * 300_000 + b"[]]}", "arrays and objects"),
        (b"[1]", "an object with an 'op'"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_malformed_control_messages_are_protocol_errors(payload, words):
    started = time.perf_counter()
    with pytest.raises(ProtocolError, match=words):
        decode_control(payload)
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"op": "surprise"}, "unknown message"),
        ({"op": "batch", "rows": "1"}, "'rows' is a str"),
        ({"op": "batch", "rows": True}, "'rows' is a bool"),
        ({"op": "batch", "rows": False}, "'rows' is a bool"),
        ({"op": "batch", "rows": -1}, "negative"),
        ({"op": "batch"}, "without 'rows'"),
        ({"op": "end", "state": [1]}, "'state' is a list"),
        ({"op": "log", "level": "x"}, "'level' is a str"),
        ({"op": "error", "error": "boom"}, "'error' is a str"),
        ({"op": "result", "value": 1, "spans": {}}, "'spans'"),
    ],
)
def test_message_shapes_are_checked(message, words):
    with pytest.raises(ProtocolError, match=words):
        check_message(message, 100)


def test_state_size_is_limited():
    state = {"cursor": "x" * (MAX_STATE_BYTES + 1)}
    with pytest.raises(ProtocolError, match="state is larger than 1 MiB"):
        check_message({"op": "end", "state": state}, MAX_STATE_BYTES + 100)
    check_message({"op": "end", "state": {"cursor": 1}}, 100)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"path": "part-1.csv", "size_bytes": -5}, "'size_bytes' is -5"),
        ({"record_count": 1.5}, "'record_count' is 1.5"),
        ({"record_count": True}, "'record_count' is True"),
        ({"path": "/etc/passwd"}, "outside"),
        ({"path": "../other-tenant/x"}, "outside"),
        ({"path": 7}, "not a string"),
    ],
)
def test_bogus_writer_metadata_is_refused(tmp_path, entry, words):
    with pytest.raises(PluginError, match=words):
        check_file_metadata(entry, tmp_path, ref="w.py:W")


def test_good_writer_metadata_passes(tmp_path):
    check_file_metadata(
        {"path": str(tmp_path / "a" / "b.csv"), "record_count": 3, "size_bytes": 0}, tmp_path, ref="w"
    )
    check_file_metadata({"path": "s3://bucket/key", "size_bytes": 10}, None, ref="w")


def test_setuid_bits_are_stripped_and_special_files_refused(tmp_path):
    binary = tmp_path / "sub" / "shell"
    binary.parent.mkdir()
    binary.write_bytes(b"#!/bin/sh\n")
    binary.chmod(0o6755)
    binary.parent.chmod(0o2775)
    (tmp_path / "link").symlink_to("sub/shell")  # inside the folder: kept
    (tmp_path / "sub" / "absolute").symlink_to(binary)
    sanitize_output(tmp_path, ref="w", backend="process", refuse_special=True)
    assert not binary.stat().st_mode & (stat.S_ISUID | stat.S_ISGID)
    assert not binary.parent.stat().st_mode & stat.S_ISGID
    assert stat.S_IMODE(binary.stat().st_mode) == 0o755
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(SandboxError, match="FIFO"):
        sanitize_output(tmp_path, ref="w", backend="process", refuse_special=True)
    sanitize_output(tmp_path, ref="w", backend="process", refuse_special=False)
    assert not (tmp_path / "pipe").exists()
    assert (tmp_path / "link").is_symlink()  # symlinks inside the folder stay, and are never followed
    assert (tmp_path / "sub" / "absolute").is_symlink()


@pytest.mark.parametrize("target", ["/etc/shadow", "../../outside", "sub/../../outside"])
def test_a_symlink_out_of_the_output_folder_is_refused_then_removed(tmp_path, target):
    folder = tmp_path / "out"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "leak.csv").symlink_to(target)
    with pytest.raises(SandboxError, match="symlink"):
        sanitize_output(folder, ref="w", backend="process", refuse_special=True)
    sanitize_output(folder, ref="w", backend="process", refuse_special=False)
    assert not (folder / "sub" / "leak.csv").is_symlink()


def test_the_disk_quota_counts_what_was_added_and_removes_it(tmp_path: Path):
    (tmp_path / "old.bin").write_bytes(os.urandom(1 << 20))
    quota = DiskQuota(tmp_path, 512 << 10, lambda: None)
    assert not quota.over()
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "big.bin").write_bytes(os.urandom(1 << 20))
    assert quota.over()
    assert quota.exceeded_by is not None
    assert quota.exceeded_by >= 1 << 20
    quota.remove_added()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]
    assert folder_usage(tmp_path) >= 1 << 20


def test_the_disk_quota_watcher_calls_back_once(tmp_path: Path):
    calls = []
    quota = DiskQuota(tmp_path, 1000, lambda: calls.append(1)).start()
    (tmp_path / "big.bin").write_bytes(os.urandom(1 << 16))
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.05)
    quota.stop()
    assert calls == [1]
