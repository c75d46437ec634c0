"""Plugins whose config spec (``config_schema``) is broken: ``FLAGGED_BY`` names the one check that catches each.

Each is a ``MockReader`` or folder-mode ``MockWriter`` that is right in every other way, run
with ``CONFIG`` (readers; writers get ``{"folder": ...}``) and ``BAD_CONFIG``. ``SpecReader``
and ``SpecWriter`` declare a good spec and pass every spec check.

Loaded by path from the tests; not collected as tests itself.
"""

from __future__ import annotations

from typing import Any

from dativo_testkit import MockReader, MockWriter

GOOD_READER = {"records": 60, "batch_size": 10}
BAD_READER = {"records": -1}  # MockReader raises ConfigurationError for it; the good spec refuses it
BAD_WRITER = {"folder": 5}  # MockWriter raises ConfigurationError for it; the good spec refuses it

READER_SPEC: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "records": {"type": "integer", "minimum": 0},
        "batch_size": {"type": "integer", "minimum": 1},
        "token": {"type": "string", "secret": True},
    },
    "additionalProperties": False,
}

WRITER_SPEC: dict[str, Any] = {
    "type": "object",
    "properties": {"folder": {"type": "string", "minLength": 1}},
    "required": ["folder"],
    "additionalProperties": False,
}


class SpecReader(MockReader):
    """Declares a spec its valid config satisfies and its bad config breaks."""

    config_schema = READER_SPEC
    CONFIG = GOOD_READER
    BAD_CONFIG = BAD_READER


class InvalidSpecReader(MockReader):
    """Declares a spec that is not a JSON Schema ('type' names no JSON type)."""

    FLAGGED_BY = "reader.config_spec_valid"
    config_schema = {"type": "obj", "properties": {"records": {"type": "integer"}}}
    CONFIG = GOOD_READER
    BAD_CONFIG = BAD_READER


class NotJsonSpecReader(MockReader):
    """Declares a spec holding a Python set, which cannot cross the sandbox boundary as JSON."""

    FLAGGED_BY = "reader.config_spec_valid"
    config_schema = {"type": "object", "required": {"records"}}
    CONFIG = GOOD_READER
    BAD_CONFIG = BAD_READER


class SpecRefusesValidConfigReader(MockReader):
    """Forgets batch_size in a closed spec: the runtime would refuse the valid config."""

    FLAGGED_BY = "reader.config_spec_accepts_valid_config"
    config_schema = {
        "type": "object",
        "properties": {"records": {"type": "integer", "minimum": 0}},
        "additionalProperties": False,
    }
    CONFIG = GOOD_READER
    BAD_CONFIG = BAD_READER


class SpecAcceptsBadConfigReader(MockReader):
    """Declares a spec so loose that the bad config (records: -1) satisfies it."""

    FLAGGED_BY = "reader.config_spec_rejects_bad_configs"
    config_schema = {"type": "object", "properties": {"records": {"type": "integer"}}}
    CONFIG = GOOD_READER
    BAD_CONFIG = BAD_READER


class SpecWriter(MockWriter):
    """Declares a spec its valid config satisfies and its bad config breaks."""

    config_schema = WRITER_SPEC
    BAD_CONFIG = BAD_WRITER


class InvalidSpecWriter(MockWriter):
    """Declares a spec that is not a JSON Schema ('required' must be a list)."""

    FLAGGED_BY = "writer.config_spec_valid"
    config_schema = {"type": "object", "required": "folder"}
    BAD_CONFIG = BAD_WRITER


class SpecRefusesValidConfigWriter(MockWriter):
    """Requires a key the valid config does not have."""

    FLAGGED_BY = "writer.config_spec_accepts_valid_config"
    config_schema = {**WRITER_SPEC, "required": ["folder", "compression"]}
    BAD_CONFIG = BAD_WRITER


class SpecAcceptsBadConfigWriter(MockWriter):
    """Does not say folder is a string, so the bad config (folder: 5) satisfies the spec."""

    FLAGGED_BY = "writer.config_spec_rejects_bad_configs"
    config_schema = {"type": "object", "properties": {"folder": {}}}
    BAD_CONFIG = BAD_WRITER
