"""Conformance under a sandbox: the plugin runs in a ``dativo-run`` sandbox worker, not in this process.

The sandboxes belong to ``dativo-runtime``, which the testkit never imports: the runtime
registers a factory under the entry point ``sandbox`` of the group ``dativo.conformance``,
and :func:`sandboxed_plugin` loads it from the installed packages' metadata. The factory
imports the plugin inside the sandbox and yields a ``BaseReader`` or ``BaseWriter`` class
whose instances forward every call to a sandbox session; the checks run against that class
as they run against the plugin itself.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import ConfigurationError
from dativo_plugin_sdk._loading import plugin_file

__all__ = [
    "IN_PROCESS_ONLY",
    "SANDBOXES",
    "SANDBOX_ENTRY_POINT",
    "SANDBOX_ENTRY_POINT_GROUP",
    "plugin_reference",
    "sandbox_backend",
    "sandboxed_plugin",
]

SANDBOXES = ("none", "process", "docker")
"""``none`` runs the plugin in this process; ``process`` (bubblewrap) and ``docker`` in a sandbox worker."""
SANDBOX_ENTRY_POINT_GROUP = "dativo.conformance"
SANDBOX_ENTRY_POINT = "sandbox"

IN_PROCESS_ONLY = {
    "reader.extract_streams": (
        "measured in-process only: from a sandbox, batches cross the worker protocol one by one "
        "whatever the plugin does, so this process cannot see whether it read the source whole; run "
        "the suite without --sandbox for this check"
    ),
    "reader.close_releases_resources": (
        "measured in-process only: a sandboxed plugin's threads and descriptors live in its worker, "
        "which ends with the session; run the suite without --sandbox for this check"
    ),
    "writer.close_releases_resources": (
        "measured in-process only: a sandboxed plugin's threads and descriptors live in its worker, "
        "which ends with the session; run the suite without --sandbox for this check"
    ),
}
"""Checks that measure this process, so they are skipped (saying why) when the plugin is sandboxed."""


def sandbox_backend(sandbox: str | None) -> str | None:
    """Return the sandbox backend to use, or ``None`` to run the plugin in this process.

    Raises:
        ValueError: If ``sandbox`` is not one of :data:`SANDBOXES` (or ``None``).
    """
    if sandbox is None or sandbox == "none":
        return None
    if sandbox not in SANDBOXES:
        raise ValueError(f"sandbox must be one of {', '.join(SANDBOXES)}, got {sandbox!r}")
    return sandbox


def plugin_reference(plugin_class: Any) -> str:
    """The reference a sandbox worker loads ``plugin_class`` from: ``file.py:Class`` or ``module:Class``.

    Raises:
        ValueError: If the class cannot be found again by reference (it is not a class, or it
            was defined in ``__main__`` or inside a function).
    """
    if not isinstance(plugin_class, type):
        raise ValueError(
            f"a sandboxed conformance run needs a plugin class or a reference, got {plugin_class!r}"
        )
    qualname = plugin_class.__qualname__
    file = plugin_file(plugin_class)
    module = plugin_class.__module__
    if "<locals>" in qualname or (file is None and module == "__main__"):
        raise ValueError(
            f"{qualname} cannot be loaded again by reference in a sandbox (it is defined in "
            f"{'a function' if '<locals>' in qualname else '__main__'}); move it to a module or a plugin "
            "file, or pass the reference text ('path/to/file.py:Class')"
        )
    return f"{file}:{qualname}" if file else f"{module}:{qualname}"


def _factory(backend: str) -> Any:
    found = [ep for ep in entry_points(group=SANDBOX_ENTRY_POINT_GROUP) if ep.name == SANDBOX_ENTRY_POINT]
    why = "it is not installed"
    if found:
        try:
            return found[0].load()
        except Exception as exc:
            why = f"it cannot be loaded ({type(exc).__name__}: {exc})"
    raise ConfigurationError(
        f"--sandbox {backend} runs the plugin in a dativo-run sandbox, which the dativo-runtime package "
        f"provides, and {why} in this Python environment ({sys.prefix}). Install it beside "
        "dativo-testkit (pip install dativo-runtime) and check the backend with 'dativo-run sandbox "
        "doctor', or run the suite in-process, without --sandbox (or with --sandbox none)",
        details={"setting": "sandbox", "value": backend, "entry_point": SANDBOX_ENTRY_POINT_GROUP},
    )


@contextlib.contextmanager
def sandboxed_plugin(
    ref: str,
    *,
    backend: str,
    output_dir: str | os.PathLike[str] | None = None,
    network: bool = False,
    timeout: float | None = None,
) -> Iterator[type[Any]]:
    """Load ``ref`` in a ``backend`` sandbox worker and yield the class the checks run against.

    Args:
        ref: The plugin reference (a relative file path starts at the current folder).
        backend: ``process`` or ``docker``.
        output_dir: Writers: the folder mounted writable when the config names no local ``path``.
        network: Let the plugin open network connections in the sandbox.
        timeout: The checks' time limit; each sandbox session may run a little longer.

    Yields:
        A reader or writer class whose instances each run the plugin in a sandbox session;
        every session still open is closed when the context ends.

    Raises:
        ConfigurationError: If ``dativo-runtime`` is not installed, or the plugin cannot be
            imported in the sandbox (the missing module named, with how to make it available).
        DativoError: What the runtime raises when the backend does not work here
            (``SandboxError``, saying why and how to fix it).
    """
    factory = _factory(backend)
    folder = None if output_dir is None else str(Path(output_dir))
    with factory(
        ref, backend=backend, base_dir=os.getcwd(), output_dir=folder, network=network, timeout_s=timeout
    ) as plugin_class:
        yield plugin_class
