"""Plugins that declare a config spec (``config_schema``), good and broken, for the config-spec tests.

``SpecReader`` raises from ``__init__`` whenever ``records`` is not an integer, so a test
that sees the spec's message instead of that error knows the plugin was never built.
Standard library and SDK only: these run in every sandbox backend.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from dativo_plugin_sdk import BaseReader, BaseWriter, Column, ConnectionTestResult, State

SECRET = "tok-SECRET-4242"
"""A value the tests put under secret keys and then look for in every output."""

READER_SPEC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "records": {"type": "integer", "minimum": 0, "default": 3, "description": "Rows to yield."},
        "page_size": {"type": "integer", "minimum": 1, "description": "Rows per batch."},
        "bearer": {"type": "string", "minLength": 30, "secret": True, "description": "API token."},
        "auth": {
            "type": "object",
            "properties": {"key_material": {"$ref": "#/$defs/hidden"}},
            "additionalProperties": False,
        },
    },
    "required": ["records"],
    "additionalProperties": False,
    "$defs": {"hidden": {"type": "string", "writeOnly": True}},
}


class SpecReader(BaseReader):
    """Yields ``records`` rows; refuses to be built with a non-integer ``records``."""

    __version__ = "1.0.0"
    config_schema = READER_SPEC

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        if not isinstance(config.get("records"), int):
            raise RuntimeError("SpecReader was built with a config its config_schema refuses")
        self.records = config["records"]

    def check_connection(self) -> ConnectionTestResult:
        return ConnectionTestResult(True, "nothing to connect to")

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"id": i} for i in range(self.records)]


class BrokenSpecReader(SpecReader):
    """Declares a config_schema that is no JSON Schema ('type' names no JSON type)."""

    config_schema = {"type": "mapping"}


class NotJsonSpecReader(SpecReader):
    """Declares a config_schema holding a Python set: not JSON data."""

    config_schema = {"type": "object", "required": {"records"}}


class SpecWriter(BaseWriter):
    """Accepts batches and writes nothing; takes ``path`` and ``compression`` only."""

    __version__ = "1.0.0"
    config_schema = {
        "type": "object",
        "properties": {"path": {"type": "string"}, "compression": {"enum": ["none", "gzip"]}},
        "required": ["path"],
        "additionalProperties": False,
    }

    def __init__(self, config: dict[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__(config, schema)

    def write_batch(self, records: Any, file_counter: int) -> list[dict[str, Any]]:
        return []
