"""The public surface of dativo_http: sorted, complete and deliberate."""

from __future__ import annotations

import dativo_http


def test_all_is_sorted_and_complete() -> None:
    assert dativo_http.__all__ == sorted(dativo_http.__all__, key=lambda n: (not n.isupper(), n))
    for name in dativo_http.__all__:
        assert getattr(dativo_http, name) is not None


def test_exported_surface_snapshot() -> None:
    assert set(dativo_http.__all__) == {
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
    }
    assert dativo_http.__version__ == dativo_http.HTTP_VERSION


def test_the_http_plugin_is_an_installed_entry_point() -> None:
    from importlib.metadata import entry_points

    (point,) = [p for p in entry_points(group="dativo.plugins") if p.name == "http"]
    assert point.load() is dativo_http.HttpReader
