"""A config_schema too large to apply, as written or through its ``$ref`` fan-out, is refused at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dativo_plugin_sdk import PluginError
from dativo_runtime._plugins._config_spec import check_config_schema
from dativo_runtime._plugins._schema_bounds import (
    MAX_EXPANDED_SCHEMA_NODES,
    MAX_SCHEMA_NODES,
    check_schema_bounds,
    expanded_size,
)
from dativo_runtime.connectors import CsvReader, ParquetWriter


def _ref_bomb(levels: int, pointer: str = "#/$defs/d{}") -> dict[str, Any]:
    """Levels of ``anyOf`` of two ``$ref`` to the next level: 2**levels steps to apply."""
    defs: dict[str, Any] = {
        f"d{i}": {"$anchor": f"a{i}", "anyOf": [{"$ref": pointer.format(i + 1)}] * 2} for i in range(levels)
    }
    defs[f"d{levels}"] = {"$anchor": f"a{levels}", "type": "integer"}
    return {"$defs": defs, "$ref": pointer.format(0)}


@pytest.mark.parametrize("pointer", ["#/$defs/d{}", "#a{}"])
def test_the_ref_bomb_is_refused_at_once(pointer: str) -> None:
    began = time.perf_counter()
    with pytest.raises(PluginError) as raised:
        check_config_schema(_ref_bomb(40, pointer), "bomb.py:R")
    assert time.perf_counter() - began < 1.0
    message = raised.value.message
    assert "plugin 'bomb.py:R' declares a config_schema too large to apply" in message
    assert f"more than {MAX_EXPANDED_SCHEMA_NODES} nodes" in message
    assert raised.value.details == {"ref": "bomb.py:R", "reason": "invalid_config_schema"}


def test_each_ref_counts_a_copy_of_its_target_until_the_limit() -> None:
    assert expanded_size(_ref_bomb(10), 10**6) > 2**10
    began = time.perf_counter()
    assert expanded_size(_ref_bomb(200), 1000) > 1000
    assert time.perf_counter() - began < 0.5


def test_a_recursive_schema_is_counted_once() -> None:
    tree = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
    }
    assert expanded_size(tree, 10**6) < 20
    check_schema_bounds(tree, "tree.py:R")


def test_a_schema_with_too_many_nodes_is_refused() -> None:
    schema = {"type": "object", "properties": {f"k{i}": {"type": "string"} for i in range(MAX_SCHEMA_NODES)}}
    with pytest.raises(PluginError, match=f"it has more than {MAX_SCHEMA_NODES} nodes"):
        check_schema_bounds(schema, "big.py:R")


def test_the_built_in_connectors_schemas_are_well_within_the_bounds() -> None:
    for plugin in (CsvReader, ParquetWriter):
        assert expanded_size(plugin.config_schema, MAX_EXPANDED_SCHEMA_NODES) < 1000
