"""Authenticators: bearer, basic, an API key (header or query) and OAuth2 client credentials.

Each is an :class:`httpx.Auth` (so it can also be handed to any ``httpx.Client``) that
knows its secrets, for :class:`~._masking.SecretMask` to hide them in every message; its
``repr`` never shows one. :class:`OAuth2ClientCredentials` fetches an access token from
the token endpoint, caches it until shortly before it expires, and fetches a new one
when the API answers 401 to a cached token.
"""

from __future__ import annotations

import base64
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Literal

import httpx

from dativo_plugin_sdk import AuthenticationError, TransientError

__all__ = [
    "ApiKeyAuth",
    "Authenticator",
    "BasicAuth",
    "BearerAuth",
    "OAuth2ClientCredentials",
]


class Authenticator(httpx.Auth, ABC):
    """An ``httpx.Auth`` that can list its secrets (to be masked) and the query parameters holding them."""

    secret_params: tuple[str, ...] = ()
    """Query parameters whose values are secrets (hidden in URLs of messages)."""

    @abstractmethod
    def secrets(self) -> Iterable[str]:
        """Return every secret value this authenticator sends (masked in messages)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(***)"


class BearerAuth(Authenticator):
    """``Authorization: Bearer TOKEN``.

    Args:
        token: The token.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the header."""
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def secrets(self) -> Iterable[str]:
        """The token."""
        return (self._token,)


class BasicAuth(Authenticator):
    """HTTP basic authentication (RFC 7617).

    Args:
        username: The user name.
        password: The password.
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self._password = password
        self._header = _basic_header(username, password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the header."""
        request.headers["Authorization"] = self._header
        yield request

    def secrets(self) -> Iterable[str]:
        """The password and the encoded header."""
        return (self._password, self._header.partition(" ")[2])


class ApiKeyAuth(Authenticator):
    """An API key in a header (``X-API-Key: KEY``) or a query parameter (``?api_key=KEY``).

    Args:
        key: The key.
        name: The header or query parameter's name.
        location: ``"header"`` or ``"query"``.
        prefix: Text put before the key in a header (``"Token "``), if any.

    Raises:
        ValueError: If ``location`` is neither.
    """

    def __init__(
        self,
        key: str,
        *,
        name: str = "X-API-Key",
        location: Literal["header", "query"] = "header",
        prefix: str = "",
    ) -> None:
        if location not in ("header", "query"):
            raise ValueError(f"location must be 'header' or 'query', got {location!r}")
        self._key = key
        self.name = name
        self.location = location
        self.prefix = prefix
        self.secret_params = (name,) if location == "query" else ()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the header or the query parameter."""
        if self.location == "header":
            request.headers[self.name] = f"{self.prefix}{self._key}"
        else:
            request.url = request.url.copy_merge_params({self.name: self._key})
        yield request

    def secrets(self) -> Iterable[str]:
        """The key."""
        return (self._key,)


class OAuth2ClientCredentials(Authenticator):
    """OAuth2 client credentials (RFC 6749 section 4.4): a cached access token, refreshed when due.

    The token is fetched with ``POST token_url`` (``grant_type=client_credentials``, the
    client's id and secret in the form, or as basic authentication with
    ``credentials_in="header"``), kept until ``refresh_margin`` seconds before its
    ``expires_in``, and fetched again once if the API answers 401 to it.

    Args:
        token_url: The token endpoint's absolute URL.
        client_id: The client id.
        client_secret: The client secret.
        scopes: Scopes to ask for, if any.
        extra_params: More form fields (``audience``...).
        credentials_in: ``"body"`` (the default) or ``"header"``.
        refresh_margin: Seconds before expiry at which a token is renewed.
        timeout: Seconds for the token request.
    """

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scopes: Sequence[str] = (),
        extra_params: Mapping[str, str] | None = None,
        credentials_in: Literal["body", "header"] = "body",
        refresh_margin: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scopes = tuple(scopes)
        self.extra_params = dict(extra_params or {})
        self.credentials_in = credentials_in
        self.refresh_margin = refresh_margin
        self.timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.tokens_fetched = 0

    def secrets(self) -> Iterable[str]:
        """The client secret and the current access token."""
        return tuple(s for s in (self._client_secret, self._token) if s)

    def _token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials", **self.extra_params}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        headers = {"Accept": "application/json"}
        if self.credentials_in == "header":
            headers["Authorization"] = _basic_header(self.client_id, self._client_secret)
        else:
            form.update(client_id=self.client_id, client_secret=self._client_secret)
        return httpx.Request(
            "POST",
            self.token_url,
            data=form,
            headers=headers,
            extensions={"timeout": _timeouts(self.timeout)},
        )

    def _accept_token(self, response: httpx.Response) -> None:
        where = {"url": self.token_url, "status": response.status_code}
        if response.status_code in (400, 401, 403):
            raise AuthenticationError(
                f"the OAuth2 token endpoint {self.token_url} refused the client credentials "
                f"(HTTP {response.status_code}); check 'client_id', 'client_secret' and 'scopes'",
                details=where,
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(
                f"the OAuth2 token endpoint {self.token_url} failed with HTTP {response.status_code}",
                details=where,
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError(
                f"the OAuth2 token endpoint {self.token_url} answered HTTP {response.status_code} without "
                "an access_token; check 'token_url'",
                details=where,
            ) from None
        self._token = token
        self._expires_at = time.monotonic() + max(0.0, expires_in - self.refresh_margin)
        self.tokens_fetched += 1

    def _due(self) -> bool:
        return self._token is None or time.monotonic() >= self._expires_at

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Fetch a token when none is cached or it is due, send the request, refresh once on 401."""
        with self._lock:
            due = self._due()
        if due:
            self._accept_token((yield self._token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self._accept_token((yield self._token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


def _basic_header(username: str, password: str) -> str:
    """``Basic base64(user:password)`` (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _timeouts(seconds: float) -> dict[str, float]:
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
