"""A singer-sdk tap whose one stream is a ``RESTStream`` over the HTTP section's local API.

Usage::

    python bench/singer/rest_tap.py --config TAP.json | python bench/singer/target.py --config TARGET.json

``TAP.json`` holds ``api_url`` (the server's root URL). The stream pages with the API's
``next_cursor`` through singer-sdk's own paginator, as a Singer author would write it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from singer_sdk import RESTStream, Tap
from singer_sdk import typing as th
from singer_sdk.pagination import JSONPathPaginator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

import workload  # found through the path set just above

_PROPERTY_TYPES: dict[str, Any] = {
    "integer": th.IntegerType,
    "string": th.StringType,
    "float": th.NumberType,
    "timestamp": th.DateTimeType,
    "boolean": th.BooleanType,
}


class RecordsStream(RESTStream):  # type: ignore[type-arg]
    """``GET /records?limit=1000&cursor=K`` until ``next_cursor`` is null."""

    name = "records"
    path = "/records"
    primary_keys = ("id",)
    records_jsonpath = "$.data[*]"
    schema = th.PropertiesList(
        *(
            th.Property(field, _PROPERTY_TYPES[kind], required=not nullable)
            for field, (kind, nullable) in workload.COLUMN_TYPES.items()
        )
    ).to_dict()

    @property
    def url_base(self) -> str:
        """The API's root URL, from the config."""
        return str(self.config["api_url"])

    def get_new_paginator(self) -> JSONPathPaginator:
        """Follow ``next_cursor``."""
        return JSONPathPaginator("$.next_cursor")

    def get_url_params(self, context: Any, next_page_token: Any) -> dict[str, Any]:
        """``limit`` and the cursor."""
        params: dict[str, Any] = {"limit": 1000}
        if next_page_token is not None:
            params["cursor"] = next_page_token
        return params


class RestBenchTap(Tap):
    """Singer tap over the local API."""

    name = "tap-dativo-bench-rest"
    config_jsonschema = th.PropertiesList(th.Property("api_url", th.StringType, required=True)).to_dict()

    def discover_streams(self) -> list[RecordsStream]:
        """The one stream."""
        return [RecordsStream(self)]


if __name__ == "__main__":
    RestBenchTap.cli()
