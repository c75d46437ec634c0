"""Reader checks that drive the mock HTTP API's faults and require the matching SDK errors.

They run when the reader's config points at the testkit's mock API: some string in the
config (``base_url``, at any depth) is the URL of a :class:`~dativo_testkit.MockApiServer`
serving in this process, or starts with it followed by ``/``; else, a loopback URL where a
``dativo-testkit mock-api`` of another process answers its control endpoint. Each check
queues a fault on that server (401/403, 429 with ``Retry-After``, a burst of 5xx) or points
a copy of the config at a port nothing listens on, reads the stream, and requires the error
a well-behaved reader raises, so the runtime knows whether to retry, when, and what to tell
the user. Faults already queued on the server are cleared before and after each check.
"""

from __future__ import annotations

import socket
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from dativo_plugin_sdk import (
    AuthenticationError,
    DativoError,
    RateLimitError,
    State,
    is_retryable,
)

from ._checks import CheckFailedError, CheckSkippedError, describe_exception
from ._extract_run import close_iterator
from ._mock_api import running_servers
from ._mock_api_control import FaultTarget, LocalMockApi, probe
from ._reader_session import ReaderSession

__all__ = [
    "check_mock_api_authentication",
    "check_mock_api_rate_limit",
    "check_mock_api_server_errors",
    "check_mock_api_unreachable",
    "mock_api_of",
]

_PERSISTENT = 1000  # faults queued for "every request": more than any sane retry loop makes
_RETRY_AFTER = 1  # seconds the 429 answers ask for
_BURST = 3  # 5xx answers in a short burst

# The mock API each session's config points at, looked up once per conformance run.
_TARGETS: weakref.WeakKeyDictionary[ReaderSession, FaultTarget | None] = weakref.WeakKeyDictionary()


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def _prefixes(api: FaultTarget) -> tuple[str, ...]:
    url = api.url
    return (url, url.replace("://127.0.0.1:", "://localhost:"))


def _points_at(text: str, prefix: str) -> bool:
    return text.rstrip("/") == prefix or text.startswith(prefix + "/")


def mock_api_of(config: Any) -> FaultTarget | None:
    """Return the running mock API server ``config`` points at, or ``None``.

    Args:
        config: A reader config.

    Returns:
        The first server of this process whose URL a string in ``config`` is or starts
        with; else the ``dativo-testkit mock-api`` server (another process) at a loopback
        URL in ``config``.
    """
    texts = list(_strings(config))
    for server in running_servers():
        try:
            local = LocalMockApi(server)
        except RuntimeError:  # stopped meanwhile
            continue
        if any(_points_at(t, p) for t in texts for p in _prefixes(local)):
            return local
    for text in texts:
        remote = probe(text)
        if remote is not None:
            return remote
    return None


