"""HTTP readers of the testkit's mock API (urllib only), for the ``reader.mock_api_*`` checks.

``HttpReader`` handles every fault well: it retries a 5xx three times, then raises
``TransientError``; 401/403 raise ``AuthenticationError``; 429 raises ``RateLimitError``
with the ``Retry-After`` seconds; a connection failure raises ``ConnectionError``. Each
subclass breaks one of these rules, and ``FLAGGED_BY`` names the one check that must catch
it (``BareExceptionReader`` breaks them all: ``FLAGGED_BY_ALL``). Loaded by path from the
tests; not collected as tests itself.
"""

from __future__ import annotations

import json
import time
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
    ConnectionTestResult,
    DativoConnectionError,
    DativoError,
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


class HttpReader(BaseReader):
    """Reads the mock API's resource page by page; config: base_url, token, resource, page_size."""

    __version__ = "1.0.0"
    supports_incremental = True
    config_schema = {
        "type": "object",
        "properties": {
            "base_url": {"type": "string"},
            "token": {"type": "string", "secret": True},
            "resource": {"type": "string"},
            "page_size": {"type": "integer", "minimum": 1},
        },
        "required": ["base_url", "token"],
        "additionalProperties": False,
    }
    RETRIES = 3

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        missing = [key for key in ("base_url", "token") if not config.get(key)]
        if missing:
            raise ConfigurationError(f"{type(self).__name__} needs {' and '.join(missing)}")
        self.base_url = str(config["base_url"]).rstrip("/")
        self.resource = str(config.get("resource", "items"))
        self.page_size = int(config.get("page_size", 20))

    # What each subclass changes ------------------------------------------------------

    def http_error(self, exc: urllib.error.HTTPError) -> Exception:
        """The error to raise for an HTTP error answer."""
        status = exc.code
        if status in (401, 403):
            return AuthenticationError(f"the API refused the token (HTTP {status}); check 'token'")
        if status == 429:
            retry_after = exc.headers.get("Retry-After")
            return RateLimitError(
                "the API is rate limiting requests",
                retry_after=float(retry_after) if retry_after else None,
            )
        if status >= 500:
            return TransientError(f"the API failed with HTTP {status}")
        return ConfigurationError(f"the API answered HTTP {status}; check 'base_url' and 'resource'")

    def connection_error(self, exc: OSError) -> Exception:
        """The error to raise when the API cannot be reached."""
        return DativoConnectionError(f"cannot reach {self.base_url}: {getattr(exc, 'reason', exc)}")

    # Requests ------------------------------------------------------------------------

    def _get_once(self, params: dict[str, Any]) -> dict[str, Any]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(
            f"{self.base_url}/{self.resource}?{query}",
            headers={"Authorization": f"Bearer {self.config['token']}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                payload: dict[str, Any] = json.loads(response.read())
                return payload
        except urllib.error.HTTPError as exc:
            exc.close()
            raise self.http_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self.connection_error(exc) from None

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page, retrying transient failures ``RETRIES`` times."""
        for attempt in range(self.RETRIES + 1):
            try:
                return self._get_once(params)
            except TransientError as exc:
                if attempt == self.RETRIES or isinstance(exc, RateLimitError):
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")

    # The contract --------------------------------------------------------------------

    def check_connection(self) -> ConnectionTestResult:
        try:
            self.get({"limit": 1})
        except DativoError as exc:
            return ConnectionTestResult(False, exc.message, exc.error_code)
        except Exception as exc:
            return ConnectionTestResult(False, str(exc), "CONNECTION_FAILED")
        return ConnectionTestResult(True, f"reached {self.base_url}")

    def discover(self) -> DiscoveryResult:
        stream = DiscoveredStream(
            name=self.resource, schema=SCHEMA, primary_key=("id",), cursor_field="updated_at"
        )
        return DiscoveryResult(objects=[stream])

    def extract(self, state: State | None = None) -> Iterator[list[dict[str, Any]]]:
        since = state.get("updated_at") if state is not None else None
        cursor: str | None = None
        while True:
            page = self.get({"limit": self.page_size, "cursor": cursor, "updated_since": since})
            records = page.get("data") or []
            if records:
                yield records
                if state is not None:
                    state.set("updated_at", max(str(r["updated_at"]) for r in records))
            cursor = page.get("next_cursor")
            if not cursor:
                return


class BareExceptionReader(HttpReader):
    """Raises a bare Exception for every HTTP error and connection failure."""

    FLAGGED_BY_ALL = (
        "reader.mock_api_authentication",
        "reader.mock_api_rate_limit",
        "reader.mock_api_server_errors",
        "reader.mock_api_unreachable",
    )

    def http_error(self, exc: urllib.error.HTTPError) -> Exception:
        return Exception(f"HTTP {exc.code}")

    def connection_error(self, exc: OSError) -> Exception:
        return Exception(f"cannot connect: {exc}")


class AuthAsTransientReader(HttpReader):
    """Treats a refused token as a temporary failure, so the runtime would retry it."""

    FLAGGED_BY = "reader.mock_api_authentication"

    def http_error(self, exc: urllib.error.HTTPError) -> Exception:
        if exc.code in (401, 403):
            return TransientError(f"HTTP {exc.code}")
        return super().http_error(exc)


class NoRetryAfterReader(HttpReader):
    """Raises RateLimitError on 429 but drops the Retry-After seconds."""

    FLAGGED_BY = "reader.mock_api_rate_limit"

    def http_error(self, exc: urllib.error.HTTPError) -> Exception:
        if exc.code == 429:
            return RateLimitError("rate limited")
        return super().http_error(exc)


class SwallowsServerErrorsReader(HttpReader):
    """Ends the read quietly on a 5xx answer, as if the source had no more records."""

    FLAGGED_BY = "reader.mock_api_server_errors"

    def get(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            return super().get(params)
        except TransientError as exc:
            if isinstance(exc, RateLimitError):
                raise
            return {"data": [], "next_cursor": None}


class UncaughtUrlErrorReader(HttpReader):
    """Lets urllib's URLError escape when the API cannot be reached."""

    FLAGGED_BY = "reader.mock_api_unreachable"

    def connection_error(self, exc: OSError) -> Exception:
        return exc
