"""Every authenticator against the mock API, and no secret in any message."""

from __future__ import annotations

from typing import Any

import pytest
from http_configs import http_config, read_ids

from dativo_http import ApiKeyAuth, BasicAuth, BearerAuth, HttpReader, OAuth2ClientCredentials
from dativo_plugin_sdk import AuthenticationError, State
from dativo_testkit import MockApiServer

SECRET = "s3cret-value-42"


def _auth(scheme: str, api: MockApiServer) -> dict[str, Any]:
    return {
        "bearer": {"type": "bearer", "token": SECRET},
        "basic": {"type": "basic", "username": api.username, "password": SECRET},
        "api_key_header": {"type": "api_key", "key": SECRET, "name": "X-API-Key", "in": "header"},
        "api_key_query": {"type": "api_key", "key": SECRET, "name": "api_key", "in": "query"},
        "oauth2": {
            "type": "oauth2",
            "token_url": f"{api.url}/oauth/token",
            "client_id": api.username,
            "client_secret": SECRET,
        },
    }[scheme]


SCHEMES = ["bearer", "basic", "api_key_header", "api_key_query", "oauth2"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_authenticator_reads_the_api(scheme: str) -> None:
    with MockApiServer(records=50, auth=scheme, token=SECRET) as api:
        reader = HttpReader(http_config(api, auth=_auth(scheme, api)))
        assert reader.check_connection().success
        assert read_ids(reader) == list(range(1, 51))
        reader.close()
        assert {r.authorization for r in api.requests if r.path == "/items"} == {"valid"}
        if scheme == "oauth2":
            assert api.tokens_issued == 1  # the check and the read share one cached token


@pytest.mark.parametrize("scheme", SCHEMES)
def test_refused_credentials_are_an_authentication_error_without_the_secret(scheme: str) -> None:
    with MockApiServer(records=50, auth=scheme, token="the-real-one") as api:
        reader = HttpReader(http_config(api, auth=_auth(scheme, api)))
        result = reader.check_connection()
        assert not result.success
        assert result.error_code == "AUTHENTICATION_FAILED"
        assert not result.retryable
        with pytest.raises(AuthenticationError) as caught:
            read_ids(reader)
        reader.close()
        text = f"{caught.value} {caught.value.to_dict()} {result}"
        assert SECRET not in text
        assert "check 'auth'" in text or "client_secret" in text


def test_oauth2_token_is_cached_and_refreshed_when_it_expires() -> None:
    with MockApiServer(records=100, auth="oauth2", token=SECRET) as api:
        auth = _auth("oauth2", api)
        reader = HttpReader(http_config(api, auth=auth))
        state = State(stream="items")
        batches = reader.extract(state=state)
        next(batches)
        next(batches)
        assert api.tokens_issued == 1  # one token for every page so far
        api.expire_tokens()
        rest = [b.num_rows for b in batches]
        reader.close()
        assert sum(rest) == 60
        assert api.tokens_issued == 2  # the 401 fetched a new one, once
        assert [r.status for r in api.requests if r.path == "/items"].count(403) == 0


def test_oauth2_expiry_from_expires_in_triggers_a_refresh_before_use() -> None:
    with MockApiServer(records=40, auth="oauth2", token=SECRET, token_ttl=1) as api:
        auth = OAuth2ClientCredentials(f"{api.url}/oauth/token", api.username, SECRET, refresh_margin=5)
        reader = HttpReader(http_config(api, auth=_auth("oauth2", api)))
        reader._auth = auth  # the same object the config builds, with a margin above the ttl
        reader.client()
        assert read_ids(reader) == list(range(1, 41))
        reader.close()
        assert auth.tokens_fetched == api.tokens_issued >= 3  # every use found the token due


def test_authenticators_never_show_secrets() -> None:
    for auth in (
        BearerAuth(SECRET),
        BasicAuth("me", SECRET),
        ApiKeyAuth(SECRET, location="query", name="key"),
        OAuth2ClientCredentials("https://x/token", "id", SECRET),
    ):
        assert SECRET not in repr(auth)
        assert any(SECRET in s for s in auth.secrets())
    with pytest.raises(ValueError):
        ApiKeyAuth(SECRET, location="cookie")  # type: ignore[arg-type]
