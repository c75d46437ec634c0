"""The mock API's control endpoint, and the client conformance drives another process's mock with.

``dativo-testkit mock-api`` serves, besides the resource, a control endpoint under
``/_dativo/mock-api`` that only loopback clients may use and that the request log does not
record::

    GET    /_dativo/mock-api                  -> {"dativo_mock_api": 1, "resource": ..., "requests": N}
    GET    /_dativo/mock-api/requests?since=K -> {"statuses": [...]}   (statuses of requests K, K+1...)
    POST   /_dativo/mock-api/faults           {"status": 429, "count": 3, "retry_after": 2} -> 204
    DELETE /_dativo/mock-api/faults           -> 204 (every queued fault forgotten)

So ``dativo-conformance`` run in another process, with a config pointing at that server on
a loopback address, drives its faults as it drives a :class:`MockApiServer` of its own.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from ._mock_api import MockApiServer

__all__ = ["CONTROL_PATH", "FaultTarget", "LocalMockApi", "RemoteMockApi", "handle_control", "probe"]

CONTROL_PATH = "/_dativo/mock-api"
_PROBE_TIMEOUT = 2.0


class FaultTarget(Protocol):
    """What the ``reader.mock_api_*`` checks need of a mock API, in this process or another."""

    url: str

    def reject_next(self, count: int = 1, *, status: int = 401) -> None: ...
    def rate_limit_next(self, count: int = 1, *, retry_after: float = 1.0) -> None: ...
    def fail_next(self, count: int = 1, *, status: int = 503) -> None: ...
    def clear_faults(self) -> None: ...
    def request_count(self) -> int: ...
    def statuses_since(self, index: int) -> list[int]: ...


class LocalMockApi:
    """A :class:`MockApiServer` of this process, as a :class:`FaultTarget`."""

    def __init__(self, api: MockApiServer) -> None:
        self.api = api
        self.url = api.url
        self.reject_next = api.reject_next
        self.rate_limit_next = api.rate_limit_next
        self.fail_next = api.fail_next
        self.clear_faults = api.clear_faults

    def request_count(self) -> int:
        """How many requests the server received."""
        return len(self.api.requests)

    def statuses_since(self, index: int) -> list[int]:
        """The statuses answered to requests ``index`` and later."""
        return [r.status for r in self.api.requests[index:]]


class RemoteMockApi:
    """A ``dativo-testkit mock-api`` server of another process, driven through its control endpoint.

    Args:
        url: The server's origin, ``http://127.0.0.1:PORT``.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{CONTROL_PATH}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def _queue(self, status: int, count: int, retry_after: float | None = None) -> None:
        self._call("POST", "/faults", {"status": status, "count": count, "retry_after": retry_after})

    def reject_next(self, count: int = 1, *, status: int = 401) -> None:
        """Queue ``count`` 401 or 403 answers."""
        self._queue(status, count)

    def rate_limit_next(self, count: int = 1, *, retry_after: float = 1.0) -> None:
        """Queue ``count`` 429 answers with ``Retry-After``."""
        self._queue(429, count, retry_after)

    def fail_next(self, count: int = 1, *, status: int = 503) -> None:
        """Queue ``count`` 5xx answers."""
        self._queue(status, count)

    def clear_faults(self) -> None:
        """Forget every queued fault."""
        self._call("DELETE", "/faults")

    def request_count(self) -> int:
        """How many requests the server received."""
        return int(self._call("GET", "")["requests"])

    def statuses_since(self, index: int) -> list[int]:
        """The statuses answered to requests ``index`` and later."""
        return [int(s) for s in self._call("GET", f"/requests?since={index}")["statuses"]]


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def probe(text: str) -> RemoteMockApi | None:
    """Return the mock API server at the loopback URL ``text``, or ``None``.

    Only ``http`` URLs on a loopback address are asked (``GET /_dativo/mock-api``, a
    short timeout), so no real API named in a config is ever contacted.
    """
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or not _is_loopback(parts.hostname) or port is None:
        return None
    origin = f"http://{parts.netloc.rpartition('@')[2]}"
    try:
        with urllib.request.urlopen(f"{origin}{CONTROL_PATH}", timeout=_PROBE_TIMEOUT) as response:
            identity = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    if not isinstance(identity, dict) or identity.get("dativo_mock_api") != 1:
        return None
    return RemoteMockApi(origin)


def handle_control(
    api: MockApiServer, handler: BaseHTTPRequestHandler, respond: Callable[[int, Any], None]
) -> None:
    """Answer a request under :data:`CONTROL_PATH` through ``respond(status, payload)``."""
    if not _is_loopback(str(handler.client_address[0])):
        respond(403, {"error": "the control endpoint answers loopback clients only"})
        return
    parts = urlsplit(handler.path)
    path = parts.path[len(CONTROL_PATH) :].rstrip("/")
    method = handler.command
    if method == "GET" and path == "":
        respond(200, {"dativo_mock_api": 1, "resource": api.resource, "requests": len(api.requests)})
    elif method == "GET" and path == "/requests":
        query = dict(parse_qsl(parts.query))
        try:
            since = max(0, int(query.get("since", "0")))
        except ValueError:
            respond(400, {"error": "since must be an integer"})
            return
        respond(200, {"statuses": [r.status for r in api.requests[since:]]})
    elif method == "DELETE" and path == "/faults":
        api.clear_faults()
        respond(204, None)
    elif method == "POST" and path == "/faults":
        _queue_fault(api, handler, respond)
    else:
        respond(404, {"error": f"no control endpoint {method} {parts.path}"})


def _queue_fault(
    api: MockApiServer, handler: BaseHTTPRequestHandler, respond: Callable[[int, Any], None]
) -> None:
    try:
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        status, count = int(body["status"]), int(body.get("count", 1))
        if status in (401, 403):
            api.reject_next(count, status=status)
        elif status == 429:
            retry_after = body.get("retry_after")
            api.rate_limit_next(count, retry_after=1.0 if retry_after is None else float(retry_after))
        else:
            api.fail_next(count, status=status)
    except (KeyError, TypeError, ValueError) as exc:
        respond(
            400, {"error": f"a fault is {{'status': 401|403|429|5xx, 'count': N, 'retry_after': S}}: {exc}"}
        )
        return
    respond(204, None)
