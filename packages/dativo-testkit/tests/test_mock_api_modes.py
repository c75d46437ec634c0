"""MockApiServer's page numbers, next links, other credentials and the faults an HTTP client must survive."""

from __future__ import annotations

import base64
import email.utils
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from dativo_testkit import MockApiServer


def _get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def _bearer(api: MockApiServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token}"}


def test_page_numbers_serve_every_record_once() -> None:
    with MockApiServer(records=23) as api:
        ids, page = [], 1
        while page is not None:
            status, _, body = _get(f"{api.url}/items?limit=5&page={page}", _bearer(api))
            assert status == 200
            data = json.loads(body)
            assert data["page"] == page
            ids += [r["id"] for r in data["data"]]
            page = data["next_page"]
        assert ids == list(range(1, 24))
        assert _get(f"{api.url}/items?limit=5&page=0", _bearer(api))[0] == 400


@pytest.mark.parametrize("params", ["limit=7", "limit=7&offset=0", "limit=7&page=1"])
def test_next_url_and_link_header_walk_every_page(params: str) -> None:
    with MockApiServer(records=30) as api:
        ids, url, links = [], f"{api.url}/items?{params}", 0
        while url:
            status, headers, body = _get(url, _bearer(api))
            assert status == 200
            data = json.loads(body)
            ids += [r["id"] for r in data["data"]]
            url = data.get("next_url")
            if url:
                assert headers["Link"] == f'<{url}>; rel="next"'
                links += 1
            else:
                assert "Link" not in headers
        assert ids == list(range(1, 31))
        assert links == 4


def test_basic_and_api_key_credentials() -> None:
    basic = "Basic " + base64.b64encode(b"me:pw").decode()
    with MockApiServer(records=3, auth="basic", username="me", token="pw") as api:
        assert _get(f"{api.url}/items", {"Authorization": basic})[0] == 200
        status, headers, _ = _get(f"{api.url}/items")
        assert (status, headers["WWW-Authenticate"]) == (401, "Basic")
        wrong = "Basic " + base64.b64encode(b"me:nope").decode()
        assert _get(f"{api.url}/items", {"Authorization": wrong})[0] == 403
    with MockApiServer(records=3, auth="api_key_header", token="k3y") as api:
        assert _get(f"{api.url}/items", {"X-API-Key": "k3y"})[0] == 200
        assert _get(f"{api.url}/items", {"X-API-Key": "bad"})[0] == 403
    with MockApiServer(records=3, auth="api_key_query", token="k3y") as api:
        assert _get(f"{api.url}/items?api_key=k3y")[0] == 200
        assert _get(f"{api.url}/items")[0] == 401
        assert all("api_key" not in r.query for r in api.requests)  # the key is never logged
    with pytest.raises(ValueError, match="auth must be one of"):
        MockApiServer(auth="digest")


def _token(api: MockApiServer, **form: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{api.url}/oauth/token", data=urllib.parse.urlencode(form).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_oauth2_client_credentials_tokens_expire() -> None:
    with MockApiServer(records=3, auth="oauth2", username="client", token="s3cret", token_ttl=60) as api:
        status, body = _token(
            api, grant_type="client_credentials", client_id="client", client_secret="s3cret"
        )
        assert status == 200
        assert body["expires_in"] == 60
        assert api.tokens_issued == 1
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        assert _get(f"{api.url}/items", headers)[0] == 200
        api.expire_tokens()
        status, challenge, _ = _get(f"{api.url}/items", headers)
        assert (status, challenge["WWW-Authenticate"]) == (401, 'Bearer error="invalid_token"')
        assert api.requests[-1].authorization == "expired"
        assert _token(api, grant_type="client_credentials", client_id="client", client_secret="x")[0] == 401
        assert _token(api, grant_type="password")[0] == 400
    with MockApiServer(records=1) as api:
        assert _token(api, grant_type="client_credentials")[0] == 404


def test_retry_after_as_http_date_and_on_503() -> None:
    with MockApiServer(records=3) as api:
        api.rate_limit_next(retry_after=5, http_date=True)
        api.fail_next(status=503, retry_after=2)
        status, headers, _ = _get(f"{api.url}/items", _bearer(api))
        moment = email.utils.parsedate_to_datetime(headers["Retry-After"]).timestamp()
        assert status == 429
        assert 2 <= moment - time.time() <= 6
        status, headers, _ = _get(f"{api.url}/items", _bearer(api))
        assert (status, headers["Retry-After"]) == (503, "2")
        with pytest.raises(ValueError):
            api.fail_next(retry_after=-1)


def test_malformed_delayed_and_stalled_pages() -> None:
    with MockApiServer(records=10) as api:
        api.malformed_next()
        status, _, body = _get(f"{api.url}/items?limit=4", _bearer(api))
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(body)
        api.delay_next(seconds=0.5)
        with pytest.raises(OSError):  # a timeout
            _get(f"{api.url}/items?limit=4", _bearer(api), timeout=0.1)
        api.clear_faults()
        api.stall_next(2)
        first = json.loads(_get(f"{api.url}/items?limit=4", _bearer(api))[2])
        again = json.loads(_get(first["next_url"], _bearer(api))[2])
        assert first["data"] == again["data"]
        assert again["next_cursor"] == first["next_cursor"]
        api.stall_next()
        page = json.loads(_get(f"{api.url}/items?limit=4&offset=4", _bearer(api))[2])
        assert page["next_offset"] == 4
        with pytest.raises(ValueError):
            api.delay_next(seconds=-1)
        with pytest.raises(ValueError):
            api.stall_next(0)
