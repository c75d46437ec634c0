"""Lazy re-exports (PEP 562): a package names its public objects without importing their modules.

The runtime's packages re-export names whose modules pull in typer, pydantic, boto3 or
pyarrow; a sandbox worker imports the same packages and must start fast, so each name is
imported on first use. Only the standard library is imported here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a package's module-level ``__getattr__`` and ``__dir__`` for lazy names.

    Args:
        package: The package's ``__name__`` (relative module names resolve against it).
        homes: Public name to the module that defines it (``"._pipeline"``).
        namespace: The package's ``globals()``; a name is cached there once imported.

    Returns:
        ``(__getattr__, __dir__)`` to assign at module level.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return __getattr__, __dir__
