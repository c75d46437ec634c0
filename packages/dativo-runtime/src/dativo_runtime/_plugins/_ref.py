"""Plugin references as ``dativo-run`` reads them: the SDK's loader with the built-in connectors.

Parsing and loading live in :mod:`dativo_plugin_sdk._loading`, shared with the sandbox
worker and with ``dativo-conformance``, so a reference means the same in each and a bad
one fails the same way. What the runtime adds is its built-in connector names, from
:data:`dativo_runtime.connectors._registry.BUILTIN_CONNECTORS`: ``PluginRef.parse("csv")``
here is the built-in CSV reader. The runtime also publishes those names under the
entry-point group ``dativo.builtins`` (its ``pyproject.toml``), which is how other tools
find them without importing the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dativo_plugin_sdk import PLUGIN_SDK_VERSION, BaseReader, BaseWriter
from dativo_plugin_sdk._loading import BUILTIN_ENTRY_POINT_GROUP, ENTRY_POINT_GROUP, PluginKind
from dativo_plugin_sdk._loading import PluginRef as _SdkPluginRef
from dativo_plugin_sdk._loading import load_plugin_class as _load_plugin_class
from dativo_plugin_sdk._plugin_info import PluginInfo, plugin_info
from dativo_runtime.connectors._registry import BUILTIN_CONNECTORS

__all__ = [
    "BUILTIN_ENTRY_POINT_GROUP",
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginKind",
    "PluginRef",
    "is_trusted_builtin",
    "load_plugin_class",
    "plugin_info",
]

BUILTIN_PLUGINS: Mapping[str, str] = MappingProxyType(
    {name: spec.target for name, spec in BUILTIN_CONNECTORS.items()}
)
"""Built-in connector names and the ``module:Class`` each stands for (from the registry)."""


class PluginRef(_SdkPluginRef):
    """The SDK's plugin reference, parsed with the runtime's built-in names by default."""

    @classmethod
    def parse(
        cls, ref: str, *, base_dir: Path | None = None, builtins: Mapping[str, str] | None = None
    ) -> PluginRef:
        """Parse a reference string (see :meth:`dativo_plugin_sdk._loading.PluginRef.parse`).

        Args:
            ref: ``csv``, ``path/x.py:Class``, ``pkg.mod:Class``, an entry-point name or
                ``path/libx.so:create_reader``.
            base_dir: Folder that relative file paths are relative to (the job file's).
            builtins: Built-in names; the runtime's connectors when not given.

        Returns:
            The parsed reference.

        Raises:
            ConfigurationError: If ``ref`` matches none of the five forms.
        """
        parsed = super().parse(
            ref, base_dir=base_dir, builtins=BUILTIN_PLUGINS if builtins is None else builtins
        )
        assert isinstance(parsed, PluginRef)
        return parsed


def is_trusted_builtin(ref: _SdkPluginRef, *, cloud: bool = False) -> bool:
    """Whether ``ref`` is a built-in connector that runs only the runtime's own code, in its process.

    Such a connector runs in the host process. A built-in that runs third-party code
    (``singer`` and ``airbyte`` start a tap from their environment) is treated like a
    third-party plugin: sandboxed, with its environment. So is, in cloud mode, a built-in
    that connects to a server the job names (``postgres``), so that the operator's egress
    policy applies to it.

    Args:
        ref: The plugin reference.
        cloud: The job runs in cloud mode.
    """
    if ref.kind != "builtin":
        return False
    spec = BUILTIN_CONNECTORS.get(ref.ref)
    if spec is None:
        return True
    return not spec.runs_in_sandbox and not (cloud and spec.reaches_network)


def load_plugin_class(
    ref: _SdkPluginRef,
    *,
    expected: type[BaseReader] | type[BaseWriter] | None = None,
    sdk_version: str = PLUGIN_SDK_VERSION,
    check_sdk: bool = True,
) -> type[Any]:
    """Import and check the plugin class ``ref`` names (the SDK loader, knowing the built-ins).

    Args:
        ref: The parsed reference.
        expected: ``BaseReader`` or ``BaseWriter`` when the job needs one of them.
        sdk_version: The SDK version to check ``requires_sdk`` against.
        check_sdk: Enforce ``requires_sdk`` (``plugins inspect`` turns this off).

    Returns:
        The plugin class.

    Raises:
        ConfigurationError: If the plugin cannot be found or imported (file and line
            named), or is not a plugin class of the expected kind.
        PluginError: If the class is abstract.
        PluginVersionError: If the plugin is incompatible with the SDK.
    """
    return _load_plugin_class(
        ref, expected=expected, sdk_version=sdk_version, check_sdk=check_sdk, builtins=BUILTIN_PLUGINS
    )
