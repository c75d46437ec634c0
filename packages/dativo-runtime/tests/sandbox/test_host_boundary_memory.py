"""The host side of the sandbox boundary: the bytes a worker makes the host hold, and their size.

* A reader that forges data frames ignoring its credit makes the host hold at most one data
  frame's limit in the frame pump (the frames waiting and the one being read together).
* A batch the host coerces to the declared schema may outgrow the writer's frame limit: the
  host sends it in slices, and a row too large for any frame is a typed error.
* A number that JSON parsing makes infinite (``1e999``) is a protocol violation.
"""

from __future__ import annotations

import io
import struct
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dativo_plugin_sdk import SandboxError
from dativo_runtime._sandbox.host._batch_frames import SLICE_COUNTER_STRIDE, ipc_slices, slice_counter
from dativo_runtime._sandbox.host._remote import _FramePump
from dativo_runtime._sandbox.host._worker_messages import check_message
from dativo_runtime._worker._protocol import FrameReader, ProtocolError, arrow_to_ipc, decode_control

PLUGINS = Path(__file__).parent / "plugins"
ATTACKS = PLUGINS / "attack_output.py"
TIME_BUDGET_S = 60.0
FLOOD_RSS_BUDGET = 640 << 20
"""The runtime's peak RSS while a 128 MiB reader floods it with 40 forged 24 MiB frames.

The frame pump holds at most one data frame's limit (64 MiB here); the rest is the
runtime itself and the pipeline's batches (validation, coercion, the write-behind queue).
"""

RunJob = Callable[..., Any]


def _size_attack(run_job: RunJob, folder: Path, backend: str, memory: str, **config: object) -> Any:
    return run_job(
        folder,
        source={"plugin": f"{ATTACKS}:SizeReader", "config": config},
        target={
            "plugin": f"{ATTACKS}:OutputWriter",
            "config": {"path": str(folder / "out"), "attack": "none"},
        },
        sandbox={"backend": backend, "memory": memory},
        extra={"retry": {"max_attempts": 1}},
    )


def test_frames_forged_past_the_credit_keep_the_host_within_its_budget(
    good_run_afterwards, run_job, backend_name, tmp_path
):
    run = _size_attack(run_job, tmp_path, backend_name, "128m", attack="flood", megabytes=24, count=40)
    assert run.exit_code == 0, (run.error, run.stderr[-3000:])
    assert run.report["records_written"] == 1 + 40 * ((24 << 20) // 8)
    assert run.seconds < TIME_BUDGET_S, run.seconds
    assert run.peak_rss_bytes < FLOOD_RSS_BUDGET, f"runtime peak RSS {run.peak_rss_bytes >> 20} MiB"
    good_run_afterwards(tmp_path, backend_name)


def test_a_batch_the_host_makes_larger_than_the_writers_frames_is_sent_in_slices(
    good_run_afterwards, run_job, backend_name, tmp_path
):
    # 64 MiB of ids fits the 256 MiB sandbox's frames as the reader sends it; with the six
    # declared string columns the host adds, the batch is larger than the writer's frames.
    run = _size_attack(
        run_job, tmp_path, backend_name, "256m", attack="big_batch", megabytes=64, string_columns=6
    )
    assert run.exit_code == 0, (run.error, run.stderr[-3000:])
    rows = (64 << 20) // 8
    assert run.report["records_written"] == rows
    out = tmp_path / "out"
    parts = sorted(out.glob("part-*.bin"), key=lambda p: int(p.stem.split("-")[1]))
    assert [p.name for p in parts] == ["part-0.bin", f"part-{SLICE_COUNTER_STRIDE}.bin"]
    assert sum(int(p.read_text()) for p in parts) == rows
    assert "Traceback" not in run.stderr
    assert run.seconds < TIME_BUDGET_S
    good_run_afterwards(tmp_path, backend_name)


# The pieces, without a sandbox.


def _batch(rows: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(range(rows), pa.int64())], names=["id"])


