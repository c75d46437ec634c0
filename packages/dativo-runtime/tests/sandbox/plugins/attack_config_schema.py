"""Attacks on the host's time through a plugin's ``config_schema``, which the host applies.

Loaded by path by the host-boundary schema tests; never imported as a test module. A
sandboxed plugin's ``config_schema`` comes from its worker; before the fix, the host applied
it in its own process with no deadline, and forty ``$defs``, each an ``anyOf`` of two
``$ref`` to the next (3 KB), held it for 2**40 steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import BaseReader, State

LEVELS = 40


def _ref_bomb() -> dict[str, Any]:
    """Forty levels of ``anyOf`` of two ``$ref`` to ``#/$defs/...``: the static bounds refuse it."""
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(LEVELS)
    }
    defs[f"d{LEVELS}"] = {"type": "integer"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def _id_bomb() -> dict[str, Any]:
    """The same, each level named by its ``$id``: no static count follows it, the deadline stops it."""
    defs: dict[str, Any] = {
        f"d{i}": {"$id": f"urn:d{i}", "anyOf": [{"$ref": f"urn:d{i + 1}"}, {"$ref": f"urn:d{i + 1}"}]}
        for i in range(LEVELS)
    }
    defs[f"d{LEVELS}"] = {"$id": f"urn:d{LEVELS}", "type": "integer"}
    return {"$defs": defs, "$ref": "urn:d0"}


class RefBombReader(BaseReader):
    """Declares the ``$ref`` bomb; never built."""

    __version__ = "1.0.0"
    config_schema = _ref_bomb()

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"n": 1}]


class IdRefBombReader(BaseReader):
    """Declares the ``$id`` bomb; never built."""

    __version__ = "1.0.0"
    config_schema = _id_bomb()

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"n": 1}]
