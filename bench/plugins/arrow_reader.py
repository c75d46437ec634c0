"""Bench source plugin yielding the workload as pyarrow record batches built from columns.

Self-contained for sandboxes: it imports only the SDK, pyarrow (through ``workload``) and
the modules that sit in this same folder.

Config: ``n`` (rows, required), ``seed`` (default 0), ``batch_size`` (default 10,000).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import workload
from dict_reader import STREAM, parse_workload_config

from dativo_plugin_sdk import BaseReader, ConnectionTestResult, DiscoveryResult, State


class BenchArrowReader(BaseReader):
    """Yields ``n`` seeded workload records as Arrow record batches of ``batch_size`` rows."""

    __version__ = "1.0.0"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.n, self.seed, self.batch_size = parse_workload_config(config)

    def check_connection(self) -> ConnectionTestResult:
        """Succeed: the workload is generated, nothing to connect to."""
        return ConnectionTestResult(success=True, message="the bench workload is generated locally")

    def discover(self) -> DiscoveryResult:
        """Return the ``records`` stream and its ten columns."""
        return DiscoveryResult(objects=[STREAM])

    def get_total_records_estimate(self) -> int | None:
        """Return ``n``."""
        return self.n

    def extract(self, state: State | None = None) -> Iterator[Any]:
        """Yield the workload's Arrow record batches."""
        yield from workload.arrow_batches(self.n, self.seed, self.batch_size)
