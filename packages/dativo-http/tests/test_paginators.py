"""Every paginator reads every record of the mock API once, in order."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from http_configs import http_config, read_ids

from dativo_http import (
    CursorPaginator,
    HttpReader,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PagePaginator,
    PageRequest,
)
from dativo_plugin_sdk import State
from dativo_testkit import MockApiServer

PAGINATORS = {
    "cursor": {"type": "cursor", "next": "next_cursor", "param": "cursor"},
    "offset": {"type": "offset", "param": "offset", "limit": 20},
    "page": {"type": "page", "param": "page", "start": 1, "limit": 20},
    "page-until-empty": {"type": "page", "param": "page"},
    "link_header": {"type": "link_header"},
    "next_url": {"type": "next_url", "next": "next_url"},
}


@pytest.mark.parametrize("name", sorted(PAGINATORS))
def test_every_paginator_reads_every_record_once(name: str) -> None:
    with MockApiServer(records=95) as api:
        reader = HttpReader(http_config(api, paginator=PAGINATORS[name]))
        try:
            assert read_ids(reader) == list(range(1, 96))
        finally:
            reader.close()
        pages = [r for r in api.requests if r.path == "/items"]
        # 95 records in pages of 20: 5 pages; paging until empty costs one more request.
        assert len(pages) == (6 if name == "page-until-empty" else 5) + 1  # +1: the schema's first page


def test_each_page_is_one_batch_unless_batch_size_gathers_them() -> None:
    with MockApiServer(records=95) as api:
        reader = HttpReader(http_config(api, schema=[{"name": "id", "type": "integer", "nullable": False}]))
        assert [b.num_rows for b in reader.extract(state=State(stream="items"))] == [20, 20, 20, 20, 15]
        reader = HttpReader(http_config(api, batch_size=50, schema=[{"name": "id", "type": "integer"}]))
        assert [b.num_rows for b in reader.extract(state=State(stream="items"))] == [60, 35]


def _response(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers, request=httpx.Request("GET", url))


def test_cursor_paginator_from_the_last_record_stripe_style() -> None:
    paginator = CursorPaginator(param="starting_after", last_record="id", has_more="has_more")
    first = paginator.first(PageRequest("/charges", {"limit": 2}))
    body = {"data": [{"id": "ch_1"}, {"id": "ch_2"}], "has_more": True}
    following = paginator.next(
        request=first, response=_response("http://x/charges", body), body=body, records=body["data"]
    )
    assert following == PageRequest("/charges", {"limit": 2, "starting_after": "ch_2"})
    body = {"data": [{"id": "ch_3"}], "has_more": False}
    assert (
        paginator.next(
            request=following, response=_response("http://x", body), body=body, records=body["data"]
        )
        is None
    )
    with pytest.raises(ValueError):
        CursorPaginator(param="c")


def test_offset_and_page_paginators_stop_on_a_short_or_empty_page() -> None:
    offset = OffsetPaginator(limit=10)
    request = offset.first(PageRequest("/x"))
    assert request.params == {"offset": 0, "limit": 10}
    response = _response("http://x", {})
    assert offset.next(request=request, response=response, body={}, records=[{}] * 10) == request.with_params(
        offset=10
    )
    assert offset.next(request=request, response=response, body={}, records=[{}] * 9) is None
    page = PagePaginator()
    request = page.first(PageRequest("/x"))
    assert page.next(request=request, response=response, body={}, records=[{}]) == request.with_params(page=2)
    assert page.next(request=request, response=response, body={}, records=[]) is None
    with pytest.raises(ValueError):
        OffsetPaginator(limit=0)


def test_link_header_and_next_url_resolve_relative_urls() -> None:
    request = PageRequest("/repos")
    response = _response(
        "https://api.github.test/repos?page=1",
        [],
        {"Link": '</repos?page=2>; rel="next", </repos?page=9>; rel="last"'},
    )
    assert LinkHeaderPaginator().next(request=request, response=response, body=[], records=[]) == PageRequest(
        "https://api.github.test/repos?page=2", {}
    )
    body = {"links": {"next": "?page=3"}}
    assert NextUrlPaginator(next_path="links.next").next(
        request=request, response=response, body=body, records=[]
    ) == PageRequest("https://api.github.test/repos?page=3", {})
    assert (
        NextUrlPaginator().next(request=request, response=response, body={"next": None}, records=[]) is None
    )


def test_a_top_level_list_with_link_headers_github_style() -> None:
    pages = {1: [{"id": 1}, {"id": 2}], 2: [{"id": 3}]}

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        headers = {"Link": f'<https://api.test/issues?page={page + 1}>; rel="next"'} if page in (1,) else {}
        return httpx.Response(200, content=json.dumps(pages[page]).encode(), headers=headers)

    reader = HttpReader(
        {
            "base_url": "https://api.test",
            "streams": [
                {
                    "name": "issues",
                    "path": "/issues",
                    "records_path": "",
                    "paginator": {"type": "link_header"},
                    "schema": [{"name": "id", "type": "integer"}],
                }
            ],
        }
    )
    reader._transport = httpx.MockTransport(handler)
    assert [r.num_rows for r in reader.extract()] == [2, 1]
    reader.close()
