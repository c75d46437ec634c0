"""``MockApiServer``: a real HTTP server on loopback serving a paginated, token-protected JSON resource.

The protocol (the example ``JsonApiReader`` speaks it)::

    GET /{resource}?limit=N[&cursor=C][&updated_since=ISO]      Authorization: Bearer TOKEN
    -> 200 {"data": [...], "next_cursor": "C2" | null}

    GET /{resource}?limit=N&offset=K[&updated_since=ISO]
    -> 200 {"data": [...], "total": T, "next_offset": K2 | null}

    GET /{resource}?limit=N&page=P[&updated_since=ISO]          (P from 1)
    -> 200 {"data": [...], "page": P, "next_page": P2 | null}

Every page with a next one also carries the URL of the next page, as ``next_url`` in the
body and as an RFC 8288 ``Link: <URL>; rel="next"`` header. Records are sorted by
``(updated_at, id)``; ``updated_since`` keeps records updated strictly after the given
instant. Credentials follow the server's ``auth`` scheme (:mod:`._mock_api_auth`); missing
ones get 401, wrong ones 403. Queued faults answer 401/403 (whatever the token), 429 or
503 (with ``Retry-After``, in seconds or as an HTTP date), 5xx, a body that is not JSON, a
late answer, or a page whose next pointer does not advance, before pages are served again.

It is one module of about 600 lines on purpose: the paging, the request handler and the
fault queue share one lock and one sorted record list, and read best side by side.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from dativo_plugin_sdk import Column, ColumnType, Record

from ._mock_api_auth import TOKEN_PATH, MockApiAuth
from ._mock_api_control import CONTROL_PATH, handle_control

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["MockApiServer", "RecordedRequest"]

_RUNNING: weakref.WeakSet[MockApiServer] = weakref.WeakSet()
_RUNNING_LOCK = threading.Lock()

_NAMES = ("Ada", "Zoë", "Bjørn", "José", "Мария", "李雷", "Ngozi", "Siobhán", "Ólafur", "Amélie")
_BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: HTTP method.
        path: The path without the query string.
        query: Query parameters (last value wins).
        authorization: ``"missing"``, ``"valid"``, ``"invalid"`` or ``"expired"`` (an OAuth2
            access token past its lifetime); the token is never kept.
        status: The status code answered.
    """

    method: str
    path: str
    query: dict[str, str] = field(hash=False)
    authorization: str
    status: int


