"""The credentials the mock API accepts: bearer, basic, an API key, or OAuth2 client credentials.

One :class:`MockApiAuth` per :class:`~dativo_testkit.MockApiServer`. Every scheme is checked
with :func:`hmac.compare_digest`, and no scheme keeps a secret in the request log: the
answer is ``"missing"``, ``"valid"`` or ``"invalid"``. Under ``oauth2`` the server also
answers ``POST /oauth/token`` (``grant_type=client_credentials``, the client's id and
secret in the form or in a basic ``Authorization`` header) with an access token that
expires after ``token_ttl`` seconds; the resource then takes that token as a bearer token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal, Protocol

__all__ = ["API_KEY_NAME", "AUTH_SCHEMES", "TOKEN_PATH", "AuthScheme", "MockApiAuth"]

AuthScheme = Literal["bearer", "basic", "api_key_header", "api_key_query", "oauth2"]
AUTH_SCHEMES: tuple[str, ...] = ("bearer", "basic", "api_key_header", "api_key_query", "oauth2")
API_KEY_NAME = {"api_key_header": "X-API-Key", "api_key_query": "api_key"}
"""The header (``api_key_header``) or query parameter (``api_key_query``) holding the key."""
TOKEN_PATH = "/oauth/token"


class _Headers(Protocol):
    def get(self, name: str, /) -> str | None: ...


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class MockApiAuth:
    """Checks a request's credentials against one scheme.

    Args:
        scheme: One of :data:`AUTH_SCHEMES`.
        username: The basic user name, or the OAuth2 client id.
        secret: The bearer token, basic password, API key or OAuth2 client secret.
        token_ttl: Seconds an OAuth2 access token stays valid.

    Raises:
        ValueError: If ``scheme`` is unknown or ``token_ttl`` is not positive.
    """

    def __init__(self, scheme: str, *, username: str, secret: str, token_ttl: float) -> None:
        if scheme not in AUTH_SCHEMES:
            raise ValueError(f"auth must be one of {', '.join(AUTH_SCHEMES)}, got {scheme!r}")
        if token_ttl <= 0:
            raise ValueError(f"token_ttl must be positive, got {token_ttl}")
        self.scheme = scheme
        self.username = username
        self._secret = secret
        self.token_ttl = token_ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # access token -> expiry (time.monotonic)
        self.tokens_issued = 0

    def challenge(self) -> dict[str, str]:
        """The ``WWW-Authenticate`` header a 401 carries under this scheme."""
        return {"WWW-Authenticate": "Basic" if self.scheme == "basic" else "Bearer"}

    def check(self, headers: _Headers, query: dict[str, str]) -> str:
        """Return ``"missing"``, ``"valid"``, ``"invalid"`` or ``"expired"``; pops an API key."""
        if self.scheme == "api_key_query":
            key = query.pop(API_KEY_NAME["api_key_query"], None)
            return "missing" if not key else ("valid" if _same(key, self._secret) else "invalid")
        if self.scheme == "api_key_header":
            key = headers.get(API_KEY_NAME["api_key_header"])
            return "missing" if not key else ("valid" if _same(key, self._secret) else "invalid")
        header = headers.get("Authorization") or ""
        if self.scheme == "basic":
            if not header.startswith("Basic "):
                return "missing"
            pair = _basic_pair(header)
            ok = pair is not None and _same(pair[0], self.username) and _same(pair[1], self._secret)
            return "valid" if ok else "invalid"
        if not header.startswith("Bearer "):
            return "missing"
        token = header[len("Bearer ") :]
        if self.scheme == "bearer":
            return "valid" if _same(token, self._secret) else "invalid"
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return "invalid"
        return "valid" if expiry > time.monotonic() else "expired"

    def issue_token(self, headers: _Headers, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer a token request: ``(status, body)``, an access token or an OAuth2 error."""
        if self.scheme != "oauth2":
            return 404, {"error": "this server does not issue tokens (auth is not oauth2)"}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        pair = _basic_pair(headers.get("Authorization") or "")
        client_id, client_secret = pair or (form.get("client_id", ""), form.get("client_secret", ""))
        if not (_same(client_id, self.username) and _same(client_secret, self._secret)):
            return 401, {"error": "invalid_client"}
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_ttl
            self.tokens_issued += 1
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl}

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired (the next use of one gets 401, as RFC 6750 says)."""
        with self._lock:
            self._tokens = dict.fromkeys(self._tokens, 0.0)


def _basic_pair(header: str) -> tuple[str, str] | None:
    if not header.startswith("Basic "):
        return None
    try:
        text = base64.b64decode(header[len("Basic ") :], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None
