"""Readers that split their stream into partitions (SDK 1.1), for the partition tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import (
    BaseReader,
    Column,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    Partition,
    PluginError,
    State,
    TransientError,
)

WORKER = uuid.uuid4().hex
"""Different in every process that imports this module: tells sandbox workers apart."""


class RangesReader(BaseReader):
    """``ids`` 0..N split into ranges of ``size``; each range a partition, resumable by its own cursor.

    Config: ``ranges`` (how many), ``size`` (ids per range), ``names`` (override which ranges
    are listed, by index), ``fail`` (a partition that fails after its first batch), ``flaky``
    (a partition that fails with a TransientError until the marker file ``flaky_marker`` exists),
    ``delay_s`` (sleep before each batch), ``trace`` (add which worker read each record, and when).
    """

    __version__ = "1.0.0"
    requires_sdk = ">=1.1,<2"
    supports_incremental = True

    def _indexes(self) -> list[int]:
        listed = self.config.get("names")
        return list(listed) if listed is not None else list(range(int(self.config.get("ranges", 4))))

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(success=True, message="ranges are always there")

    def discover(self) -> DiscoveryResult:
        columns = (
            Column("id", "integer", nullable=False),
            Column("partition", "string"),
            Column("worker", "string"),
            Column("at", "float"),
        )
        return DiscoveryResult(
            objects=[DiscoveredStream(name="ids", schema=columns, primary_key=("id",), cursor_field="id")]
        )

    def partitions(self) -> list[Partition]:
        size = int(self.config.get("size", 10))
        seen = sorted(self.partition_states)
        return [
            Partition(f"range-{i}", {"start": i * size, "stop": (i + 1) * size, "seen": seen})
            for i in self._indexes()
        ]

    def _ranges(self) -> list[tuple[str, int, int]]:
        if not self.partition.is_whole_stream:
            params = self.partition.params
            return [(self.partition.name, int(params["start"]), int(params["stop"]))]
        size = int(self.config.get("size", 10))
        return [(f"range-{i}", i * size, (i + 1) * size) for i in self._indexes()]

    def extract(self, state: State | None = None) -> Iterator[list[dict[str, Any]]]:
        for name, start, stop in self._ranges():
            if name == self.config.get("flaky") and not Path(self.config["flaky_marker"]).exists():
                Path(self.config["flaky_marker"]).write_text("x")
                raise TransientError(f"{name} is briefly unavailable")
            begin = max(start, int(state.get("next", start))) if state is not None else start
            for low in range(begin, stop, 5):
                if self.config.get("delay_s"):
                    time.sleep(float(self.config["delay_s"]))
                high = min(low + 5, stop)
                trace = {"worker": WORKER, "at": time.time()} if self.config.get("trace") else {}
                yield [{"id": i, "partition": name, **trace} for i in range(low, high)]
                if state is not None:
                    state.set("next", high)
                if name == self.config.get("fail"):
                    raise PluginError(f"{name} broke after its first batch")


class BadPartitionsReader(BaseReader):
    """A hostile reader whose ``partitions()`` returns what ``kind`` says."""

    requires_sdk = ">=1.1,<2"
    supports_incremental = True

    def partitions(self) -> Any:
        kind = self.config["kind"]
        if kind == "not-a-list":
            return {"name": "x"}
        if kind == "duplicates":
            return [Partition("a"), Partition("a")]
        if kind == "too-many":
            return [Partition(f"p{i}") for i in range(50_001)]
        return ["not a partition"]

    def extract(self, state: State | None = None) -> Iterator[list[dict[str, Any]]]:
        yield [{"id": 1}]
