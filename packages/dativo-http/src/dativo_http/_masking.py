"""Keep secrets out of messages: every error and log line of dativo-http passes through a mask."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "SecretMask"]

MASK = "***"


class SecretMask:
    """Replaces known secret values, and the values of secret query parameters, with ``***``.

    Args:
        secrets: A callable returning the secret values to hide (called at each use, so a
            token fetched later, such as an OAuth2 access token, is hidden too).
        secret_params: Query parameter names whose values are hidden in URLs.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]], secret_params: Iterable[str] = ()) -> None:
        self._secrets = secrets
        self.secret_params = frozenset(secret_params)

    def text(self, text: str) -> str:
        """Return ``text`` with every secret value replaced by ``***``."""
        # Longest first, so a secret that contains another is hidden whole.
        for secret in sorted((s for s in self._secrets() if s and len(s) >= 3), key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def url(self, url: str) -> str:
        """Return ``url`` without user info, secret query values or any secret value."""
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = parts.query
        if self.secret_params and query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, MASK if k in self.secret_params else v) for k, v in pairs], safe="*")
        return self.text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))
