"""What a batch is, without importing pyarrow."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Union, runtime_checkable

__all__ = ["ArrowBatch", "Batch", "Record", "is_arrow_batch", "records_from_batch"]

Record = dict[str, Any]
"""One record: column name to value."""


@runtime_checkable
class ArrowBatch(Protocol):
    """Anything exporting Arrow data through the Arrow PyCapsule interface.

    A pyarrow ``Table`` or ``RecordBatch``, a polars or DuckDB result, or an object of a
    compiled extension: the runtime reads it without copying through
    ``__arrow_c_stream__`` (or ``__arrow_c_array__`` for a single record batch).
    """

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """Export the data as an ``ArrowArrayStream`` capsule."""


# ``Any`` stays in the union: objects exposing only ``__arrow_c_array__`` are batches too.
Batch = Union[list[Record], ArrowBatch, Any]  # noqa: UP007  (a runtime alias; `|` cannot join Any on 3.10)
"""A batch yielded by ``extract`` or passed to ``write_batch``: a list of dict records, or
an Arrow-compatible object (see :func:`is_arrow_batch`)."""


def is_arrow_batch(obj: object) -> bool:
    """Tell whether ``obj`` is an Arrow-compatible batch.

    Args:
        obj: A candidate batch.

    Returns:
        ``True`` when ``obj`` exposes ``__arrow_c_stream__`` or ``__arrow_c_array__``
        (pyarrow 14+ tables and record batches do).
    """
    return hasattr(obj, "__arrow_c_stream__") or hasattr(obj, "__arrow_c_array__")


def records_from_batch(batch: Batch) -> list[Record]:
    """Return a batch as a list of dict records.

    A list of dicts is returned as is. An Arrow object is converted with its own
    ``to_pylist()`` when it has one, else through pyarrow, imported only then.

    Args:
        batch: A list of dict records or an Arrow-compatible object.

    Returns:
        The records as dicts.

    Raises:
        TypeError: If ``batch`` is neither shape, or a list holds something other than dicts.
    """
    if isinstance(batch, list):
        for index, record in enumerate(batch):
            if not isinstance(record, Mapping):
                raise TypeError(f"record {index} of the batch is a {type(record).__name__}, not a dict")
        return batch
    if is_arrow_batch(batch):
        to_pylist = getattr(batch, "to_pylist", None)
        if callable(to_pylist):
            return list(to_pylist())
        import pyarrow

        return list(pyarrow.table(batch).to_pylist())
    raise TypeError(
        f"a batch must be a list of dict records or an Arrow-compatible object, got {type(batch).__name__}"
    )
