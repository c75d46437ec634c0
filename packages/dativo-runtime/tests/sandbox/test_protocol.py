"""The frame protocol, the worker's credit window, and how a dead worker is described."""

from __future__ import annotations

import io
import signal
import socket
import threading

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox import SANDBOX_FAILURE_REASONS, SandboxLimits
from dativo_runtime._sandbox.host._remote import (
    ExitStatus,
    StderrTail,
    describe_exit,
    effective_limits,
    format_bytes,
)
from dativo_runtime._worker._protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    FrameReader,
    FrameWriter,
    ProtocolError,
    arrow_from_ipc,
    arrow_to_ipc,
    schema_from_text,
    schema_to_text,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.lists(st.dictionaries(st.text(max_size=8), JSON, max_size=4), min_size=1, max_size=5))
def test_control_frames_round_trip(messages):
    sink = io.BytesIO()
    writer = FrameWriter(sink.write, sink.flush)
    for message in messages:
        writer.send_control({**message, "op": "x"})
    reader = FrameReader(io.BytesIO(sink.getvalue()).readinto)
    assert [reader.read_control() for _ in messages] == [{**m, "op": "x"} for m in messages]
    with pytest.raises(EOFError):
        reader.read_frame()


def test_arrow_data_round_trips_with_its_schema():
    batch = pa.record_batch(
        {"id": pa.array([1, 2], pa.int64()), "tag": pa.array(["a", "b"]).dictionary_encode()},
    )
    sink = io.BytesIO()
    FrameWriter(sink.write, sink.flush).send_control_and_data({"op": "batch"}, arrow_to_ipc(batch))
    reader = FrameReader(io.BytesIO(sink.getvalue()).readinto)
    assert reader.read_control() == {"op": "batch"}
    table = arrow_from_ipc(reader.read_data())
    assert table.schema == batch.schema
    assert table.to_pylist() == batch.to_pylist()
    schema = pa.schema([pa.field("x", pa.timestamp("us", tz="UTC"), metadata={b"k": b"v"})])
    assert schema_from_text(schema_to_text(schema)) == schema


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x01\x00\x00\x00\x05ab", "ended inside a frame"),
        (b"\x07\x00\x00\x00\x00", "unknown frame type 7"),
        (b"\x01" + (MAX_FRAME_BYTES + 1).to_bytes(4, "big"), "exceeds the limit"),
        (b"\x01\x00\x00\x00\x02[]", "not an object with an 'op'"),
        (b"\x01\x00\x00\x00\x02{x", "not JSON"),
    ],
)
def test_invalid_frames_are_protocol_errors(data, error):
    with pytest.raises(ProtocolError, match=error):
        FrameReader(io.BytesIO(data).readinto).read_control()


def test_invalid_arrow_payload_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="not a valid Arrow IPC stream"):
        arrow_from_ipc(b"definitely not arrow")
    sink = io.BytesIO()
    FrameWriter(sink.write, sink.flush).send_data(b"xyz")
    reader = FrameReader(io.BytesIO(sink.getvalue()).readinto)
    with pytest.raises(ProtocolError, match="expected a control frame"):
        reader.read_control()


def test_worker_sends_at_most_its_credit_window(example_ref):
    """The worker stops after ``window`` unacknowledged batches and resumes on credit."""
    from dativo_runtime._worker import _main as _worker

    host, worker_side = socket.socketpair()
    worker_file = worker_side.makefile("rwb")
    worker = _worker._Worker(
        FrameReader(worker_file.readinto), FrameWriter(worker_file.write, worker_file.flush)
    )
    host_file = host.makefile("rwb")
    reader = FrameReader(host_file.readinto)
    writer = FrameWriter(host_file.write, host_file.flush)
    # The config follows the worker's "loaded"; sent ahead, it waits in the socket.
    writer.send_control({"op": "configure", "config": {"count": 50, "batch_size": 5}})
    worker.open(
        {
            "protocol": PROTOCOL_VERSION,
            "role": "reader",
            "ref": example_ref("arrow_reader.py", "ArrowNumbersReader").to_dict(),
        }
    )
    assert reader.read_control()["op"] == "loaded"
    thread = threading.Thread(target=worker.extract, args=({"op": "extract", "window": 2},), daemon=True)
    thread.start()
    received = []
    for _ in range(2):
        assert reader.read_control()["op"] == "batch"
        received.append(arrow_from_ipc(reader.read_data()))
    host.settimeout(0.3)
    with pytest.raises(TimeoutError):
        host.recv(1, socket.MSG_PEEK)  # the third batch waits for credit
    host.settimeout(None)
    writer.send_control({"op": "cancel"})
    assert reader.read_control() == {"op": "end", "state": None, "changed": False, "cancelled": True}
    thread.join(5)
    assert not thread.is_alive()
    assert [t.column("id").to_pylist()[0] for t in received] == [0, 5]
    for item in (host_file, worker_file, host, worker_side):
        item.close()


def test_stderr_tail_keeps_the_last_lines_only():
    tail = StderrTail(max_lines=3, max_line_chars=10)
    tail.feed(b"one\ntwo\nthr")
    tail.feed(b"ee\nfour\n" + b"x" * 50 + b"\nunfinished")
    assert tail.lines() == ["four", "x" * 10, "unfinished"]


REF = PluginRef.parse("pkg.mod:Reader")
LIMITS = SandboxLimits(memory_bytes=256 << 20, timeout_s=5, cpu=1)


@pytest.mark.parametrize(
    ("status", "timed_out", "started", "reason", "words"),
    [
        (ExitStatus(137), True, True, "timeout", "exceeded the wall-clock timeout of 5 s"),
        (ExitStatus(137, oom_killed=True), False, True, "oom", "exceeded the memory limit 256 MiB (OOM)"),
        (ExitStatus(86), False, True, "oom", "exceeded the memory limit 256 MiB (OOM)"),
        (ExitStatus(128 + signal.SIGSYS), False, True, "syscall_blocked", "blocked system call (seccomp)"),
        (ExitStatus(None, signal=signal.SIGXCPU), False, True, "timeout", "CPU time budget of 5 s"),
        (ExitStatus(137), False, True, "signal", "killed by signal 9 (SIGKILL)"),
        (ExitStatus(1), False, False, "startup_failed", "failed to start (exit status 1)"),
        (ExitStatus(3), False, True, "crash", "exited unexpectedly with status 3"),
    ],
)
def test_describe_exit_names_the_reason(status, timed_out, started, reason, words):
    error = describe_exit(
        status,
        backend="process",
        ref=REF.ref,
        limits=LIMITS,
        timed_out=timed_out,
        started=started,
        stderr=["line 1", "last line"],
        cpu_seconds=5,
    )
    assert error.details["reason"] == reason
    assert reason in SANDBOX_FAILURE_REASONS
    assert words in error.message
    assert error.message.endswith("last line")
    assert error.details["stderr_tail"] == ["line 1", "last line"]
    assert not error.retryable


def test_effective_limits_fill_defaults_under_the_ceilings():
    limits = effective_limits(SandboxLimits(cpu=2), SandboxLimits(memory_bytes=512 << 20, timeout_s=60))
    assert limits == SandboxLimits(
        cpu=2, memory_bytes=512 << 20, timeout_s=60, pids=128, network=False, disk_bytes=10 << 30
    )
    assert format_bytes(3 << 30) == "3 GiB"
    assert format_bytes(1000) == "1000 bytes"
