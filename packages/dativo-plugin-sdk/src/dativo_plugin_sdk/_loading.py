"""Plugin references and loading the class one names: the one loader Dativo's tools share.

Private but shared: ``dativo-run`` (its host and its sandbox worker) and
``dativo-conformance`` both load plugins through this module, so a reference means the
same thing, and fails the same way, in each. It imports only the standard library and the
SDK's own modules. A reference is one of:

* a built-in name (``csv``), looked up in the mapping of names to ``module:Class`` the
  caller passes (the runtime passes its connector registry; other tools read the names the
  runtime publishes under the entry-point group ``dativo.builtins``, see
  :func:`published_builtins`);
* ``path/to/file.py:ClassName``, relative to a base folder (the job file's); the file is
  imported with its own folder importable, so ``from helpers import x`` finds a sibling
  ``helpers.py``;
* ``package.module:ClassName`` (the class part may be dotted);
* the name of a plugin installed under the entry-point group ``dativo.plugins``;
* ``path/to/libx.so:create_reader``, a native library with the dativo-ingest ABI
  (:mod:`._native`), always a reader. Loading its class does not load the library.

Parsing never imports plugin code; loading does. A plugin that cannot be found or
imported is a :class:`~dativo_plugin_sdk.ConfigurationError` naming the reference, the
file and the line, and the fix. A file is imported under a hidden module name
(``dativo_plugin_<hash>``) that no message shows.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Literal

from ._compat import check_compatibility_as
from ._errors import ConfigurationError, PluginError
from ._native import NATIVE_SUFFIXES, native_reader_class
from ._plugin_names import FILE_MODULE_PREFIX, plugin_file
from ._reader import BaseReader
from ._version import PLUGIN_SDK_VERSION
from ._writer import BaseWriter

__all__ = [
    "BUILTIN_ENTRY_POINT_GROUP",
    "ENTRY_POINT_GROUP",
    "FILE_MODULE_PREFIX",
    "PluginKind",
    "PluginRef",
    "load_plugin_class",
    "plugin_file",
    "published_builtins",
    "resolve_plugin",
]

ENTRY_POINT_GROUP = "dativo.plugins"
"""The entry-point group installed plugins publish themselves under."""

BUILTIN_ENTRY_POINT_GROUP = "dativo.builtins"
"""The entry-point group the runtime publishes its built-in connectors under."""

PluginKind = Literal["builtin", "file", "module", "entry_point", "native"]

_MODULE_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_ENTRY_POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CLASS_NAME = re.compile(r"[A-Za-z_]\w*")

_WHERE_INSTALLED = (
    ". A sandboxed plugin is looked up in the sandbox's own Python: the runtime's environment "
    "under 'process' (editable installs outside it are not mounted) and the image under 'docker' "
    "(build one that holds the package with `dativo-run sandbox build-image --requirements FILE`)"
)


def _forms(builtins: Iterable[str]) -> str:
    names = ", ".join(sorted(builtins))
    builtin = f"a built-in name ({names}), " if names else ""
    return (
        f"{builtin}'path/to/file.py:ClassName', 'package.module:ClassName', 'path/to/libx.so:create_reader'"
    )


@dataclass(frozen=True)
class PluginRef:
    """A parsed plugin reference; nothing is imported until :func:`load_plugin_class`.

    Args:
        ref: The reference as written.
        kind: ``builtin``, ``file``, ``module``, ``entry_point`` or ``native``.
        target: For ``file``: the absolute ``.py`` path; for ``native``: the absolute path
            of the library; for ``module``/``builtin``: ``package.module``; for
            ``entry_point``: the entry-point name.
        class_name: The class to load (empty for an entry point, which names it itself);
            for ``native``, the library's constructor function (``create_reader``).
    """

    ref: str
    kind: PluginKind
    target: str
    class_name: str = ""

    @classmethod
    def parse(
        cls, ref: str, *, base_dir: Path | None = None, builtins: Mapping[str, str] | None = None
    ) -> PluginRef:
        """Parse a reference string.

        Args:
            ref: A built-in name, ``path/x.py:Class``, ``pkg.mod:Class``, an entry-point name or
                ``path/libx.so:create_reader``.
            base_dir: Folder that relative file paths are relative to (default: the current one).
            builtins: Built-in names and the ``module:Class`` each stands for.

        Returns:
            The parsed reference.

        Raises:
            ConfigurationError: If ``ref`` matches none of the five forms.
        """
        builtins = builtins or {}
        text = (ref or "").strip()
        if not text:
            raise ConfigurationError(
                f"a plugin reference is empty; name {_forms(builtins)} or an installed plugin"
            )
        if text in builtins:
            module, _, class_name = builtins[text].partition(":")
            return cls(ref=text, kind="builtin", target=module, class_name=class_name)
        if ":" in text:
            location, _, class_name = text.rpartition(":")
            if location.endswith(NATIVE_SUFFIXES):
                if not _CLASS_NAME.fullmatch(class_name):
                    raise ConfigurationError(
                        f"plugin reference {text!r}: {class_name!r} is not the name of a C function; "
                        "name the library's constructor, as in 'path/to/libx.so:create_reader'"
                    )
                path = Path(location).expanduser()
                if not path.is_absolute():
                    path = (base_dir or Path.cwd()) / path
                return cls(ref=text, kind="native", target=str(path.resolve()), class_name=class_name)
            if location.endswith(".py") or "/" in location or "\\" in location:
                if not _CLASS_NAME.fullmatch(class_name):
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
            f"plugin reference {text!r} is not understood; use {_forms(builtins)}, or the name of a "
            f"plugin installed under the entry-point group {ENTRY_POINT_GROUP!r}"
        )

    @property
    def plugin_dir(self) -> Path | None:
        """The folder of a file plugin or native library (what a sandbox mounts read-only), else ``None``."""
        return Path(self.target).parent if self.kind in ("file", "native") else None

    def to_dict(self) -> dict[str, str]:
        """Return the reference as JSON data (sent to a sandbox worker)."""
        return {"ref": self.ref, "kind": self.kind, "target": self.target, "class_name": self.class_name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PluginRef:
        """Rebuild a reference from :meth:`to_dict` output."""
        return cls(
            ref=data["ref"], kind=data["kind"], target=data["target"], class_name=data.get("class_name", "")
        )


def published_builtins() -> dict[str, str]:
    """The built-in names installed tools publish under :data:`BUILTIN_ENTRY_POINT_GROUP`.

    Returns:
        Each name and the ``module:Class`` it stands for (empty when no runtime is installed).
        Nothing is imported.
    """
    from importlib.metadata import entry_points  # Only here: the sandbox worker starts faster.

    found: dict[str, str] = {}
    for ep in entry_points(group=BUILTIN_ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


# Where an import failed ----------------------------------------------------------------


def _frames(tb: TracebackType | None) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(tb) if not f.filename.startswith("<frozen")]


def _failure_site(exc: BaseException, own_files: Iterable[str]) -> tuple[str | None, int | None]:
    """The file and line an import failed at: the plugin's own frame where there is one."""
    if isinstance(exc, SyntaxError) and exc.filename and not exc.filename.startswith("<"):
        return exc.filename, exc.lineno
    frames = _frames(exc.__traceback__)
    own = {os.path.realpath(f) for f in own_files}
    for frame in reversed(frames):
        if os.path.realpath(frame.filename) in own:
            return frame.filename, frame.lineno
    for frame in reversed(frames):  # A module's own code: the innermost module body that ran.
        if frame.name == "<module>":
            return frame.filename, frame.lineno
    return (frames[-1].filename, frames[-1].lineno) if frames else (None, None)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _import_failed(
    what: str, ref: str, exc: BaseException, own_files: Iterable[str], hidden: tuple[str, str] | None = None
) -> ConfigurationError:
    """A ConfigurationError for code that raised while being imported."""
    file, line = _failure_site(exc, own_files)
    reason = _reason(exc)
    if hidden is not None:  # Say the file the user wrote, never the generated module name.
        reason = reason.replace(hidden[0], hidden[1])
    where = f" at {file}, line {line}" if file and line else (f" in {file}" if file else "")
    fix = (
        "fix the syntax error"
        if isinstance(exc, SyntaxError)
        else "install what it imports or fix the code that raised"
    )
    return ConfigurationError(
        f"{what} (from reference {ref!r}) cannot be imported: {reason}{where}; {fix}",
        details={"ref": ref, "file": file, "line": line, "exception_type": type(exc).__name__},
    )


