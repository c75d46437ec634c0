"""``plugins list`` and ``plugins inspect``: what is installed, and whether a plugin fits this SDK."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import DEFAULT_REQUIRES_SDK, PLUGIN_SDK_VERSION, PluginError, PluginVersionError
from dativo_plugin_sdk._compat import check_compatibility_as
from dativo_runtime._plugins._ref import ENTRY_POINT_GROUP, PluginRef
from dativo_runtime._sandbox._inprocess import describe_plugin
from dativo_runtime.connectors._registry import BUILTIN_CONNECTORS

__all__ = ["inspect_plugin", "list_plugins"]


def list_plugins() -> list[dict[str, Any]]:
    """List the built-in connectors and the plugins installed under ``dativo.plugins``.

    Returns:
        One entry per plugin: ``name``, ``kind`` (``builtin``/``entry_point``), ``target``
        (``module:Class``) and ``distribution``. Nothing is imported.
    """
    plugins: list[dict[str, Any]] = [
        {"name": name, "kind": "builtin", "target": target, "distribution": "dativo-runtime"}
        for name, target in sorted((spec.name, spec.target) for spec in BUILTIN_CONNECTORS.values())
    ]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        plugins.append(
            {
                "name": ep.name,
                "kind": "entry_point",
                "target": ep.value,
                "distribution": f"{dist.name} {dist.version}" if dist is not None else None,
            }
        )
    return plugins


def inspect_plugin(ref_text: str, *, base_dir: Path | None = None) -> dict[str, Any]:
    """Describe a plugin: version, ``requires_sdk``, compatibility with this SDK, capabilities.

    The plugin's module is imported in this process (a sandboxed runtime routes this
    through a worker instead).

    Raises:
        ConfigurationError: If the reference names nothing.
        PluginError: If the module cannot be imported or names no plugin class.
    """
    ref = PluginRef.parse(ref_text, base_dir=base_dir)
    info, cls = describe_plugin(ref)
    data = info.to_dict()
    data["kind"] = ref.kind
    # What the runtime enforces: the declared range, or the SDK's default when none is declared.
    data["effective_requires_sdk"] = info.requires_sdk or DEFAULT_REQUIRES_SDK
    try:
        check_compatibility_as(cls, ref.ref, PLUGIN_SDK_VERSION)
    except PluginVersionError as exc:
        data["compatible"] = False
        data["incompatibility"] = exc.message
    except PluginError as exc:  # pragma: no cover  (defensive)
        data["compatible"] = False
        data["incompatibility"] = exc.message
    else:
        data["compatible"] = True
    data["doc"] = (cls.__doc__ or "").strip().split("\n", 1)[0]
    return data
