"""The base class every source plugin extends."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, ClassVar

from ._batch import Batch
from ._partition import WHOLE_STREAM, Partition
from ._results import ConnectionTestResult, DiscoveryResult
from ._state import State

__all__ = ["BaseReader"]


class BaseReader(abc.ABC):
    """Base class of source plugins: check, discover, then extract batches.

    Subclasses set ``__version__`` (their own semver release) and optionally
    ``requires_sdk`` (a PEP 440 specifier; absent means ``>=1.0,<2``), and implement
    :meth:`extract`. Everything else has a sensible default.

    Args:
        config: The ``source.config`` mapping of the job, secrets already resolved.

    Attributes:
        config: The configuration the reader was built with.
        partition: The partition this instance extracts (SDK 1.1): set by the runtime
            before ``extract``; the whole stream (:data:`WHOLE_STREAM`) unless
            :meth:`partitions` splits it.
        partition_states: Every partition's last committed state by name (SDK 1.1), set by
            the runtime before :meth:`partitions` is called, for readers that re-split.
    """

    __version__: ClassVar[str | None] = None
    requires_sdk: ClassVar[str | None] = None
    supports_incremental: ClassVar[bool] = False
    """Set ``True`` when :meth:`extract` honours and advances :class:`State`."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config, Mapping):
            raise TypeError(f"{type(self).__name__} config must be a mapping, got {type(config).__name__}")
        self.config: Mapping[str, Any] = config
        self.partition: Partition = Partition(WHOLE_STREAM)
        self.partition_states: Mapping[str, Mapping[str, Any]] = {}

    def check_connection(self) -> ConnectionTestResult:
        """Check that the source is reachable with this config.

        Returns:
            A :class:`ConnectionTestResult`; the default says the check is not implemented.
        """
        return ConnectionTestResult(
            success=False,
            message=f"{type(self).__name__} does not implement check_connection",
            error_code="NOT_IMPLEMENTED",
        )

    def discover(self) -> DiscoveryResult:
        """List the streams this source offers with their schemas.

        Returns:
            A :class:`DiscoveryResult`; empty by default.
        """
        return DiscoveryResult(objects=[], metadata={})

    def partitions(self) -> list[Partition]:
        """Split the stream into independent partitions, each extracted by its own instance (SDK 1.1).

        Each partition's records must be disjoint from every other's, and together they are
        the stream. The runtime extracts up to ``source.parallelism`` of them at once, each
        in a new instance of this class whose ``partition`` attribute is set before ``extract`` is
        called with that partition's own saved state (a partition with no saved state yet
        gets the stream's unpartitioned state, or an empty one). Name partitions by what
        they cover, so a name means the same records in every run; see docs/sdk.md for
        re-splitting between runs.

        Returns:
            The partitions, in the order to extract them; by default one, the whole stream.
        """
        return [Partition(WHOLE_STREAM)]

    @abc.abstractmethod
    def extract(self, state: State | None = None) -> Iterator[Batch]:
        """Yield the source's records in batches.

        Each batch is a list of dict records or an Arrow-compatible object. Yield
        batches as they are read (never read the whole source first). For incremental
        reads, resume from ``state`` and call ``state.set(...)`` after yielding the batch
        that the new value covers.

        Args:
            state: The stream's incremental state, or ``None`` for a full read.

        Yields:
            Batches of records.

        Raises:
            DativoError: A subclass saying what failed (``TransientError`` to ask for a retry).
        """

    def get_total_records_estimate(self) -> int | None:
        """Return an estimate of the records :meth:`extract` will yield, if cheap to know."""
        return None

    def close(self) -> None:  # noqa: B027  (an optional hook, empty on purpose)
        """Release connections, files and threads. Called once, also after failures."""

    def __enter__(self) -> BaseReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