def test_a_batch_within_the_limit_is_one_frame_and_a_larger_one_slices_in_order():
    batch = _batch(100_000)
    assert len(list(ipc_slices(batch, 10 << 20, ref="w", backend="process"))) == 1
    frames = list(ipc_slices(batch, 200_000, ref="w", backend="process"))
    assert len(frames) > 1
    assert all(frame.size <= 200_000 for frame in frames)
    ids = [
        value for frame in frames for value in pa.ipc.open_stream(frame).read_all().column("id").to_pylist()
    ]
    assert ids == list(range(100_000))
    assert slice_counter(7, 0) == 7
    assert slice_counter(7, 2) == 7 + 2 * SLICE_COUNTER_STRIDE


def test_a_row_larger_than_any_frame_is_a_typed_error():
    wide = pa.RecordBatch.from_arrays([pa.array(["x" * 100_000])], names=["text"])
    with pytest.raises(SandboxError, match="larger than the data frames") as caught:
        list(ipc_slices(wide, 50_000, ref="w", backend="docker"))
    assert caught.value.details["limit"] == "frame_bytes"


def _stream(batches: int, rows: int) -> bytes:
    """A worker's stdout: ``batches`` pairs of a ``batch`` message and its data frame."""
    payload = arrow_to_ipc(_batch(rows)).to_pybytes()
    control = b'{"op":"batch","rows":%d,"state":null}' % rows
    frame = struct.pack(">BI", 1, len(control)) + control + struct.pack(">BI", 2, len(payload)) + payload
    end = b'{"op":"end","state":null}'
    return frame * batches + struct.pack(">BI", 1, len(end)) + end


class _StreamClient:
    """A worker client over a byte stream (what the worker sent, credit or not)."""

    def __init__(self, stream: bytes, data_limit: int) -> None:
        self._stream = io.BytesIO(stream)
        self.transport = types.SimpleNamespace(readinto=self._stream.readinto)
        self.data_limit = data_limit
        self._controls = FrameReader(self._stream.readinto)
        self.sent: list[dict[str, Any]] = []

    def receive(self) -> dict[str, Any]:
        message = self._controls.read_control()
        check_message(message, 0)
        return message

    def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def _dead(self, cause: BaseException | None = None) -> SandboxError:
        return SandboxError(f"broke the worker protocol: {cause}", details={"reason": "crash"})

    def refuse(self, error: BaseException) -> None:
        pass


def test_the_pump_never_holds_more_than_one_data_frames_limit():
    frame_bytes = len(arrow_to_ipc(_batch(40_000)).to_pybytes())
    limit = int(frame_bytes * 2.5)
    client = _StreamClient(_stream(6, 40_000), data_limit=limit)
    pump = _FramePump(client, window=8)  # type: ignore[arg-type]
    pump.start()
    time.sleep(0.5)  # Nobody consumes: the pump reads what fits, then waits.
    assert pump.peak_held <= limit
    assert pump.peak_held == 2 * frame_bytes
    rows = 0
    while True:
        _, batch = pump.next()
        if batch is None:
            break
        rows += batch.num_rows
        pump.credit()
    pump.join()
    assert rows == 6 * 40_000
    assert pump.peak_held <= limit


def test_a_worker_that_sends_past_its_credit_breaks_the_protocol():
    client = _StreamClient(_stream(12, 10), data_limit=64 << 20)
    pump = _FramePump(client, window=8)  # type: ignore[arg-type]
    pump.start()
    taken = []
    with pytest.raises(SandboxError, match="more batches than its credit window of 8"):
        for _ in range(12):
            taken.append(pump.next())  # No credit given.
    assert len(taken) == 8
    pump.join()


def test_a_consumer_waiting_does_not_stop_the_pump_from_ending():
    client = _StreamClient(_stream(0, 1), data_limit=1 << 20)
    pump = _FramePump(client, window=8)  # type: ignore[arg-type]
    pump.start()
    done = threading.Event()

    def consume() -> None:
        pump.next()
        done.set()

    threading.Thread(target=consume, daemon=True).start()
    assert done.wait(5)


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"1" + b"0" * 400 + b".0"])
def test_a_number_that_parses_to_infinity_is_a_protocol_violation(number):
    payload = b'{"op":"batch","rows":1,"state":{"cursor":%s}}' % number
    message = decode_control(payload)
    with pytest.raises(ProtocolError, match="infinite"):
        check_message(message, len(payload))
    nested = b'{"op":"result","value":[[{"a":[%s]}]]}' % number
    with pytest.raises(ProtocolError, match="infinite"):
        check_message(decode_control(nested), len(nested))
