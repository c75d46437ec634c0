"""The static bounds of a ``config_schema``: its nodes as written, and as its ``$ref`` expand them.

Applying a JSON Schema costs about one step per schema node it reaches, and ``$ref``
reaches the same node again from every place that names it. Forty ``$defs``, each an
``anyOf`` of two ``$ref`` to the next, make a 3 KB schema that ``jsonschema`` needs 2**40
steps to apply. So before a schema is applied its size is counted twice, both in time
linear in its size: its nodes as written, and its nodes as ``$ref`` expands them (each
``$ref`` to ``#/...`` or to a ``$anchor`` counted as a copy of its target). A ``$ref`` back
into a schema it sits in (a recursive schema) is counted once: what it costs is bounded by
the depth of the config, which the job's author wrote.

These bounds refuse the common shapes early with a clear message; the deadline of
:mod:`dativo_runtime._plugins._schema_child` is what guarantees that a sandboxed plugin's
schema cannot hold the host, whatever its shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dativo_plugin_sdk import PluginError

__all__ = ["MAX_EXPANDED_SCHEMA_NODES", "MAX_SCHEMA_NODES", "check_schema_bounds", "expanded_size"]

MAX_SCHEMA_NODES = 10_000
"""The most nodes (mappings, lists and values) a ``config_schema`` may have as written."""

MAX_EXPANDED_SCHEMA_NODES = 50_000
"""The most nodes a ``config_schema`` may reach once every ``$ref`` is expanded."""

_REF_KEYWORDS = ("$ref", "$dynamicRef")


def _anchors(schema: Any) -> dict[str, Any]:
    """Every ``$anchor`` and ``$dynamicAnchor`` of ``schema``, by name."""
    found: dict[str, Any] = {}
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            for keyword in ("$anchor", "$dynamicAnchor"):
                name = node.get(keyword)
                if isinstance(name, str):
                    found.setdefault(name, node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _target(pointer: str, root: Any, anchors: Mapping[str, Any]) -> Any:
    """What a local reference names (``#/$defs/a`` or ``#name``), or ``None``."""
    if not pointer.startswith("#"):
        return None  # Another document: nothing is fetched, so applying it fails.
    fragment = pointer[1:]
    if fragment and not fragment.startswith("/"):
        return anchors.get(fragment)
    node: Any = root
    for raw in [part for part in fragment.split("/") if part]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _children(node: Any, root: Any, anchors: Mapping[str, Any]) -> list[Any]:
    """The nodes applying ``node`` reaches: its values, and what its references name."""
    if isinstance(node, list):
        return list(node)
    children = list(node.values())
    for keyword in _REF_KEYWORDS:
        pointer = node.get(keyword)
        if isinstance(pointer, str):
            target = _target(pointer, root, anchors)
            if isinstance(target, (Mapping, list)):
                children.append(target)
    return children


def expanded_size(schema: Any, limit: int) -> int:
    """How many nodes ``schema`` reaches with every local ``$ref`` expanded; counting stops past ``limit``.

    Args:
        schema: A ``config_schema`` (JSON data).
        limit: Counting stops as soon as the size exceeds it.

    Returns:
        The size, or a number above ``limit`` when it is larger.
    """
    if not isinstance(schema, (Mapping, list)):
        return 1
    anchors = _anchors(schema)
    sizes: dict[int, int] = {}
    open_nodes = {id(schema)}
    # Each frame: the node, what it reaches, how many of those are counted, its size so far.
    stack: list[list[Any]] = [[schema, _children(schema, schema, anchors), 0, 1]]
    while stack:
        frame = stack[-1]
        node, children, index = frame[0], frame[1], frame[2]
        if index < len(children):
            frame[2] += 1
            child = children[index]
            if not isinstance(child, (Mapping, list)):
                frame[3] += 1
            elif id(child) in sizes:
                frame[3] += sizes[id(child)]
            elif id(child) in open_nodes:
                frame[3] += 1  # Recursion: bounded by the depth of the config.
            else:
                open_nodes.add(id(child))
                stack.append([child, _children(child, schema, anchors), 0, 1])
            if frame[3] > limit:
                return int(frame[3])
            continue
        stack.pop()
        open_nodes.discard(id(node))
        sizes[id(node)] = frame[3]
        if stack:
            stack[-1][3] += frame[3]
            if stack[-1][3] > limit:
                return int(stack[-1][3])
    return sizes[id(schema)]


def _node_count(schema: Any, limit: int) -> int:
    """How many nodes ``schema`` has as written; counting stops past ``limit``."""
    count, pending = 0, [schema]
    while pending and count <= limit:
        node = pending.pop()
        count += 1
        if isinstance(node, Mapping):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return count


def check_schema_bounds(schema: Mapping[str, Any], ref: str) -> None:
    """Refuse a ``config_schema`` too large to apply, as written or through its ``$ref`` fan-out.

    Args:
        schema: The declared schema (JSON data, nested at most a bounded depth).
        ref: The plugin reference as the user wrote it.

    Raises:
        PluginError: Naming the plugin's config_schema and the bound it passes.
    """
    if _node_count(schema, MAX_SCHEMA_NODES) > MAX_SCHEMA_NODES:
        raise _too_large(ref, f"it has more than {MAX_SCHEMA_NODES} nodes")
    if expanded_size(schema, MAX_EXPANDED_SCHEMA_NODES) > MAX_EXPANDED_SCHEMA_NODES:
        raise _too_large(
            ref,
            f"with its $ref expanded it reaches more than {MAX_EXPANDED_SCHEMA_NODES} nodes (each $ref "
            "in an anyOf, oneOf or allOf multiplies what applying it costs)",
        )


def _too_large(ref: str, why: str) -> PluginError:
    return PluginError(
        f"plugin {ref!r} declares a config_schema too large to apply: {why}; describe the config "
        "with fewer nodes, and name each shared $defs entry from fewer places",
        details={"ref": ref, "reason": "invalid_config_schema"},
    )