# Importing -----------------------------------------------------------------------------


def _unreadable(path: Path, ref: str) -> ConfigurationError:
    return ConfigurationError(
        f"plugin file {str(path)!r} (from reference {ref!r}) cannot be read: permission denied. "
        "A sandboxed plugin runs as an unprivileged user, so make the file readable and every "
        "folder above it searchable by others (chmod o+r FILE; chmod o+x on its folders), or "
        "move the plugin to a shared folder",
        details={"ref": ref, "file": str(path)},
    )


def _hidden_module_name(path: Path) -> str:
    return FILE_MODULE_PREFIX + hashlib.sha1(str(path).encode(), usedforsecurity=False).hexdigest()[:12]


def _import_file(path: Path, ref: str) -> ModuleType:
    try:
        exists = path.is_file()
    except PermissionError:
        raise _unreadable(path, ref) from None
    if not exists:
        raise ConfigurationError(
            f"plugin file {str(path)!r} (from reference {ref!r}) does not exist; fix the path in the "
            "reference (a relative path starts at the job file's folder; for dativo-conformance, at "
            "the current folder)",
            details={"ref": ref, "file": str(path)},
        )
    if not os.access(path, os.R_OK):
        raise _unreadable(path, ref)
    module_name = _hidden_module_name(path)
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(
            f"plugin file {str(path)!r} (from reference {ref!r}) cannot be imported as a Python module; "
            "name a .py file",
            details={"ref": ref, "file": str(path)},
        )
    module = importlib.util.module_from_spec(spec)
    # Let the plugin import modules that sit beside it (a plugin folder of its own).
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise _import_failed(
            f"plugin file {str(path)!r}", ref, exc, [str(path)], hidden=(module_name, path.name)
        ) from exc
    return module


