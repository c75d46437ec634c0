"""A Singer or Airbyte stream's JSON Schema as Dativo columns.

Singer's ``SCHEMA`` messages and catalogs, and Airbyte's ``json_schema``, describe a record
as a JSON Schema object. Each top-level property becomes one column:

============================================ ==========================
property schema                              column type
============================================ ==========================
``integer`` (Airbyte: ``airbyte_type: integer``) ``integer``
``number``, or ``integer`` and ``number``    ``float``
``boolean``                                  ``boolean``
``string`` with ``format: date-time``        ``timestamp`` (UTC)
``string`` with ``format: date``             ``date``
``string`` (also ``format: time``)           ``string``
``object``, ``array``, no type, ``{}``       ``json`` (JSON text)
several other types (``string``/``integer``) ``string``
============================================ ==========================

``["null", X]`` (or ``anyOf`` with a ``null`` branch) is ``X``, nullable. A column is
required (not nullable) only when its type has no ``null`` *and* the property is listed in
the schema's ``required`` or is a key property: taps often leave ``null`` out of types whose
values they omit. Standard library and the SDK only: this runs inside the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dativo_plugin_sdk import Column, ColumnType, ConfigurationError

__all__ = ["column_for_property", "columns_from_json_schema", "json_types", "only_stream"]

_MAX_DEPTH = 32


def json_types(schema: Any, depth: int = 0) -> set[str]:
    """The JSON types a property schema allows (``anyOf``/``oneOf`` branches merged); empty: any.

    Args:
        schema: A property's JSON Schema.

    Returns:
        Type names (``integer``, ``null``...); Airbyte's ``airbyte_type: integer`` on a
        ``number`` counts as ``integer``.
    """
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return set()
    declared = schema.get("type")
    found: set[str] = set()
    if isinstance(declared, str):
        found.add(declared)
    elif isinstance(declared, list):
        found.update(str(t) for t in declared)
    if schema.get("airbyte_type") == "integer" and "number" in found:
        found.discard("number")
        found.add("integer")
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list):
            for branch in branches:
                branch_types = json_types(branch, depth + 1)
                if not branch_types:
                    return set()  # A branch that allows anything: so does the property.
                found |= branch_types
    return found


def _formats(schema: Any, depth: int = 0) -> set[str]:
    if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
        return set()
    found = {str(schema["format"])} if isinstance(schema.get("format"), str) else set()
    airbyte = schema.get("airbyte_type")
    if airbyte in ("timestamp_with_timezone", "timestamp_without_timezone"):
        found.add("date-time")
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key) or []:
            found |= _formats(branch, depth + 1)
    return found


def _column_type(types: set[str], formats: set[str]) -> ColumnType:
    concrete = types - {"null"}
    if not types or concrete & {"object", "array"}:
        return ColumnType.JSON
    if not concrete:
        return ColumnType.STRING  # Only ever null.
    if concrete == {"integer"}:
        return ColumnType.INTEGER
    if concrete <= {"integer", "number"}:
        return ColumnType.FLOAT
    if concrete == {"boolean"}:
        return ColumnType.BOOLEAN
    if concrete == {"string"}:
        if formats == {"date-time"}:
            return ColumnType.TIMESTAMP
        if formats == {"date"}:
            return ColumnType.DATE
    return ColumnType.STRING


def column_for_property(name: str, schema: Any, *, required: bool = False) -> Column:
    """The column for one top-level property.

    Args:
        name: The property's name.
        schema: Its JSON Schema.
        required: Whether the record must hold it (``required`` or a key property).

    Returns:
        The column; nullable unless ``required`` and its types leave ``null`` out.
    """
    types = json_types(schema)
    column_type = _column_type(types, _formats(schema))
    nullable = not required or "null" in types or not types
    return Column(name, column_type, nullable=nullable)


def columns_from_json_schema(schema: Any, *, key_properties: Iterable[str] = ()) -> list[Column]:
    """The columns of a stream whose records ``schema`` describes.

    Args:
        schema: The stream's JSON Schema (an object schema with ``properties``).
        key_properties: The stream's primary key (never nullable unless typed so).

    Returns:
        One column per property, in the schema's order; none for a schema without properties.
    """
    if not isinstance(schema, Mapping):
        return []
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    listed = schema.get("required")
    required: Sequence[Any] = listed if isinstance(listed, list) else []
    must_hold = {str(name) for name in required} | {str(name) for name in key_properties}
    return [
        column_for_property(str(name), sub_schema, required=str(name) in must_hold)
        for name, sub_schema in properties.items()
    ]


def only_stream(streams: list[dict[str, Any]], names: list[str], describe: str) -> dict[str, Any]:
    """The catalog's one stream, for a job that names none (Singer and Airbyte catalogs alike).

    Raises:
        ConfigurationError: If the catalog has several (or no) streams: set ``source.stream``.
    """
    if len(streams) == 1:
        return streams[0]
    raise ConfigurationError(
        f"{describe} offers {len(streams)} streams ({', '.join(names[:20]) or 'none'}); "
        "set source.stream to one of them",
        details={"field": "source.stream", "streams": names[:100]},
    )
