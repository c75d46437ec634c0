"""The http reader and a RestReader connector pass the conformance suite, fault checks included."""

from __future__ import annotations

from typing import Any

import pytest
from http_configs import http_config

from dativo_http import BearerAuth, CursorPaginator, IncrementalCursor, RestReader, RestStream
from dativo_testkit import MockApiServer, list_checks, run_conformance

SCHEMA = [
    {"name": "id", "type": "integer", "nullable": False},
    {"name": "name", "type": "string"},
    {"name": "email", "type": "string"},
    {"name": "amount", "type": "float"},
    {"name": "updated_at", "type": "timestamp", "nullable": False},
]


class ItemsReader(RestReader):
    """The mock API's items, as a RestReader connector would read them."""

    __version__ = "1.0.0"
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "base_url": {"type": "string", "pattern": "^https?://"},
            "token": {"type": "string", "minLength": 1, "secret": True},
            "resource": {"type": "string"},
        },
        "required": ["base_url", "token"],
        "additionalProperties": False,
    }
    streams = [
        RestStream(
            "items",
            path="/items",
            params={"limit": 25},
            primary_key=["id"],
            cursor=IncrementalCursor("updated_at", "updated_since"),
            paginator=CursorPaginator(param="cursor", next_path="next_cursor"),
        )
    ]

    def authenticator(self) -> BearerAuth:
        return BearerAuth(self.config["token"])


def _assert_passed(report: Any) -> None:
    assert [c.name for c in report.checks] == [c.name for c in list_checks("reader")]
    not_passed = [f"{c.name}: {c.status.value}: {c.reason}" for c in report.checks if not c.passed]
    # Neither reader splits its stream into partitions.
    assert all(t.startswith("reader.partitions: skipped") for t in not_passed), report.to_text()


@pytest.mark.parametrize("declared", [True, False], ids=["declared-schema", "inferred-schema"])
def test_the_http_reader_passes_every_check(declared: bool) -> None:
    with MockApiServer(records=230) as api:
        config = http_config(api, **({"schema": SCHEMA} if declared else {}))
        bad = [
            {**config, "auth": {"type": "bearer", "token": "not-the-token"}},
            {**config, "streams": [{"name": "items"}]},  # no path
            {**config, "base_uri": config["base_url"]},  # a misspelt key
        ]
        report = run_conformance("http", config=config, bad_config=bad)
    _assert_passed(report)
    assert report.check("reader.mock_api_rate_limit").passed
    assert report.check("reader.config_spec_rejects_bad_configs").passed


def test_a_rest_reader_connector_passes_every_check() -> None:
    with MockApiServer(records=230) as api:
        report = run_conformance(
            ItemsReader,
            config=api.reader_config(),
            bad_config=[api.reader_config(token="not-the-token"), {"base_url": api.url}],
        )
    _assert_passed(report)