def _check_library(path: Path, ref: str) -> None:
    """Refuse a native library that is missing or unreadable, without loading it."""
    try:
        exists = path.is_file()
    except PermissionError:
        raise _unreadable(path, ref) from None
    if not exists:
        raise ConfigurationError(
            f"native library {str(path)!r} (from reference {ref!r}) does not exist; build it (cargo build "
            "--release, or cc -shared -fPIC) and fix the path in the reference (a relative path starts at "
            "the job file's folder; for dativo-conformance, at the current folder)",
            details={"ref": ref, "library": str(path)},
        )
    if not os.access(path, os.R_OK):
        raise _unreadable(path, ref)


def _import_module(name: str, ref: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"plugin module {name!r} (from reference {ref!r}) is not installed or not importable; "
                f"install the package that provides it or fix the reference{_WHERE_INSTALLED}",
                details={"ref": ref},
            ) from exc
        raise _import_failed(f"plugin module {name!r}", ref, exc, ()) from exc
    except Exception as exc:
        raise _import_failed(f"plugin module {name!r}", ref, exc, ()) from exc


def _entry_point_target(name: str, builtins: Iterable[str]) -> Any:
    from importlib.metadata import entry_points  # Only here: the sandbox worker starts faster.

    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        installed = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
        known = ", ".join(sorted(set(builtins) | set(published_builtins())) + sorted(installed))
        raise ConfigurationError(
            f"no plugin named {name!r}: it is neither a built-in nor installed under the entry-point "
            f"group {ENTRY_POINT_GROUP!r}. Known plugins: {known or 'none'}. Install the plugin's package, "
            f"or reference it as 'path/to/file.py:ClassName' or 'package.module:ClassName'{_WHERE_INSTALLED}",
            details={"ref": name},
        )
    try:
        return matches[0].load()
    except Exception as exc:
        raise _import_failed(f"installed plugin {name!r} ({matches[0].value})", name, exc, ()) from exc