def _replace_url(value: Any, prefixes: tuple[str, ...], new: str) -> Any:
    if isinstance(value, str):
        for prefix in prefixes:
            if _points_at(value, prefix):
                return new + value[len(prefix) :]
        return value
    if isinstance(value, dict):
        return {k: _replace_url(v, prefixes, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_replace_url(v, prefixes, new) for v in value)
    return value


def _require_mock(session: ReaderSession) -> FaultTarget:
    if session not in _TARGETS:
        _TARGETS[session] = mock_api_of(session.config)
    api = _TARGETS[session]
    if api is None:
        raise CheckSkippedError(
            "the config does not point at a running MockApiServer, so HTTP error handling was not "
            "exercised; to exercise it, take the config from MockApiServer.reader_config() or the "
            "dativo_mock_api fixture, or point it at a 'dativo-testkit mock-api' server on loopback "
            "(docs/conformance.md)"
        )
    return api


@dataclass
class _Outcome:
    raised: BaseException | None
    records: int
    statuses: list[int]


def _read(session: ReaderSession, api: FaultTarget, config: Any, arrange: Callable[[], None]) -> _Outcome:
    """Queue faults with ``arrange``, read the stream with a fresh reader, and say what happened."""
    api.clear_faults()
    seen = api.request_count()
    arrange()
    raised: BaseException | None = None
    records = 0
    iterator: Any = None
    try:
        reader = session.construct(config)
    except Exception as exc:
        api.clear_faults()
        raise CheckFailedError(f"constructing the reader raised {describe_exception(exc)}") from None
    try:
        iterator = iter(reader.extract(state=State(stream=session.stream.name)))
        for batch in iterator:
            records += len(batch) if isinstance(batch, list) else int(getattr(batch, "num_rows", 0))
    except Exception as exc:
        session.observe(exc)
        raised = exc
    finally:
        close_iterator(iterator)
        session.close_quietly(reader)
        api.clear_faults()
    return _Outcome(raised, records, api.statuses_since(seen))


def _got(outcome: _Outcome) -> str:
    if outcome.raised is None:
        return f"extract ended without raising ({outcome.records} records)"
    return f"extract raised {describe_exception(outcome.raised)}"


def _require_requests(outcome: _Outcome, status: int, what: str) -> None:
    if status not in outcome.statuses:
        raise CheckSkippedError(
            f"the reader sent no request the mock API could answer with {what}: it made "
            f"{len(outcome.statuses)} request(s) during extract"
        )


def check_mock_api_authentication(session: ReaderSession) -> str:
    """401 and 403 answers must raise ``AuthenticationError`` (never retried)."""
    api = _require_mock(session)
    for status in (401, 403):
        outcome = _read(session, api, session.config, partial(api.reject_next, _PERSISTENT, status=status))
        _require_requests(outcome, status, f"HTTP {status}")
        if not isinstance(outcome.raised, AuthenticationError):
            raise CheckFailedError(
                f"when the API answered HTTP {status} to every request, {_got(outcome)}. Raise "
                "dativo_plugin_sdk.AuthenticationError on 401 and 403: the runtime then stops without "
                "retrying and tells the user to fix the credentials",
                {"status": status, "raised": None if outcome.raised is None else repr(outcome.raised)},
            )
    return "HTTP 401 and 403 raised AuthenticationError"


def check_mock_api_rate_limit(session: ReaderSession) -> str:
    """429 answers with ``Retry-After`` must raise ``RateLimitError`` carrying ``retry_after``."""
    api = _require_mock(session)
    outcome = _read(
        session,
        api,
        session.config,
        lambda: api.rate_limit_next(_PERSISTENT, retry_after=_RETRY_AFTER),
    )
    _require_requests(outcome, 429, "HTTP 429")
    raised = outcome.raised
    if not isinstance(raised, RateLimitError):
        raise CheckFailedError(
            f"when the API answered HTTP 429 with 'Retry-After: {_RETRY_AFTER}' to every request, "
            f"{_got(outcome)}. Raise dativo_plugin_sdk.RateLimitError(..., retry_after=seconds) with "
            "the Retry-After header's seconds: the runtime waits that long, then retries",
            {"status": 429, "raised": None if raised is None else repr(raised)},
        )
    if raised.retry_after is None:
        raise CheckFailedError(
            f"on HTTP 429 with 'Retry-After: {_RETRY_AFTER}', extract raised RateLimitError without "
            "retry_after; pass retry_after=float(response.headers['Retry-After']) so the runtime waits "
            "as long as the API asked",
            raised.to_dict(),
        )
    return f"HTTP 429 raised RateLimitError with retry_after={raised.retry_after:g}"


def _retryable(error: BaseException | None) -> bool:
    """A DativoError the runtime retries (its ``retryable`` flag); never a built-in exception."""
    return isinstance(error, DativoError) and is_retryable(error)


def check_mock_api_server_errors(session: ReaderSession) -> str:
    """A burst of 5xx is retried or raised as a retryable error; endless 5xx must raise one."""
    api = _require_mock(session)
    burst = _read(session, api, session.config, lambda: api.fail_next(_BURST, status=503))
    _require_requests(burst, 503, "HTTP 503")
    if burst.raised is not None and not _retryable(burst.raised):
        raise CheckFailedError(
            f"after a burst of {_BURST} HTTP 503 answers, {_got(burst)}. Raise "
            "dativo_plugin_sdk.TransientError on 5xx (the runtime retries it with backoff), or retry "
            "a few times yourself",
            {"status": 503, "raised": repr(burst.raised)},
        )
    endless = _read(session, api, session.config, lambda: api.fail_next(_PERSISTENT, status=500))
    if not _retryable(endless.raised):
        raise CheckFailedError(
            f"when the API answered HTTP 500 to every request, {_got(endless)}. Raise "
            "dativo_plugin_sdk.TransientError (or ConnectionError) once your own retries are spent, so "
            "the runtime retries the run with backoff instead of reporting a crash or a success",
            {"status": 500, "raised": None if endless.raised is None else repr(endless.raised)},
        )
    recovered = (
        "was retried: extract read every record"
        if burst.raised is None
        else f"raised {type(burst.raised).__name__}"
    )
    assert endless.raised is not None
    endless_error = type(endless.raised).__name__
    return f"a burst of {_BURST} HTTP 503 {recovered}; endless HTTP 500 raised {endless_error}"


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def check_mock_api_unreachable(session: ReaderSession) -> str:
    """A port nothing listens on must raise ``ConnectionError`` or ``TransientError``."""
    api = _require_mock(session)
    dead = f"http://127.0.0.1:{_closed_port()}"
    config = _replace_url(session.config, _prefixes(api), dead)
    outcome = _read(session, api, config, lambda: None)
    if not _retryable(outcome.raised):
        raise CheckFailedError(
            f"with the API's URL changed to {dead}, where nothing listens, {_got(outcome)}. Catch "
            "connection failures (urllib.error.URLError, OSError, socket timeouts) and raise "
            "dativo_plugin_sdk.ConnectionError: the runtime retries it, then reports the source as "
            "unreachable",
            {"url": dead, "raised": None if outcome.raised is None else repr(outcome.raised)},
        )
    return f"an unreachable API raised {type(outcome.raised).__name__}"
