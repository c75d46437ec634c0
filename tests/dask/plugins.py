"""Readers for the Dask executor's tests, loaded by path (``plugins.py:TimedReader``)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import (
    BaseReader,
    Column,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    Partition,
    State,
)


class TimedReader(BaseReader):
    """``count`` records ``{"id": n}`` in batches of ``batch_size``, ``delay`` seconds apart; resumes by id.

    Appends ``{"event": "start"|"end", "job", "t", "pid"}`` lines to ``config["log"]`` (the pid is
    the Dask worker's own under the ``none`` sandbox), so a test sees when and where each run went.
    """

    __version__ = "1.0.0"
    supports_incremental = True

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(True, "nothing to reach")

    def _mark(self, event: str) -> None:
        line = json.dumps({"event": event, "job": self.config["job"], "t": time.time(), "pid": os.getpid()})
        fd = os.open(self.config["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def extract(self, state: State | None = None) -> Iterator[Any]:
        count = int(self.config.get("count", 10))
        size = int(self.config.get("batch_size", 10))
        delay = float(self.config.get("delay", 0))
        start = int(state.get("next", 0)) if state is not None else 0
        self._mark("start")
        for low in range(start, count, size):
            if delay:
                time.sleep(delay)
            high = min(low + size, count)
            yield [{"id": n} for n in range(low, high)]
            if state is not None:
                state.set("next", high)
        self._mark("end")


class WhereReader(BaseReader):
    """One record per partition saying where it was read: ``uid``, ``seccomp`` (the mode in /proc), ``pid``.

    Config: ``partitions`` (how many), ``delay_s`` (sleep before each record), ``marker`` (a host
    path it tries to write: only a plugin running on the host, outside a sandbox, can).
    """

    __version__ = "1.0.0"
    requires_sdk = ">=1.1,<2"

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(True, "nothing to reach")

    def discover(self) -> DiscoveryResult:
        columns = (Column("partition", "string"), Column("uid", "integer"), Column("seccomp", "string"))
        return DiscoveryResult(objects=[DiscoveredStream(name="where", schema=columns)])

    def partitions(self) -> list[Partition]:
        return [Partition(f"p{i}", {}) for i in range(int(self.config.get("partitions", 2)))]

    def extract(self, state: State | None = None) -> Iterator[Any]:
        marker = self.config.get("marker")
        if marker:
            with contextlib.suppress(OSError), open(marker, "w") as out:
                out.write(f"ran on the host, pid {os.getpid()}")
        if self.config.get("delay_s"):
            time.sleep(float(self.config["delay_s"]))
        with open("/proc/self/status") as status:
            seccomp = next((line.split(":")[1].strip() for line in status if line.startswith("Seccomp:")), "")
        yield [{"partition": self.partition.name, "uid": os.getuid(), "seccomp": seccomp}]
