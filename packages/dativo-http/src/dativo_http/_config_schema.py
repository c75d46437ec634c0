"""The JSON Schema (draft 2020-12) of the ``http`` reader's config: its config spec.

``dativo-run`` checks every ``source.config`` of a job with ``plugin: http`` against it
before the reader is built, and masks the values of the keys marked ``"secret": true``.
:class:`~._http_reader.HttpReader` checks a config against it too, so a reader built from
Python refuses what a job would, with the same key paths.
"""

from __future__ import annotations

from typing import Any

from dativo_plugin_sdk import ColumnType

__all__ = ["CONFIG_SCHEMA", "PAGINATOR_TYPES"]

PAGINATOR_TYPES = ("none", "cursor", "offset", "page", "link_header", "next_url")

_NAME = {"type": "string", "minLength": 1}
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}


def _when(key: str, value: str, then: dict[str, Any]) -> dict[str, Any]:
    return {"if": {"properties": {key: {"const": value}}, "required": [key]}, "then": then}


_AUTH: dict[str, Any] = {
    "type": "object",
    "description": "How requests authenticate; the fields needed depend on 'type'.",
    "properties": {
        "type": {"enum": ["none", "bearer", "basic", "api_key", "oauth2"]},
        "token": {"type": "string", "minLength": 1, "secret": True, "description": "bearer: the token."},
        "username": {"type": "string", "description": "basic: the user name."},
        "password": {"type": "string", "secret": True, "description": "basic: the password."},
        "key": {"type": "string", "minLength": 1, "secret": True, "description": "api_key: the key."},
        "name": {
            **_NAME,
            "default": "X-API-Key",
            "description": "api_key: the header or query parameter's name.",
        },
        "in": {"enum": ["header", "query"], "default": "header", "description": "api_key: where it goes."},
        "prefix": {
            "type": "string",
            "default": "",
            "description": "api_key: text before the key in a header.",
        },
        "token_url": {"type": "string", "minLength": 1, "description": "oauth2: the token endpoint's URL."},
        "client_id": {"type": "string", "minLength": 1, "description": "oauth2: the client id."},
        "client_secret": {
            "type": "string",
            "minLength": 1,
            "secret": True,
            "description": "oauth2: the secret.",
        },
        "scopes": {"type": "array", "items": {"type": "string"}, "description": "oauth2: scopes asked for."},
        "extra_params": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "oauth2: more fields of the token request (audience...).",
        },
        "credentials_in": {
            "enum": ["body", "header"],
            "default": "body",
            "description": "oauth2: send the client credentials in the form body or as basic auth.",
        },
    },
    "required": ["type"],
    "additionalProperties": False,
    "allOf": [
        _when("type", "bearer", {"required": ["token"]}),
        _when("type", "basic", {"required": ["username", "password"]}),
        _when("type", "api_key", {"required": ["key"]}),
        _when("type", "oauth2", {"required": ["token_url", "client_id", "client_secret"]}),
    ],
}

_PAGINATOR: dict[str, Any] = {
    "type": "object",
    "description": "How pages follow each other; the fields used depend on 'type'.",
    "properties": {
        "type": {"enum": list(PAGINATOR_TYPES)},
        "next": {
            "type": "string",
            "description": "cursor: body path of the next cursor; next_url: body path of the next URL.",
        },
        "param": {**_NAME, "description": "cursor, offset, page: the query parameter sent."},
        "last_record": {**_NAME, "description": "cursor: the last record's field that is the cursor."},
        "has_more": {**_NAME, "description": "cursor: body path of a flag saying more pages follow."},
        "limit": {"type": "integer", "minimum": 1, "description": "offset, page: records per page."},
        "limit_param": {
            **_NAME,
            "default": "limit",
            "description": "offset, page: the page size's parameter.",
        },
        "start": {
            "type": "integer",
            "description": "offset: the first offset (0); page: the first page (1).",
        },
        "rel": {**_NAME, "default": "next", "description": "link_header: the relation followed."},
    },
    "required": ["type"],
    "additionalProperties": False,
    "allOf": [
        _when(
            "type",
            "cursor",
            {"required": ["param"], "oneOf": [{"required": ["next"]}, {"required": ["last_record"]}]},
        ),
        _when("type", "offset", {"required": ["limit"]}),
    ],
}

_COLUMN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": _NAME,
        "type": {"enum": [t.value for t in ColumnType]},
        "nullable": {"type": "boolean", "default": True},
        "description": {"type": "string"},
    },
    "required": ["name", "type"],
    "additionalProperties": False,
}

_STREAM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {**_NAME, "description": "The stream's name (a job's source.stream)."},
        "path": {"type": "string", "description": "The endpoint, relative to base_url (or an absolute URL)."},
        "params": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "description": "Query parameters of every request.",
        },
        "records_path": {
            "type": "string",
            "default": "data",
            "description": "Body path of the record list ('' for a top-level list).",
        },
        "primary_key": {"type": "array", "items": _NAME, "description": "Primary key columns."},
        "cursor": {
            "type": "object",
            "description": "Incremental reads: the field that grows, and the parameter it is sent back as.",
            "properties": {
                "field": _NAME,
                "param": _NAME,
                "start": {"type": ["string", "number"], "description": "The value sent on the first run."},
            },
            "required": ["field"],
            "additionalProperties": False,
        },
        "paginator": _PAGINATOR,
        "schema": {
            "type": "array",
            "items": _COLUMN,
            "minItems": 1,
            "description": "The columns; inferred from the first page when left out.",
        },
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "description": "Gather pages into batches of at least this many records (default: one per page).",
        },
    },
    "required": ["name", "path"],
    "additionalProperties": False,
}

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "dativo-http: the http reader",
    "type": "object",
    "properties": {
        "base_url": {
            "type": "string",
            "pattern": "^https?://",
            "description": "The API's root URL (http:// or https://).",
        },
        "auth": _AUTH,
        "headers": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Headers sent with every request.",
        },
        "rate_limit": {
            "type": "object",
            "properties": {"requests_per_second": _POSITIVE},
            "required": ["requests_per_second"],
            "additionalProperties": False,
            "description": "A client-side request rate.",
        },
        "timeout": {**_POSITIVE, "default": 30, "description": "Seconds to connect and for each read."},
        "verify_tls": {"type": "boolean", "default": True, "description": "Verify TLS certificates."},
        "retry": {
            "type": "object",
            "description": "Retries of 429, 5xx and timeouts within one read.",
            "properties": {
                "max_retries": {"type": "integer", "minimum": 0, "default": 5},
                "backoff_factor": {"type": "number", "minimum": 0, "default": 0.5},
                "max_backoff": {"type": "number", "minimum": 0, "default": 30},
                "max_retry_after": {"type": "number", "minimum": 0, "default": 120},
            },
            "additionalProperties": False,
        },
        "streams": {"type": "array", "items": _STREAM, "minItems": 1, "description": "The endpoints read."},
    },
    "required": ["base_url", "streams"],
    "additionalProperties": False,
}
