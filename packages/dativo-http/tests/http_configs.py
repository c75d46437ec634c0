"""Shared helpers of dativo-http's tests: configs for the testkit's mock API, and reading a stream."""

from __future__ import annotations

from typing import Any

from dativo_http import HttpReader
from dativo_plugin_sdk import State, records_from_batch
from dativo_testkit import MockApiServer

CURSOR = {"type": "cursor", "next": "next_cursor", "param": "cursor"}


def http_config(api: MockApiServer, *, auth: dict[str, Any] | None = None, **stream: Any) -> dict[str, Any]:
    """An ``http`` reader config for the mock API's resource, cursor-paged by default."""
    spec = {
        "name": "items",
        "path": f"/{api.resource}",
        "params": {"limit": 20},
        "primary_key": ["id"],
        "cursor": {"field": "updated_at", "param": "updated_since"},
        "paginator": CURSOR,
        **stream,
    }
    return {
        "base_url": api.url,
        "auth": auth or {"type": "bearer", "token": api.token},
        "retry": {"max_retries": 3, "backoff_factor": 0.01, "max_backoff": 0.05},
        "streams": [spec],
    }


def read_ids(reader: HttpReader, state: State | None = None) -> list[int]:
    """Every id ``extract`` yields, in order."""
    state = state if state is not None else State(stream="items")
    return [r["id"] for batch in reader.extract(state=state) for r in records_from_batch(batch)]