def _classes_in(module: ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, (BaseReader, BaseWriter))
        and value not in (BaseReader, BaseWriter)
    )


def resolve_plugin(ref: PluginRef, *, builtins: Mapping[str, str] | None = None) -> Any:
    """Import the object a reference names, checking only that it exists.

    Args:
        ref: The parsed reference.
        builtins: The caller's built-in names (listed when an entry-point name is unknown).

    Returns:
        Whatever the reference names (normally a class).

    Raises:
        ConfigurationError: If the file, module, entry point or name does not exist, or
            importing the plugin's code fails (its file and line are named).
    """
    if ref.kind == "entry_point":
        return _entry_point_target(ref.target, builtins or {})
    if ref.kind == "native":
        _check_library(Path(ref.target), ref.ref)
        return native_reader_class(ref.target, ref.class_name, ref.ref)
    if ref.kind == "file":
        module = _import_file(Path(ref.target), ref.ref)
        where = f"file {ref.target!r}"
    else:
        module = _import_module(ref.target, ref.ref)
        where = f"module {ref.target!r}"
    obj: Any = module
    for part in ref.class_name.split("."):
        obj = getattr(obj, part, None)
    if obj is None:
        defined = _classes_in(module)
        hint = f"; plugin classes it defines: {', '.join(defined)}" if defined else ""
        raise ConfigurationError(
            f"plugin reference {ref.ref!r}: {where} has no class {ref.class_name!r}{hint}; "
            "check the spelling",
            details={"ref": ref.ref, "file": getattr(module, "__file__", None)},
        )
    return obj


def _not_a_plugin(ref: PluginRef, obj: Any) -> ConfigurationError:
    """The error for a reference that names something other than a reader or writer class."""
    if inspect.isclass(obj):
        what, name = f"class {obj.__qualname__}, which is not", obj.__name__
    else:
        what, name = f"a {type(obj).__name__} object, which is not a class and not", "MyReader"
    return ConfigurationError(
        f"plugin reference {ref.ref!r} names {what} a subclass of dativo_plugin_sdk.BaseReader or "
        f"BaseWriter; declare it as 'class {name}(BaseReader)' (or BaseWriter) with "
        "'from dativo_plugin_sdk import BaseReader', or point the reference at your reader or writer class",
        details={"ref": ref.ref},
    )


def load_plugin_class(
    ref: PluginRef,
    *,
    expected: type[BaseReader] | type[BaseWriter] | None = None,
    sdk_version: str = PLUGIN_SDK_VERSION,
    check_sdk: bool = True,
    builtins: Mapping[str, str] | None = None,
) -> type[Any]:
    """Import the plugin class a reference names and check it before anything runs.

    Args:
        ref: The parsed reference.
        expected: ``BaseReader`` or ``BaseWriter`` when the caller needs one of them.
        sdk_version: The SDK version to check ``requires_sdk`` against.
        check_sdk: Enforce ``requires_sdk`` (off to report an incompatible plugin instead).
        builtins: The caller's built-in names (listed when an entry-point name is unknown).

    Returns:
        The plugin class.

    Raises:
        ConfigurationError: If the plugin cannot be found or imported (see
            :func:`resolve_plugin`), names something that is not a plugin class, or a
            plugin of the wrong kind (a writer as a source).
        PluginError: If the class is abstract.
        PluginVersionError: If the plugin is incompatible with the SDK.
    """
    obj = resolve_plugin(ref, builtins=builtins)
    if not inspect.isclass(obj) or not issubclass(obj, (BaseReader, BaseWriter)):
        raise _not_a_plugin(ref, obj)
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
        check_compatibility_as(obj, ref.ref, sdk_version)
    return obj