def _parse_instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "+"))
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class _Fault:
    status: int
    retry_after: float | None = None
    http_date: bool = False  # Retry-After as an HTTP date instead of seconds
    kind: str = "status"  # "status", "malformed", "delay" or "stall"
    seconds: float = 0.0  # how late a "delay" answers


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class MockApiServer:
    """A paginated JSON API on ``127.0.0.1`` and an ephemeral port, for REST reader tests.

    Use it as a context manager (or through the ``dativo_mock_api`` pytest fixture)::

        with MockApiServer(records=250) as api:
            reader = JsonApiReader(config=api.reader_config(page_size=50))
            ...
            assert api.requests[0].authorization == "valid"

    Args:
        records: How many generated records to serve, or the records themselves (each
            with an integer ``id`` and an ISO 8601 ``updated_at``).
        resource: The resource's path segment (``GET /{resource}``).
        token: The bearer token the server accepts.
        seed: Seed of the generated records.
        default_page_size: Page size when the request gives no ``limit``.
        max_page_size: Largest page served, whatever ``limit`` asks.
        host: The address to listen on; ``127.0.0.1`` by default (see docs/testkit.md for
            what a sandboxed reader can reach).
        port: The port to listen on; ``0`` (the default) picks a free one.
        control: Serve the control endpoint ``/_dativo/mock-api`` to loopback clients, so
            conformance in another process can queue faults (``dativo-testkit mock-api``
            turns it on).
        auth: The credentials asked for: ``bearer`` (``Authorization: Bearer TOKEN``),
            ``basic`` (``username`` and ``token`` as the password), ``api_key_header``
            (``X-API-Key: TOKEN``), ``api_key_query`` (``?api_key=TOKEN``) or ``oauth2``
            (client credentials ``username``/``token`` exchanged at ``POST /oauth/token``
            for a bearer token).
        username: The basic user name, or the OAuth2 client id.
        token_ttl: Seconds an OAuth2 access token stays valid.

    Raises:
        ValueError: If a given record lacks ``id`` or a valid ``updated_at``, or ``auth``
            is unknown.
    """

    SCHEMA: tuple[Column, ...] = (
        Column("id", ColumnType.INTEGER, nullable=False),
        Column("name", ColumnType.STRING),
        Column("email", ColumnType.STRING),
        Column("amount", ColumnType.FLOAT),
        Column("updated_at", ColumnType.TIMESTAMP, nullable=False),
    )
    """The columns of generated records."""

    def __init__(
        self,
        *,
        records: int | Sequence[Mapping[str, Any]] = 100,
        resource: str = "items",
        token: str = "test-token",
        seed: int = 0,
        default_page_size: int = 100,
        max_page_size: int = 1000,
        host: str = "127.0.0.1",
        port: int = 0,
        control: bool = False,
        auth: str = "bearer",
        username: str = "test-user",
        token_ttl: float = 3600.0,
    ) -> None:
        if not resource or "/" in resource:
            raise ValueError(f"resource must be one path segment, got {resource!r}")
        if default_page_size <= 0 or max_page_size <= 0:
            raise ValueError("page sizes must be positive")
        rows = (
            self.build_records(records, seed=seed) if isinstance(records, int) else [dict(r) for r in records]
        )
        keyed = sorted(_keyed(rows), key=lambda pair: pair[0])
        self._keys = [k for k, _ in keyed]
        self._records = [r for _, r in keyed]
        self.host = host
        self._port = port
        self.control = control
        self.resource = resource
        self.token = token
        self.username = username
        self.auth = auth
        self._auth = MockApiAuth(auth, username=username, secret=token, token_ttl=token_ttl)
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self._lock = threading.Lock()
        self._faults: deque[_Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def build_records(count: int, *, seed: int = 0) -> list[Record]:
        """Generate ``count`` API records: ``id``, ``name``, ``email``, ``amount``, ``updated_at``.

        ``updated_at`` is ISO 8601 UTC text (``2024-01-01T00:01:00+00:00``), one minute
        apart and increasing with ``id``; every seventh ``name`` is null.
        """
        rng = random.Random(f"dativo-api:{seed}")
        records: list[Record] = []
        for i in range(1, count + 1):
            name = None if i % 7 == 0 else f"{rng.choice(_NAMES)} {i}"
            records.append(
                {
                    "id": i,
                    "name": name,
                    "email": f"user{i}@example.com",
                    "amount": round(rng.uniform(0, 10_000), 2),
                    "updated_at": (_BASE + timedelta(minutes=i)).isoformat(),
                }
            )
        return records

    # Lifecycle -----------------------------------------------------------------------

    def start(self) -> MockApiServer:
        """Start serving in a background thread; returns ``self``.

        Raises:
            RuntimeError: If already started.
        """
        from http.server import ThreadingHTTPServer

        if self._server is not None:
            raise RuntimeError("MockApiServer is already running")
        server = ThreadingHTTPServer((self.host, self._port), _handler_class())
        server.daemon_threads = True
        server.mock_api = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="dativo-mock-api", daemon=True
        )
        self._thread.start()
        with _RUNNING_LOCK:
            _RUNNING.add(self)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> MockApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port the server listens on.

        Raises:
            RuntimeError: If the server is not running.
        """
        if self._server is None:
            raise RuntimeError("MockApiServer is not running: use it as a context manager or call start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (no trailing slash; loopback when listening on all)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def tokens_issued(self) -> int:
        """How many OAuth2 access tokens the server issued (``auth="oauth2"``)."""
        return self._auth.tokens_issued

    def expire_tokens(self) -> None:
        """Expire every OAuth2 access token issued so far: their next use gets 401."""
        self._auth.expire_tokens()

    def reader_config(self, **extra: Any) -> dict[str, Any]:
        """Return ``base_url``, ``token`` and ``resource`` (plus ``extra``) for a reader's config."""
        return {"base_url": self.url, "token": self.token, "resource": self.resource, **extra}

    # Data and faults -----------------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        """Every record served, in ``(updated_at, id)`` order (copies)."""
        with self._lock:
            return [dict(r) for r in self._records]

    def add_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Serve ``records`` too, from the next request on (each in its ``(updated_at, id)`` place).

        Raises:
            ValueError: If a record lacks an integer ``id`` or a valid ``updated_at``.
        """
        from bisect import insort

        keyed = _keyed([dict(r) for r in records])
        with self._lock:
            for key, row in keyed:
                position = _first_after(self._keys, key)
                insort(self._keys, key)
                self._records.insert(position, row)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._requests.clear()

    def fail_next(
        self, count: int = 1, *, status: int = 503, retry_after: float | None = None, http_date: bool = False
    ) -> None:
        """Answer the next ``count`` authorised requests with ``status`` (a burst of 5xx).

        Args:
            count: How many requests in a row.
            status: The 5xx status.
            retry_after: If given, a ``Retry-After`` header with these seconds.
            http_date: Send ``Retry-After`` as an HTTP date instead of seconds.

        Raises:
            ValueError: If ``status`` is not 5xx, ``count`` < 1 or ``retry_after`` < 0.
        """
        if not 500 <= status <= 599 or count < 1 or (retry_after is not None and retry_after < 0):
            raise ValueError(f"fail_next needs a 5xx status and count >= 1, got {status}, {count}")
        with self._lock:
            self._faults.extend(_Fault(status, retry_after, http_date) for _ in range(count))

    def malformed_next(self, count: int = 1) -> None:
        """Answer the next ``count`` authorised requests with 200 and a body that is not JSON.

        Raises:
            ValueError: If ``count`` < 1.
        """
        self._queue(count, _Fault(200, kind="malformed"))

    def delay_next(self, count: int = 1, *, seconds: float = 1.0) -> None:
        """Answer the next ``count`` authorised requests ``seconds`` late (to trip client timeouts).

        Raises:
            ValueError: If ``count`` < 1 or ``seconds`` < 0.
        """
        if seconds < 0:
            raise ValueError(f"delay_next needs seconds >= 0, got {seconds}")
        self._queue(count, _Fault(200, kind="delay", seconds=seconds))

    def stall_next(self, count: int = 1) -> None:
        """Serve the next ``count`` pages with a next pointer that does not advance.

        The page's ``next_cursor`` (or ``next_offset``, ``next_page``, ``next_url`` and
        ``Link``) points at the page just served, so a client that follows it blindly
        reads the same page forever.

        Raises:
            ValueError: If ``count`` < 1.
        """
        self._queue(count, _Fault(200, kind="stall"))

    def _queue(self, count: int, fault: _Fault) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        with self._lock:
            self._faults.extend(fault for _ in range(count))

    def reject_next(self, count: int = 1, *, status: int = 401) -> None:
        """Answer the next ``count`` requests with 401 or 403, whatever token they carry.

        Raises:
            ValueError: If ``status`` is not 401 or 403, or ``count`` < 1.
        """
        if status not in (401, 403) or count < 1:
            raise ValueError(f"reject_next needs status 401 or 403 and count >= 1, got {status}, {count}")
        with self._lock:
            self._faults.extend(_Fault(status, None) for _ in range(count))

    def clear_faults(self) -> None:
        """Forget every queued fault: requests are answered normally again."""
        with self._lock:
            self._faults.clear()

    def rate_limit_next(self, count: int = 1, *, retry_after: float = 1.0, http_date: bool = False) -> None:
        """Answer the next ``count`` authorised requests with 429 and ``Retry-After: retry_after``.

        With ``http_date``, ``Retry-After`` is the HTTP date ``retry_after`` seconds from
        the answer (whole seconds: an HTTP date has no fractions).

        Raises:
            ValueError: If ``retry_after`` is negative or ``count`` < 1.
        """
        if retry_after < 0 or count < 1:
            raise ValueError(
                f"rate_limit_next needs retry_after >= 0 and count >= 1, got {retry_after}, {count}"
            )
        with self._lock:
            self._faults.extend(_Fault(429, retry_after, http_date) for _ in range(count))

    # Request handling (called from the server's threads) ------------------------------

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _page(self, query: Mapping[str, str], stall: bool) -> tuple[dict[str, Any], dict[str, str] | None]:
        """Serve one page: its body, and the query of the next page (``None`` after the last)."""
        try:
            limit = int(query.get("limit", self.default_page_size))
        except ValueError:
            raise _HttpError(400, "limit must be an integer") from None
        if limit <= 0:
            raise _HttpError(400, "limit must be positive")
        limit = min(limit, self.max_page_size)
        start = 0
        if "updated_since" in query:
            try:
                since = _parse_instant(query["updated_since"])
            except ValueError:
                raise _HttpError(400, "updated_since must be an ISO 8601 timestamp") from None
            start = _first_after(self._keys, (since, float("inf")))
        if "offset" in query or "page" in query:
            key = "offset" if "offset" in query else "page"
            try:
                number = int(query[key])
            except ValueError:
                raise _HttpError(400, f"{key} must be an integer") from None
            if number < (0 if key == "offset" else 1):
                raise _HttpError(400, f"{key} must be >= {0 if key == 'offset' else 1}")
            offset = number if key == "offset" else (number - 1) * limit
            total = len(self._records) - start
            data = self._records[start + offset : start + offset + limit]
            more = offset + limit < total
            step = limit if key == "offset" else 1
            following = number if stall else (number + step if more else None)
            body: dict[str, Any] = {"data": data}
            if key == "offset":
                body.update(total=total, next_offset=following)
            else:
                body.update(page=number, next_page=following)
            return body, None if following is None else {**query, key: str(following)}
        if query.get("cursor"):
            start = max(start, _first_after(self._keys, _decode_cursor(query["cursor"])))
        data = self._records[start : start + limit]
        more = start + limit < len(self._records)
        next_cursor: str | None
        if stall:  # a cursor pointing at this very page
            next_cursor = query.get("cursor") or _encode_cursor(_BEFORE_ALL)
        else:
            next_cursor = _encode_cursor(self._keys[start + limit - 1]) if more and data else None
        return {"data": data, "next_cursor": next_cursor}, (
            None if next_cursor is None else {**query, "cursor": next_cursor}
        )

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        if self.control and (parts.path == CONTROL_PATH or parts.path.startswith(CONTROL_PATH + "/")):
            handle_control(self, handler, lambda status, payload: _respond(handler, status, payload, {}))
            return
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if parts.path == TOKEN_PATH and handler.command == "POST":
            self._token_request(handler, parts.path, query)
            return
        authorization = self._auth.check(handler.headers, query)  # drops an API key from the query
        headers: dict[str, str] = {}
        body: bytes | None = None
        try:
            if handler.command != "GET":
                headers["Allow"] = "GET"
                raise _HttpError(405, f"{handler.command} is not served; the API answers GET")
            if authorization == "missing":
                headers.update(self._auth.challenge())
                raise _HttpError(
                    401, "missing bearer token" if self.auth == "bearer" else "missing credentials"
                )
            if authorization == "expired":
                headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
                raise _HttpError(401, "the access token expired")
            if authorization == "invalid":
                raise _HttpError(
                    403, "the token is not valid" if self.auth == "bearer" else "invalid credentials"
                )
            if parts.path.strip("/") != self.resource:
                raise _HttpError(404, f"no resource {parts.path!r}; try /{self.resource}")
            fault = self._next_fault() or _Fault(200, kind="none")
            _raise_fault(fault, headers, self._auth.challenge())
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            with self._lock:
                page, following = self._page(query, stall=fault.kind == "stall")
            if following is not None:
                host = handler.headers.get("Host") or f"{self.host}:{self.port}"
                page["next_url"] = f"http://{host}{parts.path}?{urlencode(following)}"
                headers["Link"] = f'<{page["next_url"]}>; rel="next"'
            status, payload = 200, page
            if fault.kind == "malformed":
                text = json.dumps(page, default=str).encode()
                body = text[: max(1, len(text) // 2)]  # cut off mid-document: not JSON
        except _HttpError as error:
            status, payload = error.status, {"error": error.message}
        with self._lock:
            self._requests.append(RecordedRequest(handler.command, parts.path, query, authorization, status))
        _respond(handler, status, payload, headers, body=body)

    def _token_request(self, handler: BaseHTTPRequestHandler, path: str, query: dict[str, str]) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(handler.rfile.read(length).decode("utf-8", "replace")))
        status, payload = self._auth.issue_token(handler.headers, form)
        with self._lock:
            self._requests.append(RecordedRequest("POST", path, query, "missing", status))
        _respond(handler, status, payload, {})


_BEFORE_ALL = (datetime(1, 1, 2, tzinfo=timezone.utc), 0)


def _raise_fault(fault: _Fault, headers: dict[str, str], challenge: Mapping[str, str]) -> None:
    """Raise the error answer a queued fault asks for (nothing for the others)."""
    if fault.kind != "status":
        return
    if fault.status in (401, 403):
        if fault.status == 401:
            headers.update(challenge)
        raise _HttpError(fault.status, "injected authentication failure")
    if fault.retry_after is not None:
        seconds = fault.retry_after
        if fault.http_date:
            headers["Retry-After"] = formatdate(time.time() + seconds, usegmt=True)
        else:
            headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    raise _HttpError(fault.status, "rate limit exceeded" if fault.status == 429 else "injected server error")


def _respond(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: Any,
    headers: Mapping[str, str],
    *,
    body: bytes | None = None,
) -> None:
    if body is None:
        body = b"" if payload is None else json.dumps(payload, default=str).encode()
    handler.send_response(status)
    if payload is not None:
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    try:
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (a timeout of its own): nothing to answer


def _keyed(rows: Sequence[dict[str, Any]]) -> list[tuple[tuple[datetime, int], dict[str, Any]]]:
    keyed = []
    for row in rows:
        try:
            keyed.append(((_parse_instant(str(row["updated_at"])), int(row["id"])), row))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"every record needs an integer 'id' and an ISO 8601 'updated_at': {exc}"
            ) from None
    return keyed


def running_servers() -> list[MockApiServer]:
    """Every :class:`MockApiServer` of this process that is serving now."""
    with _RUNNING_LOCK:
        return list(_RUNNING)


def _first_after(keys: Sequence[tuple[datetime, float]], key: tuple[datetime, float]) -> int:
    from bisect import bisect_right

    return bisect_right(keys, key)


def _encode_cursor(key: tuple[datetime, int]) -> str:
    text = json.dumps([key[0].isoformat(), key[1]])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return _parse_instant(str(moment)), int(ident)
    except (ValueError, TypeError, binascii.Error):
        raise _HttpError(400, "invalid cursor") from None


_HANDLER: type[BaseHTTPRequestHandler] | None = None


def _handler_class() -> type[BaseHTTPRequestHandler]:
    """Build the request handler class once, importing ``http.server`` only when needed."""
    global _HANDLER
    if _HANDLER is None:
        from http.server import BaseHTTPRequestHandler

        class _Handler(BaseHTTPRequestHandler):
            server_version = "DativoMockApi/1.0"

            def do_GET(self) -> None:
                self.server.mock_api._handle(self)  # type: ignore[attr-defined]

            do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (stdlib signature)
                """Keep test output quiet."""

        _HANDLER = _Handler
    return _HANDLER
