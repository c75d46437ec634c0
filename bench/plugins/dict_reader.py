"""Bench source plugin yielding the workload as lists of dict records.

Self-contained for sandboxes: it imports only the SDK and ``workload.py``, which sits in
this same folder (the one folder a sandboxed plugin can see).

Config: ``n`` (rows, required), ``seed`` (default 0), ``batch_size`` (default 10,000).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import workload

from dativo_plugin_sdk import (
    BaseReader,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    State,
)

STREAM = DiscoveredStream(
    "records",
    tuple(Column(name, kind, nullable=nullable) for name, (kind, nullable) in workload.COLUMN_TYPES.items()),
    primary_key=("id",),
)
"""The one stream both bench readers offer."""


def parse_workload_config(config: Mapping[str, Any]) -> tuple[int, int, int]:
    """Return ``(n, seed, batch_size)`` from a bench reader's config.

    Raises:
        ConfigurationError: If a value is missing, not an integer, or out of range.
    """
    try:
        n = int(config["n"])
        seed = int(config.get("seed", 0))
        batch_size = int(config.get("batch_size", workload.DEFAULT_BATCH_SIZE))
    except KeyError:
        raise ConfigurationError("the bench reader needs 'n', the number of rows to yield") from None
    except (TypeError, ValueError):
        raise ConfigurationError(
            "'n', 'seed' and 'batch_size' of the bench reader must be integers"
        ) from None
    if n < 0 or batch_size <= 0:
        raise ConfigurationError(f"'n' must be >= 0 and 'batch_size' > 0, got n={n}, batch_size={batch_size}")
    return n, seed, batch_size


class BenchDictReader(BaseReader):
    """Yields ``n`` seeded workload records as lists of ``batch_size`` dicts."""

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

    def extract(self, state: State | None = None) -> Iterator[list[dict[str, Any]]]:
        """Yield the workload's dict batches."""
        yield from workload.dict_batches(self.n, self.seed, self.batch_size)
