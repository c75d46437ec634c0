"""dativo-http: HTTP sources for Dativo without plumbing.

* :class:`HttpReader`, the ``http`` plugin: a REST API read from a job file's config alone
  (paging, credentials, incremental cursor, retries and rate limits), no code;
* :class:`RestReader`, for APIs that need code: the same paginators, authenticators and
  retry policy as objects, and small hooks to override.

See docs/http.md.
"""

from ._auth import ApiKeyAuth, Authenticator, BasicAuth, BearerAuth, OAuth2ClientCredentials
from ._client import RestClient
from ._config_schema import CONFIG_SCHEMA
from ._http_reader import HttpReader
from ._masking import SecretMask
from ._paginators import (
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    NoPaginator,
    OffsetPaginator,
    PagePaginator,
    PageRequest,
    Paginator,
)
from ._rate_limit import RateLimiter
from ._rest_reader import RestReader
from ._retry import RetryPolicy, parse_retry_after
from ._stream import IncrementalCursor, RestStream
from ._version import HTTP_VERSION

__version__ = HTTP_VERSION

__all__ = [
    "CONFIG_SCHEMA",
    "HTTP_VERSION",
    "ApiKeyAuth",
    "Authenticator",
    "BasicAuth",
    "BearerAuth",
    "CursorPaginator",
    "HttpReader",
    "IncrementalCursor",
    "LinkHeaderPaginator",
    "NextUrlPaginator",
    "NoPaginator",
    "OAuth2ClientCredentials",
    "OffsetPaginator",
    "PagePaginator",
    "PageRequest",
    "Paginator",
    "RateLimiter",
    "RestClient",
    "RestReader",
    "RestStream",
    "RetryPolicy",
    "SecretMask",
    "parse_retry_after",
]
