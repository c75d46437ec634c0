"""The Airbyte protocol's messages as Dativo's: spec, catalog, errors and state.

* ``SPEC``: ``connectionSpecification`` becomes the schema of the reader's ``config`` key
  (``airbyte_secret: true`` -> ``"secret": true``, so the runtime masks the value; its
  ``definitions`` hoisted so its ``$ref``s still resolve inside the reader's schema).
* ``CATALOG``: each stream's ``json_schema``, ``source_defined_primary_key`` and
  ``default_cursor_field`` become columns, primary key and cursor; the configured catalog
  for ``read`` selects one stream, ``incremental`` when the job is and the stream supports
  it, else ``full_refresh``.
* ``TRACE`` errors by ``failure_type``: ``config_error`` -> ``ConfigurationError`` (exit 2),
  ``transient_error`` -> ``TransientError`` (exit 75), anything else -> ``PluginError``.
* ``STATE``: per-stream (``STREAM``), ``GLOBAL`` and legacy messages kept as the list the
  next ``read`` takes with ``--state`` (:class:`AirbyteStateKeeper`).

Standard library and the SDK only: this runs inside the sandbox.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from dativo_plugin_sdk import ConfigurationError, DativoError, DiscoveredStream, PluginError, TransientError
from dativo_runtime.connectors._json_schema_columns import columns_from_json_schema, only_stream

__all__ = [
    "AirbyteStateKeeper",
    "configured_catalog",
    "connector_config_schema",
    "discovered_stream",
    "error_from_trace",
    "find_stream",
    "stream_name",
]

_MAX_DEPTH = 64
STATE_KEY = "airbyte_state"
"""The key of the reader's state that holds the source's state messages."""


def _mark_secrets(schema: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        return schema
    if isinstance(schema, Mapping):
        marked = {key: _mark_secrets(value, depth + 1) for key, value in schema.items()}
        if schema.get("airbyte_secret") is True:
            marked["secret"] = True
        return marked
    if isinstance(schema, list):
        return [_mark_secrets(item, depth + 1) for item in schema]
    return schema


def connector_config_schema(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The source's ``connectionSpecification`` as the schema of the reader's ``config`` key.

    Args:
        spec: The ``spec`` payload of a ``SPEC`` message.

    Returns:
        ``(config_schema, definitions)``: the schema, and the definitions (``definitions``,
        ``$defs``) to put at the root of the reader's schema, where its ``$ref``s point.
    """
    specification = spec.get("connectionSpecification")
    if not isinstance(specification, Mapping):
        return {"type": "object"}, {}
    schema = _mark_secrets(copy.deepcopy(dict(specification)))
    for key in ("$schema", "$id", "id"):
        schema.pop(key, None)
    definitions = {key: schema.pop(key) for key in ("definitions", "$defs") if key in schema}
    return schema, definitions


def stream_name(entry: Mapping[str, Any]) -> str:
    """A catalog stream's name."""
    return str(entry.get("name") or "")


def _key_paths(value: Any) -> list[list[str]]:
    if not isinstance(value, list):
        return []
    return [[str(part) for part in path] for path in value if isinstance(path, list) and path]


def discovered_stream(entry: Mapping[str, Any]) -> DiscoveredStream:
    """A catalog stream as a Dativo stream.

    Only top-level fields make a primary key or a cursor (nested paths are left out).
    """
    keys = [path[0] for path in _key_paths(entry.get("source_defined_primary_key")) if len(path) == 1]
    columns = columns_from_json_schema(entry.get("json_schema"), key_properties=keys)
    names = {c.name for c in columns}
    cursor_path = entry.get("default_cursor_field")
    cursor = cursor_path[0] if isinstance(cursor_path, list) and len(cursor_path) == 1 else None
    return DiscoveredStream(
        stream_name(entry),
        tuple(columns),
        primary_key=tuple(k for k in keys if k in names),
        cursor_field=str(cursor) if cursor in names else None,
    )


def find_stream(
    streams: list[dict[str, Any]], wanted: str | None, namespace: str | None, describe: str
) -> dict[str, Any]:
    """The catalog stream called ``wanted`` (in ``namespace`` when given), or the only one.

    Raises:
        ConfigurationError: If none matches, or ``wanted`` is unset and there are several.
    """
    names = [stream_name(s) for s in streams]
    if wanted is None:
        return only_stream(streams, names, describe)
    for entry in streams:
        if stream_name(entry) == wanted and (namespace is None or entry.get("namespace") == namespace):
            return entry
    raise ConfigurationError(
        f"{describe} has no stream {wanted!r}{f' in namespace {namespace!r}' if namespace else ''}; "
        f"its streams: {', '.join(names[:20]) or 'none'}",
        details={"field": "source.stream", "streams": names[:100]},
    )


