"""Reading a plugin class's ``config_schema`` where the plugin is loaded (a worker; the host for ``none``).

A reader or writer may declare ``config_schema``, a class attribute holding a JSON Schema
(draft 2020-12) of its ``config``. It is not part of the SDK's base classes: the runtime
reads it with ``getattr``. It must be JSON data, because a sandbox worker sends it to the
host (which validates the config against it before the plugin is built); this module
refuses anything else, naming the plugin. Whether it is a valid JSON Schema is checked by
the host (:mod:`dativo_runtime._plugins._config_spec`), which has the validator.

Standard library and SDK only: this runs inside the sandbox.
"""

from __future__ import annotations

import json
from typing import Any

from dativo_plugin_sdk import PluginError

__all__ = ["CONFIG_SCHEMA_ATTRIBUTE", "read_config_schema"]

CONFIG_SCHEMA_ATTRIBUTE = "config_schema"
"""The class attribute a plugin declares its config spec in."""


def _invalid(ref: str, problem: str) -> PluginError:
    return PluginError(
        f"plugin {ref!r} declares an invalid config_schema: {problem}; config_schema must be a dict "
        "holding a JSON Schema (draft 2020-12) of the plugin's config, made of JSON data only "
        "(dicts with string keys, lists, strings, finite numbers, booleans, None)",
        details={"ref": ref, "reason": "invalid_config_schema"},
    )


def _non_string_key(value: Any, depth: int = 0) -> Any:
    """The first dict key under ``value`` that is not a string (JSON would silently turn it into one)."""
    if depth > 100:
        return None  # json.dumps reports what is this deep (or circular) itself.
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return key
            found = _non_string_key(item, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for item in value:
            found = _non_string_key(item, depth + 1)
            if found is not None:
                return found
    return None


def read_config_schema(plugin_cls: type[Any], ref: str) -> dict[str, Any] | None:
    """Return the plugin's ``config_schema`` as plain JSON data, or ``None`` when it declares none.

    Args:
        plugin_cls: The loaded plugin class.
        ref: The plugin reference as the user wrote it, for messages.

    Returns:
        A copy of the schema made of JSON types only (what crosses the sandbox boundary).

    Raises:
        PluginError: If the attribute is not a dict, or holds something that is not JSON.
    """
    value = getattr(plugin_cls, CONFIG_SCHEMA_ATTRIBUTE, None)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid(ref, f"it is a {type(value).__name__}, not a dict")
    key = _non_string_key(value)
    if key is not None:
        raise _invalid(ref, f"it has a key that is not a string ({key!r})")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _invalid(ref, f"it is not JSON data ({exc})") from None
    copy: dict[str, Any] = json.loads(text)
    return copy
