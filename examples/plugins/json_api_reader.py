"""Example source plugin: a paginated JSON REST API read incrementally by an ``updated_at`` cursor.

It speaks the API shape the testkit's mock API server serves::

    GET {base_url}/{resource}?limit=N[&cursor=C][&updated_since=ISO]
    Authorization: Bearer TOKEN
    -> 200 {"data": [{...}, ...], "next_cursor": "C2" | null}

Written against ``dativo_plugin_sdk`` and the standard library only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import (
    AuthenticationError,
    BaseReader,
    Column,
    ConfigurationError,
    ConnectionError,  # noqa: A004
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    RateLimitError,
    State,
    TransientError,
)

SCHEMA = (
    Column("id", "integer", nullable=False),
    Column("name", "string"),
    Column("email", "string"),
    Column("amount", "float"),
    Column("updated_at", "timestamp", nullable=False),
)


class JsonApiReader(BaseReader):
    """Reads one resource of a bearer-token JSON API, page by page.

    Config: ``base_url`` (required), ``token`` (required), ``resource`` (default
    ``"items"``), ``page_size`` (default 100), ``timeout`` seconds (default 10).
    """

    __version__ = "1.0.0"
    requires_sdk = ">=1.0,<2"
    supports_incremental = True
    # The config spec: dativo-run checks every config against it before building the reader,
    # and masks the value of each "secret" key in every message.
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "base_url": {"type": "string", "minLength": 1, "description": "The API's root URL."},
            "token": {"type": "string", "minLength": 1, "secret": True, "description": "Bearer token."},
            "resource": {"type": "string", "default": "items", "description": "The resource to read."},
            "page_size": {
                "type": "integer",
                "minimum": 1,
                "default": 100,
                "description": "Records per page.",
            },
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 10, "description": "Seconds."},
        },
        "required": ["base_url", "token"],
        "additionalProperties": False,
    }

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        missing = [key for key in ("base_url", "token") if not config.get(key)]
        if missing:
            raise ConfigurationError(
                f"JsonApiReader needs {' and '.join(missing)} in its config",
                details={"missing": missing},
            )
        self.base_url = str(config["base_url"]).rstrip("/")
        self.resource = str(config.get("resource", "items"))
        self.page_size = int(config.get("page_size", 100))
        self.timeout = float(config.get("timeout", 10))
        if self.page_size <= 0:
            raise ConfigurationError(f"page_size must be positive, got {self.page_size}")

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(
            f"{self.base_url}/{self.resource}?{query}",
            headers={"Authorization": f"Bearer {self.config['token']}", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload: dict[str, Any] = json.loads(response.read())
                return payload
        except urllib.error.HTTPError as exc:
            exc.close()  # release the response socket now, not at garbage collection
            details = {"status": exc.code, "url": f"{self.base_url}/{self.resource}"}
            if exc.code in (401, 403):
                raise AuthenticationError(
                    f"the API refused the token (HTTP {exc.code}); check 'token'", details=details
                ) from None
            if exc.code == 429:
                retry_after = exc.headers.get("Retry-After")
                raise RateLimitError(
                    "the API is rate limiting requests",
                    retry_after=float(retry_after) if retry_after else None,
                    details=details,
                ) from None
            if exc.code >= 500:
                raise TransientError(f"the API failed with HTTP {exc.code}", details=details) from None
            raise ConfigurationError(
                f"the API answered HTTP {exc.code}; check 'base_url' and 'resource'", details=details
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectionError(
                f"cannot reach {self.base_url}: {getattr(exc, 'reason', exc)}",
                details={"url": self.base_url},
            ) from None

    def check_connection(self) -> ConnectionTestResult:
        try:
            self._get({"limit": 1})
        except AuthenticationError as exc:
            return ConnectionTestResult(False, exc.message, exc.error_code, exc.details)
        except (ConnectionError, TransientError, ConfigurationError) as exc:
            return ConnectionTestResult(False, exc.message, exc.error_code, exc.details, exc.retryable)
        return ConnectionTestResult(True, f"reached {self.base_url}/{self.resource}")

    def discover(self) -> DiscoveryResult:
        stream = DiscoveredStream(
            name=self.resource, schema=SCHEMA, type="endpoint", primary_key=("id",), cursor_field="updated_at"
        )
        return DiscoveryResult(objects=[stream], metadata={"base_url": self.base_url})

    def extract(self, state: State | None = None) -> Iterator[list[dict[str, Any]]]:
        since = state.get("updated_at") if state is not None else None
        cursor: str | None = None
        high_water = since
        while True:
            page = self._get({"limit": self.page_size, "cursor": cursor, "updated_since": since})
            records = page.get("data") or []
            if records:
                yield records
                newest = max(str(r["updated_at"]) for r in records)
                high_water = newest if high_water is None else max(high_water, newest)
                if state is not None:
                    state.set("updated_at", high_water)
            cursor = page.get("next_cursor")
            if not cursor:
                return
