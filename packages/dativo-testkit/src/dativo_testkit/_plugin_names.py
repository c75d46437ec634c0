"""How conformance output names plugin code: by the reference the user wrote, never a hidden module.

A plugin file is imported under a generated module name (``dativo_plugin_<12 hex>``,
see :mod:`dativo_plugin_sdk._loading`). Nothing a report shows may carry it: the class
under test is named by the reference given to :func:`~dativo_testkit.load_plugin_class`,
and any other mention of the hidden module (in an error message, a ``repr``) becomes the
plugin file as the user wrote it.
"""

from __future__ import annotations

import re
import sys
import threading
from typing import Any

from dativo_plugin_sdk._loading import FILE_MODULE_PREFIX, plugin_file
from dativo_plugin_sdk._plugin_names import is_hidden_module, plugin_display_name

__all__ = ["hide_module_names", "plugin_name", "remember_reference"]

_HIDDEN = re.compile(
    re.escape(FILE_MODULE_PREFIX) + r"[0-9a-f]{12}(?!\w)(\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?"
)

_lock = threading.Lock()
_references: dict[str, str] = {}  # hidden module name -> the reference's file part, as written
_class_references: dict[tuple[str, str], str] = {}  # (module, qualname) -> the reference as written


def remember_reference(plugin_class: type[Any], ref: str, class_part: str) -> None:
    """Record the reference a class was loaded from, so reports name it that way.

    Args:
        plugin_class: The class loaded.
        ref: The reference as the user wrote it (``plugins/x.py:Reader``).
        class_part: The part after the last ``:`` (``Reader``).
    """
    module = plugin_class.__module__
    if not is_hidden_module(module):
        return
    file_part = ref.strip()[: -len(class_part) - 1] if ref.strip().endswith(":" + class_part) else None
    with _lock:
        _class_references[(module, plugin_class.__qualname__)] = ref.strip()
        if file_part:
            _references[module] = file_part


def _file_of(module: str) -> str:
    with _lock:
        written = _references.get(module)
    if written:
        return written
    file = getattr(sys.modules.get(module), "__file__", None)
    return file if isinstance(file, str) else "<plugin file>"


def plugin_name(plugin_class: Any) -> str:
    """Return how reports name a class.

    The reference it was loaded from when :func:`~dativo_testkit.load_plugin_class`
    loaded it; ``file.py:QualifiedName`` for another class of a plugin file;
    ``module.QualifiedName`` otherwise; anything that is not a class gets its repr (with
    hidden module names replaced).
    """
    if not isinstance(plugin_class, type):
        return str(hide_module_names(repr(plugin_class)))
    module, qualname = plugin_class.__module__, plugin_class.__qualname__
    with _lock:
        written = _class_references.get((module, qualname))
    if written:
        return written
    if plugin_file(plugin_class):
        return f"{_file_of(module)}:{qualname}"
    return plugin_display_name(plugin_class)


def hide_module_names(value: Any) -> Any:
    """Replace hidden plugin module names in ``value`` (text, or lists and dicts of it) by files.

    ``dativo_plugin_<hex>.Reader`` becomes the reference the class was loaded from (or
    ``file.py:Reader``); a bare module name becomes the file.
    """
    if isinstance(value, str):
        return _HIDDEN.sub(_replacement, value) if FILE_MODULE_PREFIX in value else value
    if isinstance(value, list):
        return [hide_module_names(v) for v in value]
    if isinstance(value, tuple):
        return tuple(hide_module_names(v) for v in value)
    if isinstance(value, dict):
        return {hide_module_names(k): hide_module_names(v) for k, v in value.items()}
    return value


def _replacement(match: re.Match[str]) -> str:
    text = match.group(0)
    dotted = match.group(1)
    module = text[: len(text) - len(dotted)] if dotted else text
    if not dotted:
        return _file_of(module)
    qualname = dotted[1:]
    with _lock:
        written = _class_references.get((module, qualname))
    return written or f"{_file_of(module)}:{qualname}"
