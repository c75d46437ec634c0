"""A partitioned reader whose partition states, each within the 1 MiB limit, add up to far more.

Loaded by path by the sandbox tests; never imported as a test module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import (
    BaseReader,
    Column,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    Partition,
    State,
)


class FatStatesReader(BaseReader):
    """``partitions`` partitions of one row each; each ends with a state near the 1 MiB limit.

    ``kind: bytes`` fills the state with a 900 KB string; ``kind: containers`` with 60,000
    empty lists (small in bytes, costly to parse).
    """

    __version__ = "1.0.0"
    supports_incremental = True

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(True, "ok")

    def discover(self) -> DiscoveryResult:
        return DiscoveryResult([DiscoveredStream("s", (Column("id", "integer"),))])

    def partitions(self) -> list[Partition]:
        return [Partition(f"p{i}", {"i": i}) for i in range(int(self.config.get("partitions", 300)))]

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield pa.record_batch({"id": pa.array([1], pa.int64())})
        if state is not None:
            if self.config.get("kind") == "containers":
                state.set("blob", [[] for _ in range(60_000)])
            else:
                state.set("blob", "x" * 900_000)
