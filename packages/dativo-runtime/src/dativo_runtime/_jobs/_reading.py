"""Reading a job file: strict YAML (a repeated key is an error) with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dativo_plugin_sdk import ConfigurationError

__all__ = ["read_job_yaml"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses repeated keys instead of keeping the last one."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in the same mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_job_yaml(path: Path) -> Any:
    """Read a job file as YAML, refusing a key repeated in one mapping.

    Args:
        path: The job file.

    Returns:
        The parsed document.

    Raises:
        ConfigurationError: If the file is missing, a folder, not UTF-8, unreadable or not
            YAML; the message names the file (and the line and column of a YAML error).
    """
    shown = str(path)
    if not path.exists():
        raise ConfigurationError(
            f"job file {shown!r} does not exist; check the path given to --config",
            details={"file": shown},
        )
    if path.is_dir():
        raise ConfigurationError(
            f"job file {shown!r} is a folder; pass a .yaml file to --config, or use --job-dir for a "
            "folder of jobs",
            details={"file": shown},
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"job file {shown!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 YAML",
            details={"file": shown},
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"job file {shown!r} cannot be read ({exc.strerror}); check its permissions",
            details={"file": shown},
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(
            f"job file {shown!r} is not valid YAML{where}: {problem}; fix the syntax (indentation, "
            "quotes, a missing ':')",
            details={"file": shown, "line": mark.line + 1 if mark else None},
        ) from None
    return data
