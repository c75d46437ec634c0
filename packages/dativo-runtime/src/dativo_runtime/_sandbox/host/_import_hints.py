"""What to say when a sandboxed plugin cannot import a module: which one, and how to make it available.

A plugin that imports something only the host can see (a module on ``PYTHONPATH``, an
editable install, the testkit) works in-process and fails in a sandbox with a bare
``ModuleNotFoundError``. The host adds the fix to the error the worker sent, before it is
raised: :func:`add_import_hint` names the missing module and says, for the backend that
ran the plugin, what that backend can import and how to get the module there.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

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


def import_hint(module: str, backend: str) -> str:
    """Say that ``module`` is missing in ``backend``, what that backend imports, and how to get it there.

    Args:
        module: The missing module (``pkg.sub`` names its top-level package ``pkg``).
        backend: ``process`` or ``docker``.

    Returns:
        A few sentences, ending with the vendoring alternative.
    """
    package = module.split(".", maxsplit=1)[0]
    lead = f"Module {module!r} is not available in the {backend} sandbox"
    vendor = (
        f"or vendor it: copy {package} into the plugin's own folder (beside the plugin file), which "
        "every sandbox mounts"
    )
    if package in _TEST_TIME_PACKAGES:
        return (
            f"{lead}: {package} is a test-time package, which a plugin must not depend on at run time. "
            "Copy the code you use into the plugin's own folder (beside the plugin file), which every "
            "sandbox mounts"
        )
    if backend == "docker":
        return (
            f"{lead}, which imports only what its image holds (Python, the plugin SDK, pyarrow and the "
            f"packages built into it) and the plugin's own folder. Put the package that provides {package!r} "
            "in a requirements file and rebuild the image with 'dativo-run sandbox build-image "
            f"--requirements FILE', {vendor}"
        )
    return (
        f"{lead}, which imports only the Python environment dativo-run runs from ({sys.prefix}: "
        "packages installed in it, not editable installs, PYTHONPATH entries or user site-packages "
        "outside it), the plugin SDK, pyarrow and the plugin's own folder. Install the package that "
        f"provides {package!r} into that environment (pip install, without -e), {vendor}"
    )


def add_import_hint(error: Mapping[str, Any], backend: str) -> Mapping[str, Any]:
    """Return the worker's error with the missing module and its fix added (unchanged otherwise).

    The message gains the hint; ``details`` gains ``missing_module`` and ``hint``.

    Args:
        error: A ``DativoError.to_dict()`` the worker sent.
        backend: The backend that ran the plugin.

    Returns:
        The error data to rebuild the exception from.
    """
    module = missing_module(error)
    if module is None:
        return error
    hint = import_hint(module, backend)
    details = error.get("details")
    details = dict(details) if isinstance(details, Mapping) else {}
    details.update({"missing_module": module, "hint": hint, "backend": details.get("backend", backend)})
    message = str(error.get("message") or "").rstrip().rstrip(".")
    return {**error, "message": f"{message}. {hint}", "details": details}
