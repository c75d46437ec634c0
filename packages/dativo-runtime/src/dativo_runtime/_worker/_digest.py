"""The digest of the code that runs inside a sandbox, stored as a label on the Docker image."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc is new in 3.11; the runtime supports 3.10
    from importlib.abc import Traversable

__all__ = ["WORKER_ROOT_FILES", "worker_digest", "worker_files"]

WORKER_ROOT_FILES = ("__init__.py", "_version.py", "_lazy_exports.py")
"""Files of ``dativo_runtime`` itself that importing the worker package executes."""


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for entry in folder.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found.extend(_walk(entry, f"{prefix}{entry.name}/"))
        elif entry.name.endswith(".py"):
            found.append((prefix + entry.name, entry))
    return found


def worker_files() -> list[tuple[str, Traversable]]:
    """Every source file a sandbox worker can run, by a stable name, sorted.

    Returns:
        ``(name, file)`` pairs: all of ``dativo_runtime/_worker/``, the runtime's root
        modules its import runs, and all of the plugin SDK.
    """
    runtime = resources.files("dativo_runtime")
    files = [(f"dativo_runtime/{name}", runtime / name) for name in WORKER_ROOT_FILES]
    files += _walk(runtime / "_worker", "dativo_runtime/_worker/")
    files += _walk(resources.files("dativo_plugin_sdk"), "dativo_plugin_sdk/")
    return sorted(files, key=lambda pair: pair[0])


def worker_digest() -> str:
    """A hash over :func:`worker_files`: any change to code that runs in a sandbox changes it.

    Returns:
        16 hex digits.
    """
    digest = hashlib.sha256()
    for name, entry in worker_files():
        digest.update(name.encode() + b"\0" + entry.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
