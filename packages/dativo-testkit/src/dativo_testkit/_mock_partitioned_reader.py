"""``MockPartitionedReader``: a deterministic source split into partitions of disjoint id ranges (SDK 1.1)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from dativo_plugin_sdk import (
    BaseReader,
    Batch,
    ConfigurationError,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    Partition,
    Record,
    State,
)

from ._records import ALL_TYPES_SCHEMA, build_record
from ._version import __version__

__all__ = ["MockPartitionedReader"]

_KNOWN_KEYS = ("stream", "partitions", "records_per_partition", "batch_size", "seed", "incremental")
_CURSOR = "id"


def _integer(config: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"MockPartitionedReader config {key!r} must be an integer >= {minimum}, got {value!r}",
            details={"key": key, "value": repr(value)},
        )
    return value


class MockPartitionedReader(BaseReader):
    """A deterministic source split into partitions, each a disjoint range of ids.

    Partition ``k`` holds records ``k * records_per_partition`` up to the next partition's
    first, built as :class:`MockReader` builds them (every SDK column type; ``id`` and
    ``updated_at`` increase with the record's position). Partitions are named by the ids
    they cover (``ids:1-1000``) and carry their bounds in ``params``. An incremental read
    keeps a cursor, the last ``id`` yielded, in the partition's own :class:`State`; the
    whole-stream instance (``self.partition.is_whole_stream``, what a runtime older than
    SDK 1.1 extracts) yields every partition's records in order, under the same cursor,
    so a stream that starts being partitioned keeps its place.

    Config keys (all optional):

    ===================== ====================== ==========================================
    key                   default                meaning
    ===================== ====================== ==========================================
    stream                ``mock_partitioned``   the one stream's name
    partitions            4                      how many partitions
    records_per_partition 100                    records in each partition
    batch_size            10                     records per batch (a batch never spans two
                                                 partitions)
    seed                  0                      seed of the record values
    incremental           true                   false: extract neither reads nor sets the
                                                 state (a full-refresh source; the class
                                                 still declares ``supports_incremental``, so
                                                 the incremental checks flag it)
    ===================== ====================== ==========================================

    Args:
        config: The settings above.

    Raises:
        ConfigurationError: For an unknown key or a value out of range.

    Example:
        >>> reader = MockPartitionedReader({"partitions": 2, "records_per_partition": 3})
        >>> [p.name for p in reader.partitions()]
        ['ids:1-3', 'ids:4-6']
    """

    __version__ = __version__
    requires_sdk = ">=1.1,<2"
    supports_incremental = True

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        unknown = sorted(set(config) - set(_KNOWN_KEYS))
        if unknown:
            raise ConfigurationError(
                f"MockPartitionedReader does not know the config key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(_KNOWN_KEYS)}",
                details={"unknown": unknown},
            )
        stream = config.get("stream", "mock_partitioned")
        if not isinstance(stream, str) or not stream:
            raise ConfigurationError(
                f"MockPartitionedReader config 'stream' must be a non-empty string, got {stream!r}"
            )
        incremental = config.get("incremental", True)
        if not isinstance(incremental, bool):
            raise ConfigurationError(
                f"MockPartitionedReader config 'incremental' must be true or false, got {incremental!r}"
            )
        self.stream_name = stream
        self.partition_count = _integer(config, "partitions", 4, 1)
        self.records_per_partition = _integer(config, "records_per_partition", 100, 1)
        self.batch_size = _integer(config, "batch_size", 10, 1)
        self.seed = _integer(config, "seed", 0, -(2**63))
        self.incremental = incremental

    @property
    def stream(self) -> DiscoveredStream:
        """The stream this reader serves."""
        return DiscoveredStream(
            name=self.stream_name,
            schema=ALL_TYPES_SCHEMA,
            type="table",
            primary_key=("id",),
            cursor_field=_CURSOR,
        )

    def check_connection(self) -> ConnectionTestResult:
        """Report success."""
        total = self.partition_count * self.records_per_partition
        return ConnectionTestResult(
            success=True, message=f"mock source with {self.partition_count} partitions, {total} records"
        )

    def discover(self) -> DiscoveryResult:
        """Return the one stream."""
        return DiscoveryResult(objects=[self.stream], metadata={"partitions": self.partition_count})

    def partitions(self) -> list[Partition]:
        """Return one partition per id range, in id order."""
        size = self.records_per_partition
        return [
            Partition(f"ids:{k * size + 1}-{(k + 1) * size}", {"first": k * size, "end": (k + 1) * size})
            for k in range(self.partition_count)
        ]

    def record(self, index: int) -> Record:
        """Return record ``index`` (from 0) of the whole stream; its ``id`` is ``index + 1``."""
        return build_record(ALL_TYPES_SCHEMA, index, seed=self.seed, sequential=("id", "updated_at"))

    def expected_records(self, partition: Partition | None = None) -> list[Record]:
        """Return every record of ``partition`` (default: the whole stream), in order."""
        first, end = self._bounds(partition or self.partition)
        return [self.record(i) for i in range(first, end)]

    def _bounds(self, partition: Partition) -> tuple[int, int]:
        if partition.is_whole_stream:
            return 0, self.partition_count * self.records_per_partition
        first, end = partition.params.get("first"), partition.params.get("end")
        if not (isinstance(first, int) and isinstance(end, int) and 0 <= first <= end):
            raise ConfigurationError(
                f"MockPartitionedReader: partition {partition.name!r} has no id range in its params "
                f"({dict(partition.params)!r}); it was not listed by partitions()",
                details={"partition": partition.name},
            )
        return first, end

    def _start(self, first: int, state: State | None) -> int:
        if not self.incremental or state is None or _CURSOR not in state:
            return first
        cursor = state.get(_CURSOR)
        if isinstance(cursor, bool) or not isinstance(cursor, int):
            raise ConfigurationError(
                f"MockPartitionedReader: the saved state {_CURSOR}={cursor!r} of partition "
                f"{self.partition.name!r} is not an id",
                details={"partition": self.partition.name},
            )
        return max(first, cursor)  # ids start at 1: the record after id n is index n

    def extract(self, state: State | None = None) -> Iterator[Batch]:
        """Yield this instance's partition (or the whole stream) from where ``state`` left off.

        Args:
            state: This partition's own state; its ``id`` is the last id yielded.

        Yields:
            Lists of dict records, never spanning two partitions.

        Raises:
            ConfigurationError: If the partition has no id range, or the state no usable cursor.
        """
        first, end = self._bounds(self.partition)
        start = self._start(first, state)
        size = self.records_per_partition
        # Batches end at partition boundaries, so the whole stream batches like its partitions.
        low = start
        while low < end:
            high = min(low + self.batch_size, end, (low // size + 1) * size)
            yield [self.record(i) for i in range(low, high)]
            if state is not None and self.incremental:
                state.set(_CURSOR, high)
            low = high
