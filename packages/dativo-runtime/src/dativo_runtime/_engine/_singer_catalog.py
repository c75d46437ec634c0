"""Singer catalogs and state files for ``dativo-run singer-tap``: what it prints and what it reads.

A Dativo job reads one stream, so the catalog ``--discover`` prints holds that one stream
(:func:`catalog_entry`), and of a catalog given with ``--catalog`` only that stream's entry
matters (:func:`stream_selection`): whether it is selected, which fields are deselected,
and its replication method. A state file (``--state``) is a Singer state *value*
(``{"bookmarks": {STREAM: ...}}``, or a whole ``STATE`` message); the stream's bookmark is
the Dativo reader's own state dict (:func:`stream_state`, :func:`state_value`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._engine._singer_json import json_schema_for

__all__ = [
    "SingerStream",
    "StreamSelection",
    "catalog_entry",
    "state_value",
    "stream_selection",
    "stream_state",
    "with_stream_state",
]


@dataclass(frozen=True)
class SingerStream:
    """The stream a job reads, as Singer describes it.

    Attributes:
        tap_stream_id: The stream's name in Singer messages: ``source.stream``, else the job's name.
        schema: Its Arrow schema, or ``None`` when only the first batch will tell.
        key_properties: The discovered primary key.
        replication_key: The cursor: ``source.incremental.cursor_field``, else the
            discovered ``cursor_field``.
        incremental: Whether the job reads incrementally (``source.incremental``).
    """

    tap_stream_id: str
    schema: pa.Schema | None
    key_properties: tuple[str, ...] = ()
    replication_key: str | None = None
    incremental: bool = False

    @property
    def replication_method(self) -> str:
        """``INCREMENTAL`` when the job is incremental, else ``FULL_TABLE``."""
        return "INCREMENTAL" if self.incremental else "FULL_TABLE"

    @property
    def bookmark_properties(self) -> list[str]:
        """The replication key of an incremental job, as ``SCHEMA.bookmark_properties``."""
        return [self.replication_key] if self.incremental and self.replication_key else []

    def json_schema(self) -> dict[str, Any]:
        """The stream's JSON Schema (any object while the schema is not known yet)."""
        if self.schema is None:
            return {"type": "object", "properties": {}, "additionalProperties": True}
        return json_schema_for(self.schema)


def catalog_entry(stream: SingerStream) -> dict[str, Any]:
    """The stream's entry of a Singer catalog, with its discovery metadata.

    Every field is ``selected-by-default``; the key properties and the replication key
    are ``inclusion: automatic`` (always written), the others ``available``.
    """
    automatic = {*stream.key_properties, *stream.bookmark_properties}
    root: dict[str, Any] = {
        "inclusion": "available",
        "selected-by-default": True,
        "table-key-properties": list(stream.key_properties),
        "forced-replication-method": stream.replication_method,
        "replication-method": stream.replication_method,
    }
    if stream.replication_key:
        root["valid-replication-keys"] = [stream.replication_key]
        if stream.incremental:
            root["replication-key"] = stream.replication_key
    metadata: list[dict[str, Any]] = [{"breadcrumb": [], "metadata": root}]
    for name in stream.schema.names if stream.schema is not None else []:
        metadata.append(
            {
                "breadcrumb": ["properties", name],
                "metadata": {
                    "inclusion": "automatic" if name in automatic else "available",
                    "selected-by-default": True,
                },
            }
        )
    entry: dict[str, Any] = {
        "tap_stream_id": stream.tap_stream_id,
        "stream": stream.tap_stream_id,
        "schema": stream.json_schema(),
        "key_properties": list(stream.key_properties),
        "replication_method": stream.replication_method,
        "metadata": metadata,
    }
    if stream.incremental and stream.replication_key:
        entry["replication_key"] = stream.replication_key
    return entry


@dataclass(frozen=True)
class StreamSelection:
    """What a ``--catalog`` says of the job's stream.

    Attributes:
        selected: Whether the stream is to be read at all.
        deselected_fields: Fields the catalog deselects (key properties and the
            replication key are written regardless).
        full_table: The catalog asks for ``replication-method: FULL_TABLE``: the
            saved state is not read back.
    """

    selected: bool = True
    deselected_fields: frozenset[str] = frozenset()
    full_table: bool = False


def _catalog_error(message: str) -> ConfigurationError:
    return ConfigurationError(f"--catalog: {message}", details={"option": "--catalog"})


