"""Example source plugin that yields Arrow record batches instead of dict lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import (
    BaseReader,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    State,
)


class ArrowNumbersReader(BaseReader):
    """Yields ``count`` rows of ``(id, square)`` as pyarrow record batches of ``batch_size``."""

    __version__ = "1.0.0"
    supports_incremental = True
    config_schema = {
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 0, "default": 1000, "description": "Rows in all."},
            "batch_size": {"type": "integer", "minimum": 1, "default": 100, "description": "Rows per batch."},
        },
        "additionalProperties": False,
    }

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        try:
            self.count = int(config.get("count", 1000))
            self.batch_size = int(config.get("batch_size", 100))
        except (TypeError, ValueError):
            raise ConfigurationError("'count' and 'batch_size' must be integers") from None
        if self.count < 0 or self.batch_size <= 0:
            raise ConfigurationError("'count' must be >= 0 and 'batch_size' > 0")

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(True, "nothing to connect to")

    def discover(self) -> DiscoveryResult:
        schema = (Column("id", "integer", nullable=False), Column("square", "integer", nullable=False))
        return DiscoveryResult([DiscoveredStream("numbers", schema, primary_key=("id",), cursor_field="id")])

    def extract(self, state: State | None = None) -> Iterator[Any]:
        import pyarrow as pa

        start = int(state.get("id", -1)) + 1 if state is not None else 0
        for low in range(start, self.count, self.batch_size):
            ids = list(range(low, min(low + self.batch_size, self.count)))
            yield pa.record_batch(
                {"id": pa.array(ids, pa.int64()), "square": pa.array([i * i for i in ids], pa.int64())}
            )
            if state is not None:
                state.set("id", ids[-1])
