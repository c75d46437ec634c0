"""``RestStream``: one endpoint of an API read as a stream, and its incremental cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dativo_plugin_sdk import Column

from ._paginators import NoPaginator, Paginator

__all__ = ["IncrementalCursor", "RestStream", "later_cursor"]


@dataclass(frozen=True)
class IncrementalCursor:
    """Where an incremental read resumes: the largest ``field`` read, sent back as ``param``.

    Args:
        field: The record field that grows (``updated_at``, ``id``); records must arrive
            in ascending order of it for a resumed read to miss nothing.
        param: The query parameter the saved value is sent as (``updated_since``); ``None``
            keeps the value in the state without sending it (override
            ``RestReader.request_params`` to send it your way).
        start: The value sent on the first run, before any state exists (``None``: nothing).
    """

    field: str
    param: str | None = None
    start: Any = None


@dataclass(frozen=True)
class RestStream:
    """One stream: an endpoint, where its records sit, how it pages, and its schema.

    Args:
        name: The stream's name (what a job's ``source.stream`` names).
        path: The endpoint, relative to the base URL (``/orders``) or absolute.
        params: Query parameters of every request.
        records_path: The body path of the record list (``data``, ``result.items``; ``""``
            for a top-level list).
        primary_key: The primary key columns.
        cursor: The incremental cursor, if the stream can be read incrementally.
        paginator: How pages follow each other.
        columns: The schema; ``None`` to infer it from the first page.
        batch_size: Gather pages into batches of at least this many records (``None``:
            one batch per page).
    """

    name: str
    path: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    records_path: str = "data"
    primary_key: Sequence[str] = ()
    cursor: IncrementalCursor | None = None
    paginator: Paginator = field(default_factory=NoPaginator)
    columns: Sequence[Column] | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a RestStream needs a name")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        object.__setattr__(self, "primary_key", tuple(self.primary_key))
        if self.columns is not None:
            object.__setattr__(self, "columns", tuple(self.columns))


def _moment(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=dt.timezone.utc)


def later_cursor(current: Any, candidate: Any) -> Any:
    """Return the later of two cursor values (ISO 8601 texts compared as instants).

    Args:
        current: The value so far, or ``None``.
        candidate: A value read.

    Returns:
        ``candidate`` if it is later than ``current`` (or ``current`` is ``None``), else ``current``.
    """
    if candidate is None:
        return current
    if current is None:
        return candidate
    a, b = _moment(current), _moment(candidate)
    if a is not None and b is not None:
        return candidate if b > a else current
    try:
        return candidate if candidate > current else current
    except TypeError:
        return candidate if str(candidate) > str(current) else current
