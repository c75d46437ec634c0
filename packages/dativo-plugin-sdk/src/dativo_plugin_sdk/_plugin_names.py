"""How messages name a plugin class: what the user wrote, never a generated module name.

A plugin file is imported under a hidden module name (``dativo_plugin_<12 hex digits>``,
see :mod:`._loading`), so ``cls.__module__`` means nothing to its author. Every message
the SDK, the runtime and the testkit show names such a class by its file instead
(``/plugins/items.py:ItemsReader``), or, where the reference is at hand, by the
reference as written (``items.py:ItemsReader``).
"""

from __future__ import annotations

import re
import sys
from typing import Any

__all__ = ["FILE_MODULE_PREFIX", "is_hidden_module", "plugin_display_name", "plugin_file"]

FILE_MODULE_PREFIX = "dativo_plugin_"
"""Prefix of the hidden module names plugin files are imported under (then 12 hex digits)."""

_HIDDEN_MODULE = re.compile(re.escape(FILE_MODULE_PREFIX) + r"[0-9a-f]{12}")


def is_hidden_module(name: str) -> bool:
    """Tell whether ``name`` is the generated name of an imported plugin file."""
    return bool(_HIDDEN_MODULE.fullmatch(name))


def plugin_file(plugin_cls: type[Any]) -> str | None:
    """The ``.py`` file a class loaded from a file reference came from, else ``None``.

    Args:
        plugin_cls: A class, loaded by any means.

    Returns:
        The file for a class whose module is a hidden file-plugin module, else ``None``.
    """
    module_name = getattr(plugin_cls, "__module__", "")
    if not isinstance(module_name, str) or not is_hidden_module(module_name):
        return None
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) else None


def plugin_display_name(plugin_cls: Any) -> str:
    """How a message names ``plugin_cls``: ``file.py:Qualname`` for a plugin file, else ``module.Qualname``.

    Args:
        plugin_cls: A class (anything else is named by its ``repr``).

    Returns:
        A name without the hidden module name of a plugin file; a native library's reader
        class is named by its reference (``libx.so:create_reader``).
    """
    if not isinstance(plugin_cls, type):
        return repr(plugin_cls)
    declared = plugin_cls.__dict__.get("__dativo_display_name__")  # A native library's reader class.
    if isinstance(declared, str):
        return declared
    qualname = getattr(plugin_cls, "__qualname__", plugin_cls.__name__)
    file = plugin_file(plugin_cls)
    if file is not None:
        return f"{file}:{qualname}"
    module = getattr(plugin_cls, "__module__", "?")
    if isinstance(module, str) and is_hidden_module(module):  # Its module is gone: say only the class.
        return qualname
    return f"{module}.{qualname}"
