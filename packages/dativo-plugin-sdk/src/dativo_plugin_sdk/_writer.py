"""The base class every target plugin extends."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar

from ._batch import Batch
from ._results import ConnectionTestResult
from ._schema import Column

__all__ = ["BaseWriter"]


class BaseWriter(abc.ABC):
    """Base class of target plugins: write batches, then commit or abort them.

    A writer stages what :meth:`write_batch` writes; nothing is visible to readers of
    the target until :meth:`commit_files` succeeds, and :meth:`abort` discards
    everything staged and not yet committed.

    Args:
        config: The ``target.config`` mapping of the job, secrets already resolved.
        schema: The stream's columns, when the runtime knows them.

    Attributes:
        config: The configuration the writer was built with.
        schema: The stream's columns, or ``None``.
    """

    __version__: ClassVar[str | None] = None
    requires_sdk: ClassVar[str | None] = None

    def __init__(self, config: Mapping[str, Any], schema: Sequence[Column] | None = None) -> None:
        if not isinstance(config, Mapping):
            raise TypeError(f"{type(self).__name__} config must be a mapping, got {type(config).__name__}")
        self.config: Mapping[str, Any] = config
        self.schema: Sequence[Column] | None = schema

    def check_connection(self) -> ConnectionTestResult:
        """Check that the target is reachable and writable with this config.

        Returns:
            A :class:`ConnectionTestResult`; the default says the check is not implemented.
        """
        return ConnectionTestResult(
            success=False,
            message=f"{type(self).__name__} does not implement check_connection",
            error_code="NOT_IMPLEMENTED",
        )

    @abc.abstractmethod
    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        """Stage one batch.

        Args:
            records: A list of dict records or an Arrow-compatible object (the runtime
                passes a ``pyarrow.Table``; :func:`records_from_batch` gives dicts).
            file_counter: The runtime's running batch number, for unique file names.

        Returns:
            Metadata of each file written: at least ``path``, ``record_count`` and
            ``size_bytes``.

        Raises:
            ValidationError: If records violate the schema.
            DativoError: A subclass for any other failure.
        """

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        """Make the staged files visible atomically.

        Args:
            file_metadata: Every entry :meth:`write_batch` returned in this run.

        Returns:
            A JSON-serialisable summary of the commit; by default the file count.
        """
        return {"files_committed": len(file_metadata)}

    def abort(self) -> None:  # noqa: B027  (an optional hook, empty on purpose)
        """Discard everything staged and not committed. Must be safe to call twice."""

    def close(self) -> None:  # noqa: B027  (an optional hook, empty on purpose)
        """Release connections and files. Called once, also after failures."""

    def __enter__(self) -> BaseWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.abort()
        self.close()
