"""``HttpReader``: the declarative REST reader behind ``plugin: http``; its config is the connector.

The config (its JSON Schema is :data:`~._config_schema.CONFIG_SCHEMA`) becomes the same
objects a :class:`~._rest_reader.RestReader` subclass writes by hand: an authenticator,
a retry policy, a rate limiter and one :class:`~._stream.RestStream` per entry of
``streams``. A config that does not fit is refused in ``__init__`` with a
``ConfigurationError`` listing each problem by key path, never by value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dativo_plugin_sdk import Column, ColumnType, ConfigurationError

from ._auth import ApiKeyAuth, Authenticator, BasicAuth, BearerAuth, OAuth2ClientCredentials
from ._config_schema import CONFIG_SCHEMA
from ._paginators import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    NoPaginator,
    OffsetPaginator,
    PagePaginator,
    Paginator,
)
from ._rate_limit import RateLimiter
from ._rest_reader import RestReader
from ._retry import RetryPolicy
from ._stream import IncrementalCursor, RestStream
from ._version import HTTP_VERSION

__all__ = ["HttpReader"]


class HttpReader(RestReader):
    """Reads the REST endpoints its config describes: the ``http`` plugin (docs/http.md).

    Args:
        config: ``base_url``, ``streams`` and optionally ``auth``, ``headers``,
            ``rate_limit``, ``timeout``, ``verify_tls`` and ``retry``.

    Raises:
        ConfigurationError: If the config does not fit the config spec, or two streams share a name.
    """

    __version__ = HTTP_VERSION
    config_schema = CONFIG_SCHEMA

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)  # checks the config against CONFIG_SCHEMA
        self._streams = tuple(_stream(spec) for spec in self.config["streams"])
        names = [s.name for s in self._streams]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ConfigurationError(
                f"the http reader's streams must have distinct names; {', '.join(map(repr, doubled))} "
                "appears more than once",
                details={"streams": names},
            )
        self._auth = _authenticator(self.config.get("auth") or {"type": "none"})
        retry = self.config.get("retry") or {}
        self._retry = RetryPolicy(**retry)
        rate = self.config.get("rate_limit")
        self._rate = float(rate["requests_per_second"]) if rate else None

    def rest_streams(self) -> Sequence[RestStream]:
        """The streams of the config."""
        return self._streams

    def authenticator(self) -> Authenticator | None:
        """The config's ``auth``."""
        return self._auth

    def headers(self) -> dict[str, str]:
        """``Accept: application/json`` and the config's ``headers``."""
        return {"Accept": "application/json", **self.config.get("headers", {})}

    def retry_policy(self) -> RetryPolicy:
        """The config's ``retry``."""
        return self._retry

    def rate_limiter(self) -> RateLimiter | None:
        """The config's ``rate_limit``."""
        return RateLimiter(self._rate) if self._rate else None


def _authenticator(spec: Mapping[str, Any]) -> Authenticator | None:
    kind = spec["type"]
    if kind == "bearer":
        return BearerAuth(spec["token"])
    if kind == "basic":
        return BasicAuth(spec["username"], spec["password"])
    if kind == "api_key":
        return ApiKeyAuth(
            spec["key"],
            name=spec.get("name", "X-API-Key"),
            location=spec.get("in", "header"),
            prefix=spec.get("prefix", ""),
        )
    if kind == "oauth2":
        return OAuth2ClientCredentials(
            spec["token_url"],
            spec["client_id"],
            spec["client_secret"],
            scopes=spec.get("scopes", ()),
            extra_params=spec.get("extra_params"),
            credentials_in=spec.get("credentials_in", "body"),
        )
    return None


def _paginator(spec: Mapping[str, Any] | None) -> Paginator:
    kind = (spec or {}).get("type", "none")
    spec = spec or {}
    if kind == "cursor":
        return CursorPaginator(
            param=spec["param"],
            next_path=spec.get("next"),
            last_record=spec.get("last_record"),
            has_more=spec.get("has_more"),
        )
    if kind == "offset":
        return OffsetPaginator(
            param=spec.get("param", "offset"),
            limit=spec["limit"],
            limit_param=spec.get("limit_param", "limit"),
            start=spec.get("start", 0),
        )
    if kind == "page":
        return PagePaginator(
            param=spec.get("param", "page"),
            start=spec.get("start", 1),
            limit=spec.get("limit"),
            limit_param=spec.get("limit_param", "limit"),
        )
    if kind == "link_header":
        return LinkHeaderPaginator(rel=spec.get("rel", "next"))
    if kind == "next_url":
        return NextUrlPaginator(next_path=spec.get("next", "next"))
    return NoPaginator()


def _stream(spec: Mapping[str, Any]) -> RestStream:
    cursor = spec.get("cursor")
    schema = spec.get("schema")
    columns = None
    if schema is not None:
        columns = [
            Column(
                c["name"],
                ColumnType(c["type"]),
                nullable=c.get("nullable", True),
                description=c.get("description"),
            )
            for c in schema
        ]
    return RestStream(
        name=spec["name"],
        path=spec["path"],
        params=dict(spec.get("params", {})),
        records_path=spec.get("records_path", "data"),
        primary_key=tuple(spec.get("primary_key", ())),
        cursor=IncrementalCursor(cursor["field"], cursor.get("param"), cursor.get("start"))
        if cursor
        else None,
        paginator=_paginator(spec.get("paginator")),
        columns=columns,
        batch_size=spec.get("batch_size"),
    )
