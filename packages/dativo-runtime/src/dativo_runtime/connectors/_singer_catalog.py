"""A Singer catalog read as Dativo streams, and the catalog that selects one stream for a run.

Discovery (``tap --discover``) prints a catalog: ``{"streams": [{"tap_stream_id", "stream",
"schema", "key_properties", "replication_key", "replication_method", "metadata": [...]}]}``.
Stream metadata sits at the empty breadcrumb; ``table-key-properties``, ``replication-key``
and ``valid-replication-keys`` there stand in for the top-level keys older taps omit.
Selecting a stream for a run marks it (and each of its fields, which older taps require)
``selected``, marks every other stream unselected (SDK taps select everything by default),
and sets the replication method: ``INCREMENTAL`` with its replication key when the job is
incremental and the stream has one, else ``FULL_TABLE``. Standard library and SDK only.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from dativo_plugin_sdk import ConfigurationError, DiscoveredStream, PluginError
from dativo_runtime.connectors._json_schema_columns import columns_from_json_schema, only_stream

__all__ = ["catalog_streams", "discovered_stream", "find_stream", "select_stream", "stream_id"]


def catalog_streams(catalog: Any, describe: str = "the tap") -> list[dict[str, Any]]:
    """The stream entries of a catalog.

    Raises:
        PluginError: If the catalog is not an object with a ``streams`` list.
    """
    streams = catalog.get("streams") if isinstance(catalog, Mapping) else None
    if not isinstance(streams, list) or not all(isinstance(s, dict) for s in streams):
        raise PluginError(
            f"{describe} printed a catalog without a 'streams' list of objects on --discover",
            details={"reason": "invalid_catalog"},
        )
    return streams


def stream_id(entry: Mapping[str, Any]) -> str:
    """A catalog entry's name: ``tap_stream_id``, else ``stream``."""
    return str(entry.get("tap_stream_id") or entry.get("stream") or "")


def _stream_metadata(entry: Mapping[str, Any]) -> dict[str, Any]:
    for item in entry.get("metadata") or []:
        if isinstance(item, Mapping) and list(item.get("breadcrumb") or []) == []:
            metadata = item.get("metadata")
            return dict(metadata) if isinstance(metadata, Mapping) else {}
    return {}


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, str)]
    return []


def primary_key(entry: Mapping[str, Any]) -> list[str]:
    """``key_properties``, else the metadata's ``table-key-properties``."""
    return _names(entry.get("key_properties")) or _names(_stream_metadata(entry).get("table-key-properties"))


def replication_key(entry: Mapping[str, Any]) -> str | None:
    """``replication_key``, else the metadata's ``replication-key`` or first ``valid-replication-keys``."""
    metadata = _stream_metadata(entry)
    for value in (
        entry.get("replication_key"),
        metadata.get("replication-key"),
        metadata.get("valid-replication-keys"),
    ):
        names = _names(value)
        if names:
            return names[0]
    return None


def discovered_stream(entry: Mapping[str, Any]) -> DiscoveredStream:
    """A catalog entry as a Dativo stream: columns, primary key and cursor.

    Key properties or a replication key that the schema does not list are left out.
    """
    key = primary_key(entry)
    columns = columns_from_json_schema(entry.get("schema"), key_properties=key)
    names = {c.name for c in columns}
    cursor = replication_key(entry)
    return DiscoveredStream(
        stream_id(entry),
        tuple(columns),
        primary_key=tuple(k for k in key if k in names),
        cursor_field=cursor if cursor in names else None,
    )


def find_stream(
    streams: list[dict[str, Any]], wanted: str | None, describe: str = "the tap"
) -> dict[str, Any]:
    """The entry called ``wanted`` (its ``tap_stream_id``, else its ``stream``), or the only one.

    Raises:
        ConfigurationError: If no entry has that name, or ``wanted`` is unset and there are several.
    """
    names = [stream_id(s) for s in streams]
    if wanted is None:
        return only_stream(streams, names, describe)
    for key in ("tap_stream_id", "stream"):
        for entry in streams:
            if entry.get(key) == wanted:
                return entry
    raise ConfigurationError(
        f"{describe} has no stream {wanted!r}; its streams: {', '.join(names[:20]) or 'none'}",
        details={"field": "source.stream", "streams": names[:100]},
    )


def _set_metadata(entry: dict[str, Any], breadcrumb: list[str], values: Mapping[str, Any]) -> None:
    metadata = entry.setdefault("metadata", [])
    for item in metadata:
        if isinstance(item, dict) and list(item.get("breadcrumb") or []) == breadcrumb:
            item.setdefault("metadata", {}).update(values)
            return
    metadata.append({"breadcrumb": breadcrumb, "metadata": dict(values)})


def select_stream(catalog: Mapping[str, Any], chosen: str, *, incremental: bool) -> dict[str, Any]:
    """A copy of ``catalog`` that selects the stream ``chosen`` (a :func:`stream_id`) and nothing else.

    Args:
        catalog: The discovered catalog.
        chosen: The stream to read.
        incremental: Whether the run keeps state: the replication method is then
            ``INCREMENTAL`` when the stream has a replication key.

    Returns:
        The catalog to pass with ``--catalog``.
    """
    selected = copy.deepcopy(dict(catalog))
    for entry in catalog_streams(selected):
        if not isinstance(entry.get("metadata"), list):
            entry["metadata"] = []
        is_chosen = stream_id(entry) == chosen
        entry["selected"] = is_chosen
        _set_metadata(entry, [], {"selected": is_chosen})
        if not is_chosen:
            continue
        key = replication_key(entry)
        method = "INCREMENTAL" if incremental and key else "FULL_TABLE"
        entry["replication_method"] = method
        stream_values: dict[str, Any] = {"replication-method": method}
        if method == "INCREMENTAL":
            entry["replication_key"] = key
            stream_values["replication-key"] = key
        _set_metadata(entry, [], stream_values)
        schema = entry.get("schema")
        properties = schema.get("properties") if isinstance(schema, Mapping) else None
        for name in properties or {}:
            field_metadata = {"selected": True}
            for item in entry["metadata"]:
                is_field = isinstance(item, dict) and list(item.get("breadcrumb") or []) == [
                    "properties",
                    name,
                ]
                if is_field and (item.get("metadata") or {}).get("inclusion") == "unsupported":
                    field_metadata = {"selected": False}
            _set_metadata(entry, ["properties", str(name)], field_metadata)
    return selected
