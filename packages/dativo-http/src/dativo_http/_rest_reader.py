"""``RestReader``: a reader of REST APIs whose paging, credentials, retries and errors are objects.

A connector subclasses it, lists its :class:`~._stream.RestStream` objects and, where the
API needs code, overrides a hook: :meth:`RestReader.request_params`,
:meth:`RestReader.parse_records` or :meth:`RestReader.next_page`. The read loop is here:
one page in memory at a time, a batch per page (or per ``batch_size`` records), the
incremental cursor advanced after each batch is yielded, and a next request that repeats
one already made (a cursor that does not advance) stopped with a ``PluginError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from dativo_plugin_sdk import (
    BaseReader,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
    DiscoveredStream,
    DiscoveryResult,
    PluginError,
    State,
)

from ._auth import Authenticator
from ._body_path import value_at
from ._client import RestClient
from ._config_check import check_config
from ._page_batches import PageConverter
from ._paginators import PageRequest
from ._rate_limit import RateLimiter
from ._retry import RetryPolicy
from ._schema_inference import infer_columns
from ._stream import RestStream, later_cursor

__all__ = ["RestReader"]


class RestReader(BaseReader):
    """A reader of one or more REST endpoints; subclass it and list ``streams``.

    A subclass that declares ``config_schema`` (a JSON Schema of its config) gets every
    config checked against it on construction: a ``ConfigurationError`` lists each
    problem by key path, never by value.

    Class attributes a subclass sets (or overrides the matching method):

    * ``base_url``: the API's root URL (a ``base_url`` key in the config wins);
    * ``streams``: the :class:`RestStream` objects it reads;
    * ``timeout``: seconds to connect and for each read (a ``timeout`` config key wins).

    Args:
        config: The reader's config.

    Raises:
        ConfigurationError: If the config does not fit the class's ``config_schema``.
    """

    requires_sdk = ">=1.1,<2"
    supports_incremental = True
    base_url: str = ""
    streams: Sequence[RestStream] = ()
    timeout: float = 30.0

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(dict(config))
        schema = getattr(type(self), "config_schema", None)
        if isinstance(schema, Mapping):
            check_config(_owner(type(self)), self.config, schema)
        self._client: RestClient | None = None
        self._columns: dict[str, tuple[Column, ...]] = {}  # inferred, by stream name
        self._transport: httpx.BaseTransport | None = None  # tests: httpx.MockTransport
        self._sleep: Callable[[float], None] = time.sleep  # tests: a recorder

    # Configuration hooks ---------------------------------------------------------------

    def api_base_url(self) -> str:
        """Return the API's root URL: the config's ``base_url``, else the class attribute."""
        return str(self.config.get("base_url") or self.base_url).rstrip("/")

    def rest_streams(self) -> Sequence[RestStream]:
        """Return the streams this reader offers (default: the ``streams`` class attribute)."""
        return tuple(self.streams)

    def authenticator(self) -> Authenticator | None:
        """Return the authenticator (default: none)."""
        return None

    def headers(self) -> dict[str, str]:
        """Return headers sent with every request (default: ``Accept: application/json``)."""
        return {"Accept": "application/json"}

    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy (default: :class:`RetryPolicy`'s defaults)."""
        return RetryPolicy()

    def rate_limiter(self) -> RateLimiter | None:
        """Return a client-side rate limit (default: none)."""
        return None

    # Request hooks ---------------------------------------------------------------------

    def request_params(self, *, stream: RestStream, cursor_value: Any) -> dict[str, Any]:
        """Return the query parameters of a stream's first request.

        Args:
            stream: The stream.
            cursor_value: Where an incremental read resumes (``None``: from the start).

        Returns:
            The stream's ``params``, plus the cursor's ``param`` when there is a value.
        """
        params = dict(stream.params)
        if stream.cursor is not None and stream.cursor.param and cursor_value is not None:
            params[stream.cursor.param] = cursor_value
        return params

    def parse_records(self, *, stream: RestStream, response: httpx.Response, body: Any) -> list[Any]:
        """Return the records of a page (default: the list at the stream's ``records_path``).

        Args:
            stream: The stream.
            response: The page's response.
            body: Its decoded JSON body.

        Returns:
            The page's records, dicts.

        Raises:
            PluginError: If ``records_path`` does not hold a list of objects.
        """
        found = value_at(body, stream.records_path)
        if found is None:
            return []
        if isinstance(found, dict):
            found = [found]
        if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
            url = self.client().mask.url(str(response.request.url))
            where = f"at '{stream.records_path}'" if stream.records_path else "at the top level"
            raise PluginError(
                f"the answer of {url} holds no list of records {where} (found {_kind(found)}); "
                f"check the stream's 'records_path'",
                details={"url": url, "records_path": stream.records_path, "stream": stream.name},
            )
        return found

    def next_page(
        self,
        *,
        stream: RestStream,
        request: PageRequest,
        response: httpx.Response,
        body: Any,
        records: Sequence[Any],
    ) -> PageRequest | None:
        """Return the next page's request, or ``None`` (default: the stream's paginator decides).

        Args:
            stream: The stream.
            request: The request of the page just read.
            response: Its response.
            body: Its decoded JSON body.
            records: Its records.

        Returns:
            The next request, or ``None`` after the last page.
        """
        return stream.paginator.next(request=request, response=response, body=body, records=records)

    # The reader contract ---------------------------------------------------------------

    def client(self) -> RestClient:
        """Return this reader's HTTP client, made on first use and closed by :meth:`close`."""
        if self._client is None:
            base = self.api_base_url()
            if not base:
                raise ConfigurationError(f"{type(self).__name__} needs a 'base_url'")
            self._client = RestClient(
                base,
                auth=self.authenticator(),
                headers=self.headers(),
                timeout=float(self.config.get("timeout") or self.timeout),
                retry=self.retry_policy(),
                rate_limiter=self.rate_limiter(),
                verify=self.config.get("verify_tls", True),
                sleep=self._sleep,
                transport=self._transport,
            )
        return self._client

    def check_connection(self) -> ConnectionTestResult:
        """Request the first page of the first stream once, without retries, and report the answer."""
        streams = self.rest_streams()
        if not streams:
            return ConnectionTestResult(
                False, f"{type(self).__name__} lists no streams", "CONFIGURATION_ERROR"
            )
        stream = streams[0]
        probe = RestClient(
            self.api_base_url(),
            auth=self.authenticator(),
            headers=self.headers(),
            timeout=float(self.config.get("timeout") or self.timeout),
            retry=RetryPolicy(max_retries=0),
            verify=self.config.get("verify_tls", True),
            transport=self._transport,
        )
        try:
            request = stream.paginator.first(
                PageRequest(stream.path, self.request_params(stream=stream, cursor_value=None))
            )
            response = probe.get(request)
            probe.decode_json(response)
        except DativoError as exc:
            return ConnectionTestResult(False, exc.message, exc.error_code, exc.details, exc.retryable)
        finally:
            probe.close()
        return ConnectionTestResult(
            True, f"{probe.mask.url(probe.url_of(request))} answered HTTP 200 with JSON"
        )

    def discover(self) -> DiscoveryResult:
        """List the streams, with their declared schemas or ones inferred from their first page."""
        found = []
        for stream in self.rest_streams():
            columns = self.columns_of(stream)
            found.append(
                DiscoveredStream(
                    stream.name,
                    tuple(columns),
                    type="endpoint",
                    primary_key=tuple(stream.primary_key),
                    cursor_field=stream.cursor.field if stream.cursor else None,
                )
            )
        return DiscoveryResult(found, metadata={"base_url": self.client().mask.url(self.api_base_url())})

    def columns_of(self, stream: RestStream) -> tuple[Column, ...]:
        """Return a stream's columns: declared, else inferred from its first page (read once, then kept).

        The first page is read without the incremental cursor, so ``discover`` and every
        ``extract`` infer the same schema from the same page.
        """
        if stream.columns is not None:
            return tuple(stream.columns)
        if stream.name not in self._columns:
            self._columns[stream.name] = tuple(self._infer(stream))
        return self._columns[stream.name]

    def _infer(self, stream: RestStream) -> list[Column]:
        request = stream.paginator.first(
            PageRequest(stream.path, self.request_params(stream=stream, cursor_value=None))
        )
        response = self.client().get(request)
        body = self.client().decode_json(response)
        return infer_columns(
            self.parse_records(stream=stream, response=response, body=body), stream.primary_key
        )

    def stream_for(self, state: State | None) -> RestStream:
        """Return the stream a read is for: the state's stream, else the only one.

        Raises:
            ConfigurationError: If the state names no stream of this reader, or none is named
                and there are several.
        """
        streams = self.rest_streams()
        wanted = state.stream if state is not None else None
        if wanted:
            for stream in streams:
                if stream.name == wanted:
                    return stream
            raise ConfigurationError(
                f"{type(self).__name__} has no stream {wanted!r}; its streams: "
                f"{', '.join(s.name for s in streams) or 'none'}",
                details={"stream": wanted, "streams": [s.name for s in streams]},
            )
        if len(streams) == 1:
            return streams[0]
        raise ConfigurationError(
            f"{type(self).__name__} has {len(streams)} streams ({', '.join(s.name for s in streams)}); "
            "name the one to read (a job's source.stream)",
            details={"streams": [s.name for s in streams]},
        )

    def extract(self, state: State | None = None) -> Iterator[Any]:
        """Read the stream page by page; yield a batch per page (or per ``batch_size`` records).

        Args:
            state: The stream's state: where an incremental read resumes, updated after each batch.

        Yields:
            ``pyarrow.RecordBatch`` objects of the stream's columns (dicts for a page whose
            values do not fit them, for the runtime's validation to report).

        Raises:
            PluginError: If a body is not JSON, holds no record list, or the next page repeats one read.
        """
        stream = self.stream_for(state)
        client = self.client()
        cursor = stream.cursor
        since = None
        if cursor is not None:
            since = state.get(cursor.field) if state is not None else None
            since = cursor.start if since is None else since
        first = stream.paginator.first(
            PageRequest(stream.path, self.request_params(stream=stream, cursor_value=since))
        )
        request: PageRequest | None = first
        seen = set()
        converter = PageConverter(self.columns_of(stream))
        pending: list[Any] = []
        high = since
        # The next page is requested as soon as its URL is known, on a thread of its own, while
        # this one is converted and handed over: at most two pages are held at once.
        prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dativo-http-prefetch")
        try:
            future = prefetch.submit(client.get, first)
            while request is not None:
                seen.add(request.key())
                response = future.result()
                body = client.decode_json(response)
                records = self.parse_records(stream=stream, response=response, body=body)
                following = self.next_page(
                    stream=stream, request=request, response=response, body=body, records=records
                )
                del body, response
                if following is not None:
                    if following.key() in seen:
                        raise self._repeated(stream, following)
                    future = prefetch.submit(client.get, following)
                if records and not converter.columns:  # the API was empty when the schema was inferred
                    converter = PageConverter(infer_columns(records, stream.primary_key))
                pending.extend(records)
                if pending and (
                    following is None or stream.batch_size is None or len(pending) >= stream.batch_size
                ):
                    batch = converter.convert(pending)
                    if cursor is not None:
                        high = _highest(high, pending, batch, cursor.field)
                    pending = []
                    yield batch
                    if cursor is not None and state is not None and high is not None:
                        state.set(cursor.field, high)
                request = following
        finally:
            prefetch.shutdown(wait=True, cancel_futures=True)

    def _repeated(self, stream: RestStream, following: PageRequest) -> PluginError:
        url = self.client().mask.url(self.client().url_of(following))
        return PluginError(
            f"stream {stream.name!r}: the next page the API points at, {url}, was already read; "
            "its cursor does not advance, so reading on would loop forever. Check the paginator "
            "('next', 'param') against what the API sends",
            details={"stream": stream.name, "url": url},
        )

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None


def _highest(current: Any, records: list[Any], batch: Any, field: str) -> Any:
    """The later of ``current`` and the largest ``field`` of ``records``, as the API wrote it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(batch, pa.RecordBatch) and field in batch.schema.names and batch.num_rows:
        column = batch.column(field)
        top = pc.max(column)
        if top.is_valid:
            # The record holding the largest value, so the state keeps the API's own spelling.
            index = pc.index(column, top).as_py()
            return later_cursor(current, records[index].get(field))
        return current
    for record in records:
        if isinstance(record, dict):
            current = later_cursor(current, record.get(field))
    return current


def _owner(cls: type) -> str:
    return "the http reader" if cls.__module__.startswith("dativo_http.") else cls.__name__


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list of " + ", ".join(sorted({type(v).__name__ for v in value}))
    return f"a {type(value).__name__}"
