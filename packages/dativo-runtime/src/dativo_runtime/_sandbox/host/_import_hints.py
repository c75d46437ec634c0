"""What to say when a sandboxed plugin cannot import a module: which one, and how to make it available.

A plugin that imports something only the host can see (a package installed beside the
runtime, a module on ``PYTHONPATH``, the testkit) works in-process and fails in a sandbox
with a bare ``ModuleNotFoundError``: a sandbox shows only the standard library, the SDK and
the worker's packages, the plugin's own folder and its environment. The host adds the fix to
the error the worker sent, before it is raised: :func:`add_import_hint` names the missing
module and says where to declare it (a ``requirements.txt`` beside a file plugin, an
installed plugin's package dependencies) so that it lands in the plugin's environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dativo_runtime._plugins._ref import PluginRef

__all__ = ["add_import_hint", "import_hint", "missing_module"]

_NO_MODULE = re.compile(r"No module named '([^']+)'")
_PLUGIN_MODULE = re.compile(
    r"plugin module '([^']+)' \(from reference .*\) is not installed or not importable"
)
_TEST_TIME_PACKAGES = ("dativo_testkit", "pytest", "hypothesis")


def missing_module(error: Mapping[str, Any]) -> str | None:
    """The module a worker's error says could not be found, or ``None`` for any other error.

    Args:
        error: A ``DativoError.to_dict()`` the worker sent.

    Returns:
        The dotted module name, as Python reported it.
    """
    message = str(error.get("message") or "")
    details = error.get("details")
    details = details if isinstance(details, Mapping) else {}
    if details.get("exception_type") == "ModuleNotFoundError" or "ModuleNotFoundError" in message:
        found = _NO_MODULE.search(str(details.get("exception") or "")) or _NO_MODULE.search(message)
        if found:
            return found.group(1)
    found = _PLUGIN_MODULE.search(message)
    return found.group(1) if found else None


def import_hint(module: str, backend: str, *, ref: PluginRef | None = None) -> str:
    """Say that ``module`` is missing in ``backend``, what that backend imports, and how to get it there.

    A plugin's dependencies come from its environment: a ``requirements.txt`` beside a file
    plugin, an installed plugin's own package dependencies.

    Args:
        module: The missing module (``pkg.sub`` names its top-level package ``pkg``).
        backend: ``process``, ``docker`` or ``none`` (a child worker with an environment).
        ref: The plugin, to name its folder or say it is an installed package (a file plugin
            when omitted).

    Returns:
        A few sentences, ending with the vendoring alternative for a file plugin.
    """
    package = module.split(".", maxsplit=1)[0]
    where = "the process running the plugin" if backend == "none" else f"the {backend} sandbox"
    lead = f"Module {module!r} is not available in {where}"
    installed = ref is not None and ref.kind in ("module", "entry_point")
    if package in _TEST_TIME_PACKAGES:
        own = "the plugin's own package" if installed else "the plugin's own folder (beside the plugin file)"
        return (
            f"{lead}: {package} is a test-time package, which a plugin must not depend on at run time. "
            f"Copy the code you use into {own}, which every sandbox mounts"
        )
    sees = (
        "the standard library, the plugin SDK, pyarrow, packaging, the plugin's own "
        f"{'package' if installed else 'folder'} and the plugin's environment"
    )
    if installed:
        return (
            f"{lead}, which imports only {sees}: the dependencies its package declares. Add the package "
            f"that provides {package!r} to the plugin package's dependencies (pyproject.toml "
            "[project] dependencies) and reinstall it; dativo-run builds the environment from them"
        )
    folder = ref.plugin_dir if ref is not None else None
    requirements = (
        f"{folder / 'requirements.txt'}" if folder is not None else "requirements.txt beside the plugin file"
    )
    return (
        f"{lead}, which imports only {sees}: the packages listed in a requirements.txt beside the plugin "
        f"file. Add the package that provides {package!r} to {requirements} (dativo-run installs it into "
        f"the plugin's environment; 'dativo-run plugins install' builds it ahead of time), or vendor it: "
        f"copy {package} into the plugin's own folder (beside the plugin file), which every sandbox mounts"
    )


def add_import_hint(
    error: Mapping[str, Any], backend: str, *, ref: PluginRef | None = None
) -> Mapping[str, Any]:
    """Return the worker's error with the missing module and its fix added (unchanged otherwise).

    The message gains the hint; ``details`` gains ``missing_module`` and ``hint``.

    Args:
        error: A ``DativoError.to_dict()`` the worker sent.
        backend: The backend that ran the plugin.
        ref: The plugin (see :func:`import_hint`).

    Returns:
        The error data to rebuild the exception from.
    """
    module = missing_module(error)
    if module is None:
        return error
    hint = import_hint(module, backend, ref=ref)
    details = error.get("details")
    details = dict(details) if isinstance(details, Mapping) else {}
    details.update({"missing_module": module, "hint": hint, "backend": details.get("backend", backend)})
    message = str(error.get("message") or "").rstrip().rstrip(".")
    return {**error, "message": f"{message}. {hint}", "details": details}
