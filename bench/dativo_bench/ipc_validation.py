"""What validating every worker batch costs the host: the ``ipc-validation`` section.

The host decodes each data frame a sandboxed plugin sends as untrusted (a walk of the IPC
metadata, then ``RecordBatch.validate(full=True)``). This section times that decode against
the cheap one the host used before (``read_all`` + ``validate()``) on the workload's own
Arrow batches, interleaved, and relates it to the columnar ceiling's time per batch, so the
report says how much of the Arrow path full validation takes.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any

from .candidates import PLUGIN_DIR

__all__ = ["IpcValidation", "measure_ipc_validation"]


@dataclass
class IpcValidation:
    """Seconds per million rows of each decode, medians over the runs."""

    n: int
    batch_size: int
    megabytes: float
    cheap_s: float
    full_s: float

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON data."""
        return {
            "n": self.n,
            "batch_size": self.batch_size,
            "megabytes": round(self.megabytes, 1),
            "cheap_decode_s": round(self.cheap_s, 4),
            "untrusted_decode_s": round(self.full_s, 4),
            "untrusted_mb_per_s": round(self.megabytes / self.full_s, 1) if self.full_s else None,
        }


def measure_ipc_validation(n: int, *, seed: int, batch_size: int, runs: int) -> IpcValidation:
    """Decode the workload's batches both ways, ``runs`` times, interleaved.

    Args:
        n: Rows of the workload.
        seed: The workload's seed.
        batch_size: Rows per batch (one data frame each).
        runs: Rounds; the medians are reported.

    Returns:
        The medians and the bytes decoded per round.
    """

    from dativo_runtime._sandbox.host._untrusted_arrow import read_untrusted_batch
    from dativo_runtime._worker._protocol import arrow_from_ipc, arrow_to_ipc

    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import workload
    finally:
        sys.path.remove(str(PLUGIN_DIR))
    frames = [
        bytes(arrow_to_ipc(batch)) for batch in workload.arrow_batches(n, seed=seed, batch_size=batch_size)
    ]
    megabytes = sum(map(len, frames)) / 1e6

    timings: dict[str, list[float]] = {"cheap": [], "full": []}
    for _ in range(runs):
        for name, decode in (("cheap", arrow_from_ipc), ("full", read_untrusted_batch)):
            started = time.perf_counter()
            for frame in frames:
                decode(frame)
            timings[name].append(time.perf_counter() - started)
    return IpcValidation(
        n=n,
        batch_size=batch_size,
        megabytes=megabytes,
        cheap_s=statistics.median(timings["cheap"]),
        full_s=statistics.median(timings["full"]),
    )