def _metadata_by_breadcrumb(entry: Mapping[str, Any]) -> dict[tuple[str, ...], Mapping[str, Any]]:
    items = entry.get("metadata")
    items = [] if items is None else items
    if not isinstance(items, list):
        raise _catalog_error("a stream's 'metadata' must be a list of {breadcrumb, metadata} objects")
    found: dict[tuple[str, ...], Mapping[str, Any]] = {}
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("metadata", {}), Mapping):
            raise _catalog_error("each metadata item must be an object with 'breadcrumb' and 'metadata'")
        breadcrumb = item.get("breadcrumb") or []
        if not isinstance(breadcrumb, list):
            raise _catalog_error("a metadata 'breadcrumb' must be a list")
        found[tuple(str(part) for part in breadcrumb)] = item.get("metadata") or {}
    return found


def _is_selected(metadata: Mapping[str, Any], default: Any) -> bool:
    """Singer's rule: ``inclusion`` first, then ``selected``, then ``selected-by-default``."""
    inclusion = metadata.get("inclusion")
    if inclusion == "unsupported":
        return False
    if inclusion == "automatic":
        return True
    for key in ("selected", "selected-by-default"):
        if isinstance(metadata.get(key), bool):
            return bool(metadata[key])
    return bool(default)


def stream_selection(catalog: Any, stream: SingerStream) -> StreamSelection:
    """Read what a catalog (``--catalog``/``--properties``) says of the job's stream.

    A stream the catalog does not list is not selected. A listed stream is selected as
    Singer says (``metadata`` at breadcrumb ``[]``: ``selected``, else
    ``selected-by-default``), or by a legacy ``"selected": true`` on the entry; an entry
    with no selection metadata at all counts as selected.

    Args:
        catalog: The parsed catalog document.
        stream: The job's stream.

    Returns:
        The selection.

    Raises:
        ConfigurationError: If the document is not a Singer catalog.
    """
    if not isinstance(catalog, Mapping) or not isinstance(catalog.get("streams"), list):
        raise _catalog_error('not a Singer catalog: expected {"streams": [...]}')
    entry = None
    for item in catalog["streams"]:
        if not isinstance(item, Mapping):
            raise _catalog_error("each item of 'streams' must be an object")
        name = item.get("tap_stream_id", item.get("stream"))
        if name == stream.tap_stream_id:
            entry = item
            break
    if entry is None:
        return StreamSelection(selected=False)
    metadata = _metadata_by_breadcrumb(entry)
    root = metadata.get((), {})
    selected = _is_selected(root, entry.get("selected", True))
    automatic = {*stream.key_properties, *stream.bookmark_properties}
    deselected = frozenset(
        path[1]
        for path, field_metadata in metadata.items()
        if len(path) == 2
        and path[0] == "properties"
        and path[1] not in automatic
        and not _is_selected(field_metadata, True)
    )
    method = root.get("replication-method", entry.get("replication_method"))
    return StreamSelection(
        selected=selected,
        deselected_fields=deselected,
        full_table=isinstance(method, str) and method.upper() == "FULL_TABLE",
    )


def _state_error(message: str) -> ConfigurationError:
    return ConfigurationError(f"--state: {message}", details={"option": "--state"})


def state_value(document: Any) -> dict[str, Any]:
    """The Singer state value a ``--state`` file holds.

    Args:
        document: The parsed file: a state value (``{"bookmarks": {...}}``), a whole
            ``STATE`` message (its ``value`` is taken), or ``null``/``{}`` for none.

    Returns:
        The value (``{}`` when there is none).

    Raises:
        ConfigurationError: If it is neither.
    """
    if document is None:
        return {}
    if isinstance(document, Mapping) and document.get("type") == "STATE" and "value" in document:
        document = document["value"]
    if not isinstance(document, Mapping):
        raise _state_error(
            'a Singer state is a JSON object such as {"bookmarks": {...}}, '
            f"not a {type(document).__name__}"
        )
    bookmarks = document.get("bookmarks", {})
    if not isinstance(bookmarks, Mapping):
        raise _state_error("'bookmarks' must be an object of stream name to state")
    return copy.deepcopy(dict(document))


def stream_state(value: Mapping[str, Any], stream: str) -> dict[str, Any] | None:
    """The reader's state for ``stream`` in a state value (``bookmarks[stream]``), if any.

    Raises:
        ConfigurationError: If the bookmark is not an object.
    """
    bookmark = (value.get("bookmarks") or {}).get(stream)
    if bookmark is None:
        return None
    if not isinstance(bookmark, Mapping):
        raise _state_error(f"bookmarks[{stream!r}] must be an object (the Dativo reader's state)")
    return dict(bookmark)


def with_stream_state(value: Mapping[str, Any], stream: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a state value whose ``bookmarks[stream]`` is ``state`` (other keys kept)."""
    bookmarks = dict(value.get("bookmarks") or {})
    bookmarks[stream] = dict(state)
    return {**value, "bookmarks": bookmarks}
