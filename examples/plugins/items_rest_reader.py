"""Example source plugin on dativo-http: the JSON API of ``json_api_reader.py`` in a few lines.

``json_api_reader.py`` pages, authenticates and maps HTTP failures by hand, with urllib;
this ``RestReader`` subclass gets all of that, plus retries of 429 (after ``Retry-After``),
5xx and timeouts, from ``dativo-http``. A job could also read the same API with no code at
all: ``plugin: http`` (docs/http.md).
"""

from __future__ import annotations

from typing import Any

from dativo_http import BearerAuth, CursorPaginator, IncrementalCursor, RestReader, RestStream


class ItemsRestReader(RestReader):
    """Reads the ``items`` of a bearer-token JSON API; config: ``base_url``, ``token``, ``resource``."""

    __version__ = "1.0.0"
    config_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "base_url": {"type": "string", "pattern": "^https?://", "description": "The API's root URL."},
            "token": {"type": "string", "minLength": 1, "secret": True, "description": "Bearer token."},
            "resource": {"type": "string", "default": "items", "description": "The resource to read."},
        },
        "required": ["base_url", "token"],
        "additionalProperties": False,
    }

    def rest_streams(self) -> list[RestStream]:
        """The one stream, named after the configured resource."""
        resource = str(self.config.get("resource", "items"))
        return [
            RestStream(
                resource,
                path=f"/{resource}",
                params={"limit": 100},
                primary_key=["id"],
                cursor=IncrementalCursor("updated_at", param="updated_since"),
                paginator=CursorPaginator(param="cursor", next_path="next_cursor"),
            )
        ]

    def authenticator(self) -> BearerAuth:
        """The bearer token of the config."""
        return BearerAuth(str(self.config["token"]))

    def parse_records(self, *, stream: RestStream, response: Any, body: Any) -> list[Any]:
        """The page's records, emails lower-cased (what configuration alone cannot do)."""
        records = super().parse_records(stream=stream, response=response, body=body)
        return [{**r, "email": str(r["email"]).lower()} if r.get("email") else r for r in records]
