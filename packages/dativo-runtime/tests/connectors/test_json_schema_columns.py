"""JSON Schema (Singer SCHEMA, Airbyte json_schema) to Dativo columns."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dativo_plugin_sdk import Column, ColumnType
from dativo_runtime.connectors._json_schema_columns import (
    column_for_property,
    columns_from_json_schema,
    json_types,
)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer"}, ColumnType.INTEGER),
        ({"type": ["null", "integer"]}, ColumnType.INTEGER),
        ({"type": "number", "airbyte_type": "integer"}, ColumnType.INTEGER),
        ({"type": ["integer", "number"]}, ColumnType.FLOAT),
        ({"type": "number"}, ColumnType.FLOAT),
        ({"type": "boolean"}, ColumnType.BOOLEAN),
        ({"type": "string"}, ColumnType.STRING),
        ({"type": ["string", "null"], "format": "date-time"}, ColumnType.TIMESTAMP),
        ({"type": "string", "airbyte_type": "timestamp_without_timezone"}, ColumnType.TIMESTAMP),
        ({"type": "string", "format": "date"}, ColumnType.DATE),
        ({"type": "string", "format": "time"}, ColumnType.STRING),
        ({"type": "object", "properties": {"a": {"type": "integer"}}}, ColumnType.JSON),
        ({"type": ["null", "array"], "items": {"type": "string"}}, ColumnType.JSON),
        ({}, ColumnType.JSON),
        ({"type": "null"}, ColumnType.STRING),
        ({"type": ["string", "integer"]}, ColumnType.STRING),
        ({"anyOf": [{"type": "null"}, {"type": "string", "format": "date-time"}]}, ColumnType.TIMESTAMP),
        ({"anyOf": [{"type": "string"}, {}]}, ColumnType.JSON),
    ],
)
def test_property_types(schema: dict[str, Any], expected: ColumnType) -> None:
    assert column_for_property("x", schema).type == expected


def test_nullable_unless_required_and_typed_without_null() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "key": {"type": "string"},
            "maybe": {"type": ["null", "integer"]},
            "loose": {"type": "integer"},
        },
        "required": ["id", "maybe"],
    }
    columns = columns_from_json_schema(schema, key_properties=["key"])
    assert columns == [
        Column("id", "integer", nullable=False),
        Column("key", "string", nullable=False),
        Column("maybe", "integer", nullable=True),
        Column("loose", "integer", nullable=True),
    ]


@pytest.mark.parametrize("schema", [None, [], {"type": "object"}, {"properties": []}])
def test_a_schema_without_properties_has_no_columns(schema: Any) -> None:
    assert columns_from_json_schema(schema) == []


_TYPE_NAMES = st.sampled_from(["null", "integer", "number", "string", "boolean", "object", "array"])
_PROPERTY = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(_TYPE_NAMES, st.lists(_TYPE_NAMES, max_size=4)),
            "format": st.sampled_from(["date-time", "date", "time", "email"]),
            "airbyte_type": st.sampled_from(["integer", "timestamp_with_timezone", "big_integer"]),
        },
    ),
    lambda children: st.fixed_dictionaries({"anyOf": st.lists(children, min_size=1, max_size=3)}),
    max_leaves=6,
)


@given(properties=st.dictionaries(st.text(min_size=1, max_size=8), _PROPERTY, max_size=8))
def test_every_property_becomes_one_column_of_a_known_type(properties: dict[str, Any]) -> None:
    columns = columns_from_json_schema({"type": "object", "properties": properties})
    assert [c.name for c in columns] == list(properties)
    for column, schema in zip(columns, properties.values(), strict=True):
        types = json_types(schema)
        if "null" in types or not types:
            assert column.nullable
        if types & {"object", "array"} or not types:
            assert column.type == ColumnType.JSON
        if column.type in (ColumnType.TIMESTAMP, ColumnType.DATE):
            assert types - {"null"} == {"string"}
