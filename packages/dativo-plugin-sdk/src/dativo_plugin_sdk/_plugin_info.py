"""What a loaded plugin declares (:class:`PluginInfo`): the sandbox worker's handshake, ``plugins inspect``.

Private but shared, like :mod:`._loading`: the sandbox worker builds it, the runtime's host
reads it back with :meth:`PluginInfo.from_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._loading import PluginRef
from ._plugin_names import plugin_display_name
from ._reader import BaseReader
from ._version import PLUGIN_SDK_VERSION
from ._writer import BaseWriter

__all__ = ["PluginInfo", "plugin_info"]


@dataclass(frozen=True)
class PluginInfo:
    """What a worker reports about a loaded plugin (the handshake).

    Args:
        ref: The reference as written.
        class_name: How to name the plugin: ``package.module.ClassName`` for a class of an
            installed module; the reference as written (``items.py:ItemsReader``) for a
            plugin file or a native library, whose module names are generated.
        role: ``reader`` or ``writer``.
        sdk_version: The SDK version the plugin runs with.
        plugin_version: The plugin's ``__version__`` (``None`` when undeclared).
        requires_sdk: The plugin's ``requires_sdk`` (``None`` when undeclared).
        capabilities: Sorted names such as ``check_connection``, ``discover``, ``incremental``.
    """

    ref: str
    class_name: str
    role: str
    sdk_version: str
    plugin_version: str | None
    requires_sdk: str | None
    capabilities: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the info as JSON data."""
        return {
            "ref": self.ref,
            "class_name": self.class_name,
            "role": self.role,
            "sdk_version": self.sdk_version,
            "plugin_version": self.plugin_version,
            "requires_sdk": self.requires_sdk,
            "capabilities": list(self.capabilities),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PluginInfo:
        """Rebuild the info from :meth:`to_dict` output."""
        return cls(
            ref=data["ref"],
            class_name=data["class_name"],
            role=data["role"],
            sdk_version=data["sdk_version"],
            plugin_version=data.get("plugin_version"),
            requires_sdk=data.get("requires_sdk"),
            capabilities=tuple(data.get("capabilities") or ()),
        )


def plugin_info(plugin_cls: type[Any], ref: PluginRef) -> PluginInfo:
    """Describe a loaded plugin class for the handshake and ``plugins inspect``.

    Args:
        plugin_cls: A class returned by :func:`load_plugin_class`.
        ref: The reference it was loaded from.

    Returns:
        The plugin's :class:`PluginInfo`.
    """
    role = "reader" if issubclass(plugin_cls, BaseReader) else "writer"
    base: type[Any] = BaseReader if role == "reader" else BaseWriter
    capabilities = []
    for method in ("check_connection", "discover", "get_total_records_estimate", "abort", "commit_files"):
        if hasattr(base, method) and getattr(plugin_cls, method) is not getattr(base, method):
            capabilities.append(method)
    if role == "reader" and getattr(plugin_cls, "supports_incremental", False):
        capabilities.append("incremental")
    version = getattr(plugin_cls, "__version__", None)
    own_module = ref.kind in ("builtin", "module", "entry_point")
    return PluginInfo(
        ref=ref.ref,
        class_name=plugin_display_name(plugin_cls) if own_module else ref.ref,
        role=role,
        sdk_version=PLUGIN_SDK_VERSION,
        plugin_version=None if version is None else str(version),
        requires_sdk=getattr(plugin_cls, "requires_sdk", None),
        capabilities=tuple(sorted(capabilities)),
    )