def configured_catalog(entry: Mapping[str, Any], *, incremental: bool) -> tuple[dict[str, Any], str]:
    """The configured catalog that reads the stream ``entry``, and its sync mode.

    Incremental when the job is and the stream supports it (with the source's cursor, or
    its default cursor field), else full refresh; destination sync mode ``append``.
    """
    modes = entry.get("supported_sync_modes") or ["full_refresh"]
    cursor = entry.get("default_cursor_field") or []
    can_resume = "incremental" in modes and (bool(entry.get("source_defined_cursor")) or bool(cursor))
    mode = "incremental" if incremental and can_resume else "full_refresh"
    stream: dict[str, Any] = {"stream": dict(entry), "sync_mode": mode, "destination_sync_mode": "append"}
    if mode == "incremental":
        stream["cursor_field"] = list(cursor)
    primary_key = _key_paths(entry.get("source_defined_primary_key"))
    if primary_key:
        stream["primary_key"] = primary_key
    return {"streams": [stream]}, mode


def error_from_trace(
    trace: Mapping[str, Any], describe: str, *, mask: Callable[[str], str] = str
) -> DativoError:
    """The Dativo error a ``TRACE`` of type ``ERROR`` stands for, by its ``failure_type``.

    Args:
        trace: The ``trace`` payload.
        describe: How the message names the source.
        mask: Masks the config's secrets in the texts.
    """
    error = trace.get("error") if isinstance(trace.get("error"), Mapping) else {}
    assert isinstance(error, Mapping)
    message = mask(str(error.get("message") or "the source failed and gave no message"))
    details = {
        "failure_type": str(error.get("failure_type") or "system_error"),
        "internal_message": mask(str(error.get("internal_message") or "")[:2000]),
        "stack_trace": mask(str(error.get("stack_trace") or "")[-4000:]),
    }
    failure = details["failure_type"]
    if failure == "config_error":
        return ConfigurationError(f"{describe}: {message}", details=details)
    if failure == "transient_error":
        return TransientError(f"{describe}: {message}", details=details)
    return PluginError(f"{describe} failed: {message}", details=details)


def _descriptor(state: Mapping[str, Any]) -> tuple[str, str | None]:
    stream = state.get("stream") if isinstance(state.get("stream"), Mapping) else {}
    assert isinstance(stream, Mapping)
    descriptor = (
        stream.get("stream_descriptor") if isinstance(stream.get("stream_descriptor"), Mapping) else {}
    )
    assert isinstance(descriptor, Mapping)
    namespace = descriptor.get("namespace")
    return str(descriptor.get("name") or ""), str(namespace) if namespace is not None else None


class AirbyteStateKeeper:
    """The source's state as the list of state messages its next ``read`` takes.

    A ``STREAM`` message replaces the state of its stream; a ``GLOBAL`` or legacy one
    replaces everything (they describe every stream at once). ``sourceStats`` and
    ``destinationStats`` are dropped: counts of one run, not state.

    Args:
        messages: The saved list (:attr:`messages` of a previous run).
    """

    def __init__(self, messages: Any = None) -> None:
        self.messages: list[dict[str, Any]] = [m for m in messages or [] if isinstance(m, dict)]

    def add(self, state: Mapping[str, Any]) -> None:
        """Take the ``state`` payload of a ``STATE`` message."""
        kept = {k: copy.deepcopy(v) for k, v in state.items() if k not in ("sourceStats", "destinationStats")}
        kind = kept.get("type") or ("LEGACY" if "data" in kept else None)
        if kind == "STREAM":
            key = _descriptor(kept)
            self.messages = [m for m in self.messages if m.get("type") != "STREAM" or _descriptor(m) != key]
            self.messages = [m for m in self.messages if m.get("type") == "STREAM"]
            self.messages.append(kept)
        else:
            self.messages = [kept]

    def for_source(self) -> Any:
        """What ``--state`` gets: the list of messages (a legacy state: its ``data``)."""
        if len(self.messages) == 1 and self.messages[0].get("type", "LEGACY") == "LEGACY":
            return self.messages[0].get("data") or {}
        return self.messages
