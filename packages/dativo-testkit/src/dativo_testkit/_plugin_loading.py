"""Loading a plugin class from a reference, with the SDK's shared loader.

``dativo-conformance`` accepts every reference ``dativo-run`` accepts, and fails on a bad
one with the same error and message, because both load through
:mod:`dativo_plugin_sdk._loading`. Built-in names (``csv``, ``jsonl``, ``parquet``) are the
ones the runtime publishes under the entry-point group ``dativo.builtins``: the testkit
never imports the runtime, it finds them in the installed packages' metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dativo_plugin_sdk import ConfigurationError
from dativo_plugin_sdk._loading import PluginRef, published_builtins, resolve_plugin

from ._plugin_names import remember_reference

__all__ = ["load_plugin_class"]


def load_plugin_class(ref: str, *, base_dir: str | Path | None = None) -> type[Any]:
    """Load a plugin class from any reference ``dativo-run`` accepts.

    A reference is ``path/to/file.py:ClassName`` (the file is imported with its folder
    importable, so it may import modules beside it), ``package.module:ClassName`` (the
    class part may be dotted: ``Outer.Inner``), the name of a plugin installed under the
    entry-point group ``dativo.plugins``, or a built-in name the installed runtime
    publishes (``csv``). Loading the same file twice returns the same class.

    Args:
        ref: The reference.
        base_dir: Folder relative file paths start at (default: the current folder).

    Returns:
        The class. It is not checked further: the conformance checks report a class that
        is not a plugin, or is abstract or incompatible.

    Raises:
        ConfigurationError: If the reference is malformed, or names a file, module,
            entry point or class that cannot be found or imported (naming the file and
            line that failed), or something that is not a class.
    """
    builtins = published_builtins()
    parsed = PluginRef.parse(ref, base_dir=None if base_dir is None else Path(base_dir), builtins=builtins)
    target = resolve_plugin(parsed, builtins=builtins)
    if not isinstance(target, type):
        raise ConfigurationError(
            f"plugin reference {ref!r} names a {type(target).__name__}, not a class; name the plugin's class",
            details={"ref": ref},
        )
    remember_reference(target, ref, parsed.class_name)
    return target
