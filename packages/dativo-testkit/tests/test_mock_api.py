"""MockApiServer: cursor and offset pagination, bearer auth, faults, updated_since and the request log."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from dativo_testkit import MockApiServer, find_schema_violations


def _get(api: MockApiServer, params: dict[str, Any], token: str | None = "test-token", path: str = "/items"):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(f"{api.url}{path}?{urllib.parse.urlencode(params)}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), json.loads(error.read())


@pytest.fixture
def api() -> Iterator[MockApiServer]:
    with MockApiServer(records=57) as server:
        yield server


def _pages(api: MockApiServer, **params: Any) -> list[dict[str, Any]]:
    records, cursor = [], None
    while True:
        status, _, page = _get(api, {**params, **({"cursor": cursor} if cursor else {})})
        assert status == 200, page
        records += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            return records


def test_cursor_pagination_serves_every_record_once_in_order(api: MockApiServer) -> None:
    records = _pages(api, limit=10)
    assert [r["id"] for r in records] == list(range(1, 58))
    assert records == api.records
    assert find_schema_violations(records, MockApiServer.SCHEMA) == []
    assert len(api.requests) == 6


def test_offset_pagination(api: MockApiServer) -> None:
    status, _, page = _get(api, {"limit": 20, "offset": 40})
    assert status == 200
    assert [r["id"] for r in page["data"]] == list(range(41, 58))
    assert page["total"] == 57
    assert page["next_offset"] is None
    assert _get(api, {"limit": 20, "offset": 0})[2]["next_offset"] == 20


def test_updated_since_keeps_strictly_later_records(api: MockApiServer) -> None:
    since = api.records[29]["updated_at"]
    assert since == "2024-01-01T00:30:00+00:00"
    records = _pages(api, limit=7, updated_since=since)
    assert [r["id"] for r in records] == list(range(31, 58))
    _status, _, page = _get(api, {"limit": 5, "offset": 0, "updated_since": "2024-01-01T00:55:00Z"})
    assert [r["id"] for r in page["data"]] == [56, 57]
    assert page["total"] == 2


def test_missing_and_wrong_tokens(api: MockApiServer) -> None:
    status, headers, body = _get(api, {"limit": 1}, token=None)
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert body == {"error": "missing bearer token"}
    assert _get(api, {"limit": 1}, token="stolen")[0] == 403
    assert [r.authorization for r in api.requests] == ["missing", "invalid"]
    assert "stolen" not in repr(api.requests)


def test_rate_limit_with_retry_after_then_recovers(api: MockApiServer) -> None:
    api.rate_limit_next(2, retry_after=3)
    statuses = [_get(api, {"limit": 1})[:2] for _ in range(3)]
    assert [s for s, _ in statuses] == [429, 429, 200]
    assert statuses[0][1]["Retry-After"] == "3"
    api.rate_limit_next(retry_after=0.5)
    assert _get(api, {"limit": 1})[1]["Retry-After"] == "0.5"


def test_bursts_of_server_errors(api: MockApiServer) -> None:
    api.fail_next(3, status=502)
    assert [_get(api, {"limit": 1})[0] for _ in range(4)] == [502, 502, 502, 200]
    with pytest.raises(ValueError):
        api.fail_next(status=404)


def test_request_log_records_queries(api: MockApiServer) -> None:
    _get(api, {"limit": 3, "updated_since": "2024-01-01T00:00:00+00:00"})
    (request,) = api.requests
    assert request.method == "GET"
    assert request.path == "/items"
    assert request.status == 200
    assert request.query == {"limit": "3", "updated_since": "2024-01-01T00:00:00+00:00"}
    api.clear_requests()
    assert api.requests == []


@pytest.mark.parametrize(
    ("params", "path", "status"),
    [
        ({"limit": "x"}, "/items", 400),
        ({"limit": 0}, "/items", 400),
        ({"cursor": "%%%"}, "/items", 400),
        ({"updated_since": "soon"}, "/items", 400),
        ({"offset": -1}, "/items", 400),
        ({}, "/orders", 404),
    ],
)
def test_bad_requests(api: MockApiServer, params: dict[str, Any], path: str, status: int) -> None:
    code, _, body = _get(api, params, path=path)
    assert code == status
    assert body["error"]


def test_limits_and_custom_records() -> None:
    rows = [
        {"id": 2, "updated_at": "2024-05-01T00:00:00Z", "name": "b"},
        {"id": 1, "updated_at": "2024-05-01T00:00:00Z", "name": "a"},
        {"id": 3, "updated_at": "2024-04-01T00:00:00+02:00", "name": "c"},
    ]
    with MockApiServer(records=rows, resource="people", token="s3cret", max_page_size=2) as api:
        assert api.reader_config(page_size=5) == {
            "base_url": api.url,
            "token": "s3cret",
            "resource": "people",
            "page_size": 5,
        }
        _status, _, page = _get(api, {"limit": 100}, token="s3cret", path="/people")
        assert [r["name"] for r in page["data"]] == ["c", "a"]
        assert page["next_cursor"]
    with pytest.raises(ValueError, match="'id'"):
        MockApiServer(records=[{"updated_at": "2024-01-01T00:00:00Z"}])


def test_lifecycle() -> None:
    server = MockApiServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    server.start()
    with pytest.raises(RuntimeError, match="already running"):
        server.start()
    assert server.port > 0
    server.stop()
    server.stop()


@pytest.mark.dativo_mock_api(records=5, token="fixture-token")
def test_fixture_takes_marker_arguments(dativo_mock_api: MockApiServer) -> None:
    assert dativo_mock_api.token == "fixture-token"
    assert len(_pages_with_token(dativo_mock_api)) == 5


def _pages_with_token(api: MockApiServer) -> list[dict[str, Any]]:
    return _get(api, {"limit": 10}, token=api.token)[2]["data"]  # type: ignore[no-any-return]


def test_the_control_endpoint_is_off_unless_asked_and_other_methods_get_405() -> None:
    from dativo_testkit._mock_api_control import RemoteMockApi, probe

    with MockApiServer(records=5) as plain:
        assert probe(plain.url) is None
        request = urllib.request.Request(
            f"{plain.url}/items", method="POST", data=b"{}", headers={"Authorization": "Bearer test-token"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 405
        refused.value.close()
    with MockApiServer(records=5, control=True) as controlled:
        remote = probe(f"{controlled.url}/v1/items")
        assert isinstance(remote, RemoteMockApi)
        assert remote.url == controlled.url
        remote.rate_limit_next(2, retry_after=3)
        remote.reject_next(status=403)
        before = remote.request_count()
        token = {"Authorization": "Bearer test-token"}
        statuses = []
        for _ in range(4):
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(f"{controlled.url}/items", headers=token)
                ) as ok:
                    statuses.append(ok.status)
                    json.loads(ok.read())
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
                exc.close()
        assert statuses == [429, 429, 403, 200]
        assert remote.statuses_since(before) == statuses
        remote.fail_next(5, status=500)
        remote.clear_faults()
        assert [r.status for r in controlled.requests] == statuses, "control calls are not logged"
    assert probe("https://127.0.0.1:1/") is None
    assert probe("http://example.com:80/") is None
