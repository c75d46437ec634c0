"""Hypothesis: any record list, any page size, any paginator gives exactly the server's records, in order, once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from http_configs import http_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dativo_http import HttpReader
from dativo_plugin_sdk import State, records_from_batch
from dativo_testkit import MockApiServer

BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
PAGINATORS: dict[str, Any] = {
    "cursor": lambda size: {"type": "cursor", "next": "next_cursor", "param": "cursor"},
    "offset": lambda size: {"type": "offset", "limit": size},
    "page": lambda size: {"type": "page", "limit": size},
    "link_header": lambda size: {"type": "link_header"},
    "next_url": lambda size: {"type": "next_url", "next": "next_url"},
}

values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=8),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
)


@st.composite
def record_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=0, max_value=60))
    ids = draw(
        st.lists(st.integers(min_value=1, max_value=10**9), min_size=count, max_size=count, unique=True)
    )
    minutes = draw(st.lists(st.integers(min_value=0, max_value=50), min_size=count, max_size=count))
    extra = draw(st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=4), max_size=3, unique=True))
    records = []
    for ident, minute in zip(ids, minutes, strict=True):
        record = {"id": ident, "updated_at": (BASE + timedelta(minutes=minute)).isoformat()}
        for key in extra:
            if draw(st.booleans()):
                record[key] = draw(values)
        records.append(record)
    return records


def _served_order(records: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in sorted(records, key=lambda r: (r["updated_at"], r["id"]))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=record_lists(),
    page_size=st.integers(min_value=1, max_value=25),
    paginator=st.sampled_from(sorted(PAGINATORS)),
)
def test_every_record_once_in_order(records: list[dict[str, Any]], page_size: int, paginator: str) -> None:
    with MockApiServer(records=records) as api:
        config = http_config(
            api,
            params={"limit": page_size},
            paginator=PAGINATORS[paginator](page_size),
            schema=[
                {"name": "id", "type": "integer", "nullable": False},
                {"name": "updated_at", "type": "timestamp"},
            ],
        )
        reader = HttpReader(config)
        try:
            batches = list(reader.extract(state=State(stream="items")))
        finally:
            reader.close()
    assert all(len(records_from_batch(b)) <= page_size for b in batches)
    assert [r["id"] for b in batches for r in records_from_batch(b)] == _served_order(records)
