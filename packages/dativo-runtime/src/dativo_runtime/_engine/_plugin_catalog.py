"""``plugins list`` and ``plugins inspect``: what is installed, and whether a plugin fits this SDK.

Describing a plugin imports its module. Where the operator's policy (``DATIVO_RUNTIME_CONFIG``)
says ``mode: cloud``, every plugin that is not a built-in connector is imported in a sandbox
worker instead (:meth:`WorkerSandbox.inspect`), never in this process: ``plugins inspect``
and ``schema --plugin`` report what its worker declared.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal

from dativo_plugin_sdk import (
    DEFAULT_REQUIRES_SDK,
    PLUGIN_SDK_VERSION,
    ConfigurationError,
    PluginError,
    PluginVersionError,
)
from dativo_plugin_sdk._compat import check_compatibility_as
from dativo_runtime._engine._sessions import plugin_mounts
from dativo_runtime._jobs._model import job_json_schema
from dativo_runtime._plugins._config_spec import check_config_schema, read_config_schema, secret_paths
from dativo_runtime._plugins._ref import ENTRY_POINT_GROUP, PluginInfo, PluginRef
from dativo_runtime._sandbox._inprocess import describe_plugin
from dativo_runtime._sandbox._policy import OperatorPolicy, choose_sandbox
from dativo_runtime._sandbox.host._remote import WorkerSandbox
from dativo_runtime.connectors._registry import BUILTIN_CONNECTORS

__all__ = ["inspect_plugin", "list_plugins", "plugin_job_schema"]


@dataclass(frozen=True)
class _Described:
    """A plugin class as it was described, here or in a sandbox worker.

    Attributes:
        info: What the class declares (role, version, ``requires_sdk``, capabilities).
        declared: The class, or (described in a worker) a stand-in carrying its
            ``__version__`` and ``requires_sdk`` for the compatibility check.
        doc: The first line of the class's docstring (empty when described in a worker).
        config_schema: Its ``config_schema``, not yet checked.
        sandbox: Where it was imported: ``none`` (this process), ``process`` or ``docker``.
    """

    info: PluginInfo
    declared: type[Any]
    doc: str
    config_schema: dict[str, Any] | None
    sandbox: str


def _describe(ref: PluginRef, policy: OperatorPolicy | None) -> _Described:
    """Describe ``ref``: in a sandbox worker under a cloud policy (but a built-in), else here."""
    policy = policy if policy is not None else OperatorPolicy.load()
    if ref.kind == "builtin" or policy.effective_mode("self_hosted") != "cloud":
        info, cls = describe_plugin(ref)
        doc = (cls.__doc__ or "").strip().split("\n", 1)[0]
        return _Described(info, cls, doc, read_config_schema(cls, ref.ref), "none")
    sandbox = choose_sandbox("cloud", "auto", ref, policy)
    if not isinstance(sandbox, WorkerSandbox):  # pragma: no cover - cloud mode never runs a plugin here
        raise ConfigurationError(
            f"the operator's policy would import {ref.ref!r} in this process", details={"ref": ref.ref}
        )
    wheels_only = not policy.allows_source_builds("cloud")
    inspected = sandbox.inspect(ref, mounts=plugin_mounts(ref, {}, sandbox, wheels_only=wheels_only))
    info = inspected.info
    declared = type(
        "DescribedInWorker", (), {"__version__": info.plugin_version, "requires_sdk": info.requires_sdk}
    )
    return _Described(info, declared, "", inspected.config_schema, sandbox.name)


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


def inspect_plugin(
    ref_text: str, *, base_dir: Path | None = None, policy: OperatorPolicy | None = None
) -> dict[str, Any]:
    """Describe a plugin: version, ``requires_sdk``, compatibility with this SDK, capabilities, config spec.

    ``config_schema`` is the plugin's declared JSON Schema of its config (``None`` when it
    declares none), ``secrets`` the key paths it marks secret and ``sandbox`` where its
    module was imported: ``none`` (this process), or, under an operator's policy that says
    ``mode: cloud``, the sandbox whose worker described it (``doc`` is empty then).

    Args:
        ref_text: The plugin reference.
        base_dir: Folder relative file references are resolved against.
        policy: The operator's policy; :meth:`OperatorPolicy.load` (``DATIVO_RUNTIME_CONFIG``) when omitted.

    Raises:
        ConfigurationError: If the reference names nothing.
        PluginError: If the module cannot be imported or names no plugin class.
        SandboxError: If the sandbox a cloud policy calls for does not work here.
    """
    ref = PluginRef.parse(ref_text, base_dir=base_dir)
    described = _describe(ref, policy)
    info = described.info
    data = info.to_dict()
    data["kind"] = ref.kind
    # What the runtime enforces: the declared range, or the SDK's default when none is declared.
    data["effective_requires_sdk"] = info.requires_sdk or DEFAULT_REQUIRES_SDK
    try:
        check_compatibility_as(described.declared, ref.ref, PLUGIN_SDK_VERSION)
    except PluginVersionError as exc:
        data["compatible"] = False
        data["incompatibility"] = exc.message
    except PluginError as exc:  # pragma: no cover  (defensive)
        data["compatible"] = False
        data["incompatibility"] = exc.message
    else:
        data["compatible"] = True
    data["doc"] = described.doc
    config_schema = _checked_config_schema(described.config_schema, ref)
    data["config_schema"] = config_schema
    data["secrets"] = secret_paths(config_schema) if config_schema is not None else []
    data["sandbox"] = described.sandbox
    return data


def _checked_config_schema(config_schema: dict[str, Any] | None, ref: PluginRef) -> dict[str, Any] | None:
    """The plugin's ``config_schema``, checked to be a JSON Schema (``None`` when it declares none)."""
    if config_schema is not None:
        check_config_schema(config_schema, ref.ref)
    return config_schema


def plugin_job_schema(
    ref_text: str, *, base_dir: Path | None = None, policy: OperatorPolicy | None = None
) -> dict[str, Any]:
    """The job-file JSON Schema with a plugin's ``config_schema`` at ``source.config`` or ``target.config``.

    The plugin's module is imported where :func:`inspect_plugin` imports it: in a sandbox
    worker under an operator's policy that says ``mode: cloud``, else in this process.

    Args:
        ref_text: The plugin reference.
        base_dir: Folder relative file references are resolved against.
        policy: The operator's policy; :meth:`OperatorPolicy.load` (``DATIVO_RUNTIME_CONFIG``) when omitted.

    Returns:
        The schema; ``config`` is embedded where the plugin's kind goes (a reader's at
        ``source.config``, a writer's at ``target.config``), and stays open when the plugin
        declares no ``config_schema``.

    Raises:
        ConfigurationError: If the reference names nothing.
        PluginError: If the module cannot be imported or its ``config_schema`` is invalid.
        SandboxError: If the sandbox a cloud policy calls for does not work here.
    """
    ref = PluginRef.parse(ref_text, base_dir=base_dir)
    described = _describe(ref, policy)
    role: Literal["source", "target"] = "source" if described.info.role == "reader" else "target"
    return job_json_schema(_checked_config_schema(described.config_schema, ref), role=role)
