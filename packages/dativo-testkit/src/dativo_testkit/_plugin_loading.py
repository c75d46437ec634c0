"""Loading a plugin class from a reference, and a config from a JSON or YAML file."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import Column, ConfigurationError, PluginError

__all__ = ["FILE_MODULE_PREFIX", "load_config_file", "load_plugin_class", "load_schema_file"]

FILE_MODULE_PREFIX = "_dativo_plugin_"
"""Prefix of the private module names plugin files are imported under."""


def _looks_like_path(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or os.sep in module_part


def _load_file_module(path: Path, ref: str) -> Any:
    resolved = path.resolve()
    if not resolved.is_file():
        raise PluginError(f"plugin reference {ref!r}: no such file {str(path)!r}")
    digest = hashlib.sha1(str(resolved).encode(), usedforsecurity=False).hexdigest()[:10]
    name = f"{FILE_MODULE_PREFIX}{resolved.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin reference {ref!r}: cannot load {str(path)!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise PluginError(
            f"plugin reference {ref!r}: importing {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def load_plugin_class(ref: str) -> type[Any]:
    """Load a plugin class from ``path/to/file.py:ClassName`` or ``package.module:ClassName``.

    A file is imported under a private module name derived from its absolute path, so two
    files with the same name do not clash, and loading the same file twice returns the
    same class.

    Args:
        ref: The reference; the part after the last ``:`` may be dotted (``Outer.Inner``).

    Returns:
        The class.

    Raises:
        PluginError: If the reference is malformed, the file or module cannot be
            imported, the name is missing, or it is not a class. The message says which.
    """
    module_part, sep, attribute = ref.rpartition(":")
    if not sep or not module_part or not attribute:
        raise PluginError(
            f"plugin reference {ref!r} must look like 'path/to/file.py:ClassName' or "
            "'package.module:ClassName'"
        )
    if _looks_like_path(module_part):
        module = _load_file_module(Path(module_part), ref)
    else:
        try:
            module = importlib.import_module(module_part)
        except Exception as exc:
            raise PluginError(
                f"plugin reference {ref!r}: cannot import module {module_part!r}: {type(exc).__name__}: {exc}"
            ) from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PluginError(
                f"plugin reference {ref!r}: {module_part!r} has no attribute {attribute!r}"
            ) from None
    if not isinstance(target, type):
        raise PluginError(
            f"plugin reference {ref!r}: {attribute!r} is a {type(target).__name__}, not a class"
        )
    return target


def _read_structured_file(path: str | os.PathLike[str], what: str) -> Any:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigurationError(f"cannot read {what} file {str(file)!r}: {reason}") from None
    if file.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigurationError(
                f"{what} file {str(file)!r} is YAML, but PyYAML is not installed: "
                "pip install pyyaml, or give the file as JSON"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{what} file {str(file)!r} is not valid YAML: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{what} file {str(file)!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
            f"{exc.msg}); "
            "name YAML files *.yaml or *.yml"
        ) from None


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a plugin config from a JSON file, or a YAML file (``*.yaml``/``*.yml``, needs PyYAML).

    Args:
        path: The file.

    Returns:
        The config mapping.

    Raises:
        ConfigurationError: If the file cannot be read or parsed, or does not hold a mapping.
    """
    data = _read_structured_file(path, "config")
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"config file {str(path)!r} must hold a mapping (a JSON object), not a {type(data).__name__}"
        )
    return data


def load_schema_file(path: str | os.PathLike[str]) -> tuple[Column, ...]:
    """Read a stream schema (a list of columns, or ``{"columns": [...]}``) from JSON or YAML.

    Raises:
        ConfigurationError: If the file cannot be read or does not hold valid columns.
    """
    data = _read_structured_file(path, "schema")
    if isinstance(data, dict):
        data = data.get("columns")
    if not isinstance(data, list) or not data:
        raise ConfigurationError(f"schema file {str(path)!r} must hold a non-empty list of columns")
    try:
        return tuple(Column.from_dict(c) for c in data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigurationError(
            f"schema file {str(path)!r}: each column needs 'name' and 'type' (and optional 'nullable'): {exc}"
        ) from None
