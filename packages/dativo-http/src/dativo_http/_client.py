"""``RestClient``: one GET with authentication, a rate limit, retries, and the SDK's errors.

The boundary between httpx and Dativo: every httpx failure and every HTTP status that is
not a success becomes the SDK error that tells the runtime what to do, with the URL (its
secrets masked) in the message and never a credential:

====================================  ==============================================
what happened                         raised (after retries, where retried)
====================================  ==============================================
401, 403                              ``AuthenticationError``
404                                   ``ConfigurationError`` (check ``base_url``/``path``)
other 4xx                             ``ConfigurationError``
429                                   ``RateLimitError`` with ``retry_after``
5xx                                   ``TransientError`` (``retry_after`` if given)
a timeout, a broken connection        ``TransientError``
DNS, connection refused, TLS          ``ConnectionError``
a body that is not JSON               ``PluginError`` naming the URL and the offset
====================================  ==============================================
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from dativo_plugin_sdk import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,  # noqa: A004  (the SDK's class also subclasses the builtin)
    DativoError,
    PluginError,
    RateLimitError,
    TransientError,
)

from ._auth import Authenticator
from ._masking import SecretMask
from ._paginators import PageRequest
from ._rate_limit import RateLimiter
from ._retry import RetryPolicy, parse_retry_after

__all__ = ["RestClient"]

_SNIPPET = 200  # characters of an error body quoted in a message

# httpx logs every request's full URL at INFO, API keys in query strings included; dativo-http
# never lets that through (a level set by the application is left alone).
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)


class RestClient:
    """Sends GET requests to one API and returns successful responses, or raises the SDK's errors.

    Args:
        base_url: The API's root URL; relative request URLs are joined to it.
        auth: The authenticator, if any.
        headers: Headers sent with every request.
        timeout: Seconds for connecting and for each read.
        retry: The retry policy.
        rate_limiter: A client-side rate limit, if any.
        verify: Verify TLS certificates (a CA bundle path also works).
        sleep: The sleep function (tests pass a fake one).
        transport: An httpx transport (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        auth: Authenticator | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        verify: bool | str = True,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.retry = retry or RetryPolicy()
        self.rate_limiter = rate_limiter
        self._sleep = sleep
        self.mask = SecretMask(
            lambda: (*(auth.secrets() if auth else ()), *_header_secrets(headers or {})),
            auth.secret_params if auth else (),
        )
        self._client = httpx.Client(
            headers=dict(headers or {}),
            timeout=httpx.Timeout(timeout),
            verify=verify,
            follow_redirects=True,
            transport=transport,
        )

    def close(self) -> None:
        """Close the connection pool; safe to call twice."""
        self._client.close()

    def url_of(self, request: PageRequest) -> str:
        """Return the absolute URL of ``request`` (relative URLs joined to the base URL)."""
        if request.url.startswith(("http://", "https://")):
            return request.url
        return f"{self.base_url}/{request.url.lstrip('/')}" if request.url else self.base_url

    def get(self, request: PageRequest) -> httpx.Response:
        """Send ``request``, retrying what the policy retries; return a 2xx response, body read.

        Args:
            request: The URL and query parameters.

        Returns:
            The response.

        Raises:
            AuthenticationError: On 401 or 403.
            ConfigurationError: On 404 and other 4xx, or a URL httpx cannot send.
            RateLimitError: On 429 once the retries are spent.
            TransientError: On 5xx, timeouts and broken connections once the retries are spent.
            ConnectionError: When the host cannot be reached (DNS, refused, TLS).
        """
        url = self.url_of(request)
        params = {k: _param(v) for k, v in request.params.items() if v is not None}
        # Merged into the URL's own query (httpx's params= would replace it: a next link keeps its own).
        target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
        retry = 0
        while True:
            if self.rate_limiter is not None:
                self.rate_limiter.wait()
            try:
                response = self._client.get(target, auth=self.auth or httpx.USE_CLIENT_DEFAULT)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout):
                    error: DativoError = self._unreachable(url, exc)
                else:
                    error = TransientError(
                        f"{self.mask.url(url)} did not answer in time ({type(exc).__name__})",
                        details={"url": self.mask.url(url), "reason": type(exc).__name__},
                    )
                delay = self._retry_delay(retry, None, error)
            except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise self._unreachable(url, exc) from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                reason = self.mask.text(str(exc)) or type(exc).__name__
                error = TransientError(
                    f"the connection to {self.mask.url(url)} broke: {reason}",
                    details={"url": self.mask.url(url), "reason": type(exc).__name__},
                )
                delay = self._retry_delay(retry, None, error)
            else:
                if response.is_success:
                    return response
                error = self._status_error(response)
                if response.status_code not in self.retry.statuses:
                    raise error
                delay = self._retry_delay(retry, getattr(error, "retry_after", None), error)
            self._sleep(delay)
            retry += 1

    def _retry_delay(self, retry: int, retry_after: float | None, error: DativoError) -> float:
        """The seconds to wait before the next attempt; raises ``error`` when none is left."""
        if retry >= self.retry.max_retries:
            raise error
        if retry_after is not None:
            if retry_after > self.retry.max_retry_after:
                raise error  # the runtime waits that long, not a worker holding a connection
            return retry_after
        return self.retry.backoff(retry)

    def _unreachable(self, url: str, exc: Exception) -> DativoError:
        where = {"url": self.mask.url(url), "reason": type(exc).__name__}
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return ConfigurationError(
                f"{self.mask.url(url)} is not a URL httpx can request ({self.mask.text(str(exc))}); "
                "check 'base_url' and 'path'",
                details=where,
            )
        reason = self.mask.text(str(exc)) or type(exc).__name__
        return ConnectionError(f"cannot reach {self.mask.url(url)}: {reason}", details=where)

    def _status_error(self, response: httpx.Response) -> DativoError:
        url = self.mask.url(str(response.request.url))
        status = response.status_code
        details: dict[str, Any] = {"url": url, "status": status}
        body = self.mask.text(response.text[:_SNIPPET].strip()) if response.content else ""
        said = f": {body}" if body else ""
        if status in (401, 403):
            return AuthenticationError(
                f"{url} refused the credentials (HTTP {status}){said}; check 'auth'", details=details
            )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            return RateLimitError(
                f"{url} is rate limiting requests (HTTP 429){said}",
                retry_after=retry_after if retry_after is not None else 1.0,
                details=details,
            )
        if status >= 500:
            return TransientError(
                f"{url} failed with HTTP {status}{said}", retry_after=retry_after, details=details
            )
        if status == 404:
            return ConfigurationError(
                f"{url} does not exist (HTTP 404); check 'base_url' and the stream's 'path'", details=details
            )
        return ConfigurationError(
            f"{url} refused the request with HTTP {status}{said}; check the stream's 'params' and 'path'",
            details=details,
        )

    def decode_json(self, response: httpx.Response) -> Any:
        """Return the decoded JSON body of ``response``.

        Raises:
            PluginError: If the body is not JSON, naming the URL, the offset and the problem.
        """
        try:
            return json.loads(response.content)
        except json.JSONDecodeError as exc:
            url = self.mask.url(str(response.request.url))
            raise PluginError(
                f"the answer of {url} (HTTP {response.status_code}, {len(response.content)} bytes) is not "
                f"JSON: {exc.msg} at offset {exc.pos} (line {exc.lineno}, column {exc.colno})",
                details={"url": url, "offset": exc.pos, "status": response.status_code},
            ) from None
        except UnicodeDecodeError as exc:
            url = self.mask.url(str(response.request.url))
            raise PluginError(
                f"the answer of {url} is not UTF-8 JSON: undecodable byte at offset {exc.start}",
                details={"url": url, "offset": exc.start, "status": response.status_code},
            ) from None


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


_SECRET_HEADERS = ("authorization", "cookie", "token", "key", "secret", "password")


def _header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """Values of headers whose names look secret (``Authorization``, ``X-Api-Key``...)."""
    return tuple(v for k, v in headers.items() if any(word in k.lower() for word in _SECRET_HEADERS))
