"""Plugin references: parse what a job file names, and load the class where the plugin runs.

A reference is one of:

* a built-in connector name: ``csv``, ``jsonl``, ``parquet``;
* ``path/to/file.py:ClassName`` (relative paths are relative to the job file's folder);
* ``package.module:ClassName`` (importable from the running Python);
* the name of an installed plugin published under the entry-point group ``dativo.plugins``.

Parsing never imports plugin code. Loading imports it, so it happens only in the process
that runs the plugin: the host for the in-process backend, the sandbox worker otherwise.
This module imports only the standard library and the SDK, so the worker can use it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dativo_plugin_sdk import (
    PLUGIN_SDK_VERSION,
    BaseReader,
    BaseWriter,
    ConfigurationError,
    PluginError,
    PluginVersionError,
    check_compatibility,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginKind",
    "PluginRef",
    "load_plugin_class",
    "plugin_info",
]

ENTRY_POINT_GROUP = "dativo.plugins"

BUILTIN_PLUGINS: dict[str, str] = {
    "csv": "dativo_runtime.connectors:CsvReader",
    "jsonl": "dativo_runtime.connectors:JsonlReader",
    "parquet": "dativo_runtime.connectors:ParquetWriter",
}
"""Built-in connector names and the classes they stand for."""

PluginKind = Literal["builtin", "file", "module", "entry_point"]

_MODULE_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_ENTRY_POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PluginRef:
    """A parsed plugin reference; nothing is imported until :func:`load_plugin_class`.

    Args:
        ref: The reference as written in the job file.
        kind: ``builtin``, ``file``, ``module`` or ``entry_point``.
        target: For ``file``: the absolute ``.py`` path; for ``module``/``builtin``:
            ``package.module``; for ``entry_point``: the entry-point name.
        class_name: The class to load (empty for an entry point, which names it itself).
    """

    ref: str
    kind: PluginKind
    target: str
    class_name: str = ""

    @classmethod
    def parse(cls, ref: str, *, base_dir: Path | None = None) -> PluginRef:
        """Parse a reference string.

        Args:
            ref: ``csv``, ``path/x.py:Class``, ``pkg.mod:Class`` or an entry-point name.
            base_dir: Folder that relative file paths are relative to (the job file's).

        Returns:
            The parsed reference.

        Raises:
            ConfigurationError: If ``ref`` matches none of the four forms.
        """
        text = (ref or "").strip()
        if not text:
            raise ConfigurationError(
                "a plugin reference is empty; name a built-in (csv, jsonl, parquet), "
                "'path/to/file.py:ClassName', 'package.module:ClassName' or an installed plugin"
            )
        if text in BUILTIN_PLUGINS:
            module, _, class_name = BUILTIN_PLUGINS[text].partition(":")
            return cls(ref=text, kind="builtin", target=module, class_name=class_name)
        if ":" in text:
            location, _, class_name = text.rpartition(":")
            if location.endswith(".py") or "/" in location or "\\" in location:
                if not re.fullmatch(r"[A-Za-z_]\w*", class_name):
                    raise ConfigurationError(f"plugin reference {text!r}: {class_name!r} is not a class name")
                path = Path(location).expanduser()
                if not path.is_absolute():
                    path = (base_dir or Path.cwd()) / path
                return cls(ref=text, kind="file", target=str(path.resolve()), class_name=class_name)
            if _MODULE_REF.match(text):
                return cls(ref=text, kind="module", target=location, class_name=class_name)
        elif _ENTRY_POINT_NAME.match(text):
            return cls(ref=text, kind="entry_point", target=text)
        raise ConfigurationError(
            f"plugin reference {text!r} is not understood; use a built-in name (csv, jsonl, parquet), "
            "'path/to/file.py:ClassName', 'package.module:ClassName', or the name of a plugin installed "
            f"under the entry-point group {ENTRY_POINT_GROUP!r}"
        )

    @property
    def plugin_dir(self) -> Path | None:
        """The folder of a file plugin (what a sandbox mounts read-only), else ``None``."""
        return Path(self.target).parent if self.kind == "file" else None

    def to_dict(self) -> dict[str, str]:
        """Return the reference as JSON data (sent to a sandbox worker)."""
        return {"ref": self.ref, "kind": self.kind, "target": self.target, "class_name": self.class_name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PluginRef:
        """Rebuild a reference from :meth:`to_dict` output."""
        return cls(
            ref=data["ref"], kind=data["kind"], target=data["target"], class_name=data.get("class_name", "")
        )


_WHERE_INSTALLED = (
    ". A sandboxed plugin is looked up in the sandbox's own Python: the runtime's environment "
    "under 'process' (editable installs outside it are not mounted) and the image under 'docker' "
    "(build one that holds the package with `dativo-run sandbox build-image --requirements FILE`)"
)


def _unreadable(path: Path, ref: str) -> ConfigurationError:
    return ConfigurationError(
        f"plugin file {str(path)!r} (from reference {ref!r}) cannot be read: permission denied. "
        "A sandboxed plugin runs as an unprivileged user, so make the file readable and every "
        "folder above it searchable by others (chmod o+r FILE; chmod o+x on its folders), or "
        "move the plugin to a shared folder"
    )


def _import_file(path: Path, ref: str) -> Any:
    try:
        exists = path.is_file()
    except PermissionError:
        raise _unreadable(path, ref) from None
    if not exists:
        raise ConfigurationError(f"plugin file {str(path)!r} (from reference {ref!r}) does not exist")
    if not os.access(path, os.R_OK):
        raise _unreadable(path, ref)
    module_name = "dativo_plugin_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"plugin file {str(path)!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Let the plugin import modules that sit beside it.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PluginError(
            f"importing plugin file {str(path)!r} failed: {type(exc).__name__}: {exc}",
            details={"ref": ref, "exception_type": type(exc).__name__},
        ) from exc
    return module


def _import_module(name: str, ref: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"plugin module {name!r} (from reference {ref!r}) is not installed or not importable; "
                f"install the package that provides it or fix the reference{_WHERE_INSTALLED}"
            ) from exc
        raise PluginError(f"importing plugin module {name!r} failed: {exc}", details={"ref": ref}) from exc
    except Exception as exc:
        raise PluginError(
            f"importing plugin module {name!r} failed: {type(exc).__name__}: {exc}",
            details={"ref": ref, "exception_type": type(exc).__name__},
        ) from exc


def _entry_point_target(name: str) -> Any:
    from importlib.metadata import entry_points  # Only here: the sandbox worker starts faster.

    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        installed = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        known = ", ".join(sorted(BUILTIN_PLUGINS) + installed)
        raise ConfigurationError(
            f"no plugin named {name!r}: it is neither a built-in nor installed under the entry-point "
            f"group {ENTRY_POINT_GROUP!r}. Known plugins: {known}. Install the plugin's package, or "
            f"reference it as 'path/to/file.py:ClassName' or 'package.module:ClassName'{_WHERE_INSTALLED}"
        )
    try:
        return matches[0].load()
    except Exception as exc:
        raise PluginError(
            f"loading installed plugin {name!r} ({matches[0].value}) failed: {type(exc).__name__}: {exc}",
            details={"ref": name},
        ) from exc


def load_plugin_class(
    ref: PluginRef,
    *,
    expected: type[BaseReader] | type[BaseWriter] | None = None,
    sdk_version: str = PLUGIN_SDK_VERSION,
    check_sdk: bool = True,
) -> type[Any]:
    """Import the plugin class a reference names and check it before anything runs.

    Args:
        ref: The parsed reference.
        expected: ``BaseReader`` or ``BaseWriter`` when the job needs one of them.
        sdk_version: The SDK version to check ``requires_sdk`` against.
        check_sdk: Enforce ``requires_sdk`` (``plugins inspect`` turns this off to report
            an incompatible plugin instead of failing).

    Returns:
        The plugin class.

    Raises:
        ConfigurationError: If the file, module, class or entry point does not exist.
        ConfigurationError: Also if the reference names something that is not a plugin
            class, or a plugin of the wrong kind (a writer as a source).
        PluginError: If importing the plugin's code fails, or its class is abstract.
        PluginVersionError: If the plugin is incompatible with the SDK.
    """
    if ref.kind == "file":
        obj = getattr(_import_file(Path(ref.target), ref.ref), ref.class_name, None)
    elif ref.kind in ("module", "builtin"):
        obj = _import_module(ref.target, ref.ref)
        for part in ref.class_name.split("."):
            obj = getattr(obj, part, None)
    else:
        obj = _entry_point_target(ref.target)
    if obj is None:
        raise ConfigurationError(
            f"plugin reference {ref.ref!r}: {ref.target} has no class {ref.class_name!r}; check the spelling"
        )
    if not inspect.isclass(obj) or not issubclass(obj, (BaseReader, BaseWriter)):
        raise ConfigurationError(
            f"plugin reference {ref.ref!r} names {obj!r}, which is not a subclass of "
            "dativo_plugin_sdk.BaseReader or BaseWriter",
            details={"ref": ref.ref},
        )
    if expected is not None and not issubclass(obj, expected):
        role = "source (a BaseReader)" if expected is BaseReader else "target (a BaseWriter)"
        raise ConfigurationError(
            f"plugin reference {ref.ref!r} names {obj.__name__}, which cannot be used as a {role}",
            details={"ref": ref.ref},
        )
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise PluginError(
            f"plugin class {obj.__name__} ({ref.ref!r}) is abstract: implement {missing}",
            details={"ref": ref.ref},
        )
    if check_sdk:
        try:
            check_compatibility(obj, sdk_version)
        except PluginVersionError as exc:
            if ref.kind != "file":
                raise
            # A file plugin's module has a generated name; say the reference the user wrote.
            internal = f"{obj.__module__}.{obj.__qualname__}"
            raise PluginVersionError(
                exc.message.replace(internal, repr(ref.ref)),
                details={**exc.details, "plugin": ref.ref},
            ) from None
    return obj


@dataclass(frozen=True)
class PluginInfo:
    """What a worker reports about a loaded plugin (the handshake).

    Args:
        ref: The reference as written.
        class_name: ``module.ClassName`` of the loaded class.
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
    def from_dict(cls, data: dict[str, Any]) -> PluginInfo:
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
    return PluginInfo(
        ref=ref.ref,
        class_name=f"{plugin_cls.__module__}.{plugin_cls.__qualname__}",
        role=role,
        sdk_version=PLUGIN_SDK_VERSION,
        plugin_version=None if version is None else str(version),
        requires_sdk=getattr(plugin_cls, "requires_sdk", None),
        capabilities=tuple(sorted(capabilities)),
    )
