"""Paginators: how the request for the next page follows from the page just read.

A paginator is a small immutable object; :meth:`Paginator.first` shapes the first request
of a read and :meth:`Paginator.next` returns the next one, or ``None`` after the last
page. The reader detects a next request it has already made (a cursor that does not
advance) and stops with an error instead of looping, whatever the paginator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from ._body_path import value_at

__all__ = [
    "CursorPaginator",
    "LinkHeaderPaginator",
    "NextUrlPaginator",
    "NoPaginator",
    "OffsetPaginator",
    "PagePaginator",
    "PageRequest",
    "Paginator",
]


@dataclass(frozen=True)
class PageRequest:
    """One page's request: a URL (absolute, or relative to the base URL) and its query parameters.

    Args:
        url: The URL; query parameters already in it are kept.
        params: More query parameters (a value of ``None`` is left out).
    """

    url: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def with_params(self, **params: Any) -> PageRequest:
        """Return a copy with ``params`` set (a value of ``None`` removes the parameter)."""
        merged = {**self.params, **params}
        return replace(self, params={k: v for k, v in merged.items() if v is not None})

    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """A hashable identity of the request (the reader uses it to spot a repeated page)."""
        return self.url, tuple(sorted((str(k), str(v)) for k, v in self.params.items() if v is not None))


class Paginator(ABC):
    """Turns the page just read into the request for the next one."""

    def first(self, request: PageRequest) -> PageRequest:
        """Return the first page's request, given the stream's own (paginators add their parameters).

        Args:
            request: The stream's URL and parameters.

        Returns:
            The request to send first.
        """
        return request

    @abstractmethod
    def next(
        self,
        *,
        request: PageRequest,
        response: httpx.Response,
        body: Any,
        records: Sequence[Any],
    ) -> PageRequest | None:
        """Return the next page's request, or ``None`` when this page was the last.

        Args:
            request: The request of the page just read.
            response: Its response (headers included).
            body: The decoded JSON body.
            records: The records found in the body.

        Returns:
            The next request, or ``None``.
        """


@dataclass(frozen=True)
class NoPaginator(Paginator):
    """One page holds everything."""

    def next(
        self, *, request: PageRequest, response: httpx.Response, body: Any, records: Sequence[Any]
    ) -> PageRequest | None:
        """Always ``None``."""
        return None


@dataclass(frozen=True)
class CursorPaginator(Paginator):
    """An opaque cursor sent back as a query parameter: ``?cursor=NEXT``.

    The cursor is read from the body at ``next_path`` (``meta.next_cursor``), or, Stripe-style,
    from the field ``last_record`` of the page's last record (``?starting_after=ID``).
    The read stops when the cursor is empty or missing, when ``has_more`` is given and
    the body's value there is false, or when a page is empty.

    Args:
        param: The query parameter carrying the cursor.
        next_path: The body path of the next cursor.
        last_record: Instead of ``next_path``: the field of the last record that is the cursor.
        has_more: The body path of a flag saying whether more pages follow.

    Raises:
        ValueError: Unless exactly one of ``next_path`` and ``last_record`` is given.
    """

    param: str = "cursor"
    next_path: str | None = None
    last_record: str | None = None
    has_more: str | None = None

    def __post_init__(self) -> None:
        if (self.next_path is None) == (self.last_record is None):
            raise ValueError("CursorPaginator needs exactly one of next_path and last_record")

    def next(
        self, *, request: PageRequest, response: httpx.Response, body: Any, records: Sequence[Any]
    ) -> PageRequest | None:
        """The request with the new cursor, or ``None``."""
        if not records and self.last_record is not None:
            return None
        if self.has_more is not None and not value_at(body, self.has_more):
            return None
        if self.next_path is not None:
            cursor = value_at(body, self.next_path)
        else:
            last = records[-1] if records else None
            cursor = last.get(str(self.last_record)) if isinstance(last, dict) else None
        if cursor is None or cursor == "" or cursor is False:
            return None
        return request.with_params(**{self.param: cursor})


@dataclass(frozen=True)
class OffsetPaginator(Paginator):
    """``?offset=K&limit=N``: the offset grows by the records read; a short page is the last.

    Args:
        param: The offset's query parameter.
        limit: Records per page (sent as ``limit_param``); at most what the API serves per page.
        limit_param: The page size's query parameter.
        start: The first offset.
    """

    param: str = "offset"
    limit: int = 100
    limit_param: str = "limit"
    start: int = 0

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise ValueError(f"OffsetPaginator's limit must be positive, got {self.limit}")

    def first(self, request: PageRequest) -> PageRequest:
        """Add the first offset and the limit."""
        return request.with_params(**{self.param: self.start, self.limit_param: self.limit})

    def next(
        self, *, request: PageRequest, response: httpx.Response, body: Any, records: Sequence[Any]
    ) -> PageRequest | None:
        """The next offset, or ``None`` after a short page."""
        if len(records) < self.limit:
            return None
        offset = int(request.params.get(self.param, self.start))
        return request.with_params(**{self.param: offset + len(records)})


@dataclass(frozen=True)
class PagePaginator(Paginator):
    """``?page=P``: page numbers from ``start``; an empty page (or a short one, with ``limit``) is the last.

    Args:
        param: The page number's query parameter.
        start: The first page's number.
        limit: Records per page, sent as ``limit_param`` when given.
        limit_param: The page size's query parameter.
    """

    param: str = "page"
    start: int = 1
    limit: int | None = None
    limit_param: str = "limit"

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"PagePaginator's limit must be positive, got {self.limit}")

    def first(self, request: PageRequest) -> PageRequest:
        """Add the first page number and the limit."""
        extra = {self.limit_param: self.limit} if self.limit is not None else {}
        return request.with_params(**{self.param: self.start, **extra})

    def next(
        self, *, request: PageRequest, response: httpx.Response, body: Any, records: Sequence[Any]
    ) -> PageRequest | None:
        """The next page number, or ``None``."""
        if not records or (self.limit is not None and len(records) < self.limit):
            return None
        return request.with_params(**{self.param: int(request.params.get(self.param, self.start)) + 1})


def _follow(request: PageRequest, response: httpx.Response, target: Any) -> PageRequest | None:
    """The request for a next-page URL given by the server (relative URLs resolved against this page's)."""
    if not isinstance(target, str) or not target:
        return None
    # The server's URL carries every parameter of the next page; ours are not added again.
    return PageRequest(str(response.url.join(target)), {})


@dataclass(frozen=True)
class LinkHeaderPaginator(Paginator):
    """The URL in the ``Link`` header's ``rel="next"`` (RFC 8288; GitHub's style).

    Args:
        rel: The relation to follow.
    """

    rel: str = "next"

    def next(
        self, *, request: PageRequest, response: httpx.Response, body: Any, records: Sequence[Any]
    ) -> PageRequest | None:
        """The linked URL, or ``None`` without one."""
        link = response.links.get(self.rel) or {}
        return _follow(request, response, link.get("url"))


@dataclass(frozen=True)
class NextUrlPaginator(Paginator):
    """A body field holding the next page's URL (``next``, ``links.next``...).

    Args:
        next_path: The body path of the URL.
    """

    next_path: str = "next"

    def next(
        self, *, request: PageRequest, response: httpx.Response, body: Any, records: Sequence[Any]
    ) -> PageRequest | None:
        """The URL found, or ``None``."""
        return _follow(request, response, value_at(body, self.next_path))
