"""``plugins list`` and ``plugins inspect``: what is installed, and whether a plugin fits this SDK."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from dativo_plugin_sdk import DEFAULT_REQUIRES_SDK, PLUGIN_SDK_VERSION, PluginError, PluginVersionError
from dativo_plugin_sdk._compat import check_compatibility_as
from dativo_runtime._jobs._model import job_json_schema
from dativo_runtime._plugins._config_spec import check_config_schema, read_config_schema, secret_paths
from dativo_runtime._plugins._ref import ENTRY_POINT_GROUP, PluginRef
from dativo_runtime._sandbox._inprocess import describe_plugin
from dativo_runtime.connectors._registry import BUILTIN_CONNECTORS

__all__ = ["inspect_plugin", "list_plugins", "plugin_job_schema"]


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
    """Describe a plugin: version, ``requires_sdk``, compatibility with this SDK, capabilities, config spec.

    ``config_schema`` is the plugin's declared JSON Schema of its config (``None`` when it
    declares none) and ``secrets`` the key paths it marks secret.

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
    config_schema = _config_schema_of(cls, ref)
    data["config_schema"] = config_schema
    data["secrets"] = secret_paths(config_schema) if config_schema is not None else []
    return data


def _config_schema_of(cls: type[Any], ref: PluginRef) -> dict[str, Any] | None:
    """The plugin's ``config_schema``, checked to be a JSON Schema (``None`` when it declares none)."""
    config_schema = read_config_schema(cls, ref.ref)
    if config_schema is not None:
        check_config_schema(config_schema, ref.ref)
    return config_schema


def plugin_job_schema(ref_text: str, *, base_dir: Path | None = None) -> dict[str, Any]:
    """The job-file JSON Schema with a plugin's ``config_schema`` at ``source.config`` or ``target.config``.

    The plugin's module is imported in this process, as for :func:`inspect_plugin`.

    Args:
        ref_text: The plugin reference.
        base_dir: Folder relative file references are resolved against.

    Returns:
        The schema; ``config`` is embedded where the plugin's kind goes (a reader's at
        ``source.config``, a writer's at ``target.config``), and stays open when the plugin
        declares no ``config_schema``.

    Raises:
        ConfigurationError: If the reference names nothing.
        PluginError: If the module cannot be imported or its ``config_schema`` is invalid.
    """
    ref = PluginRef.parse(ref_text, base_dir=base_dir)
    info, cls = describe_plugin(ref)
    role: Literal["source", "target"] = "source" if info.role == "reader" else "target"
    return job_json_schema(_config_schema_of(cls, ref), role=role)
