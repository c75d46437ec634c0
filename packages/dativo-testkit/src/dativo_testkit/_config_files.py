"""Reading a plugin config or a stream schema from a JSON or YAML file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import Column, ConfigurationError

__all__ = ["load_config_file", "load_schema_file"]


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
