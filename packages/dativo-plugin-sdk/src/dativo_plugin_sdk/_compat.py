"""Plugin versions and SDK compatibility, by PEP 440 specifiers with semver rules.

Rules:

* A plugin's ``__version__`` must be a valid PEP 440 version (semver ``1.2.3`` is one).
* ``requires_sdk`` is a PEP 440 specifier set such as ``>=1.0,<2`` or ``~=1.2``; when
  absent it is ``>=1.0,<2`` (:data:`DEFAULT_REQUIRES_SDK`).
* A specifier with no upper bound is capped at the next major release after its highest
  lower bound: ``>=1.2`` means ``>=1.2,<2``. Under semver another major may break
  plugins, so only an explicit upper bound (``>=1.2,<3``) claims support for it.
* Pre-releases of the SDK satisfy a requirement only when asked for: by the caller
  (``allow_prereleases=True``) or by the specifier itself naming one (``>=1.1.0rc1``).
* Refused spellings, with a :class:`PluginVersionError` naming the plugin: npm/cargo
  carets and tildes (``^1.2``, ``~1.2``), bare versions (``1.2``), wildcards outside
  ``==`` (``>=1.*``), and anything else that is not PEP 440.
"""

from __future__ import annotations

import re
from typing import Any

from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ._errors import PluginVersionError
from ._plugin_names import plugin_display_name
from ._version import PLUGIN_SDK_VERSION

__all__ = [
    "DEFAULT_REQUIRES_SDK",
    "check_compatibility",
    "check_compatibility_as",
    "is_compatible",
    "parse_requires_sdk",
]

DEFAULT_REQUIRES_SDK = ">=1.0,<2"
"""The SDK range assumed for a plugin that does not declare ``requires_sdk``."""

_NPM_STYLE = re.compile(r"^\s*[\^~](?!=)")


def parse_requires_sdk(spec: str | None, *, plugin: str = "the plugin") -> SpecifierSet:
    """Parse a ``requires_sdk`` value into a specifier set, with the semver cap applied.

    Args:
        spec: The declared specifier, or ``None`` for :data:`DEFAULT_REQUIRES_SDK`.
        plugin: Name used in error messages.

    Returns:
        The effective :class:`~packaging.specifiers.SpecifierSet`.

    Raises:
        PluginVersionError: If the spelling is not a valid PEP 440 specifier.
    """
    if spec is None:
        spec = DEFAULT_REQUIRES_SDK
    if not isinstance(spec, str) or not spec.strip():
        raise PluginVersionError(
            f"{plugin} declares requires_sdk={spec!r}; it must be a non-empty PEP 440 specifier "
            f"string such as {DEFAULT_REQUIRES_SDK!r}.",
            details={"plugin": plugin, "requires_sdk": repr(spec)},
        )
    hint = ""
    if _NPM_STYLE.match(spec):
        hint = (
            " npm-style '^' and '~' ranges are not PEP 440: "
            "write '^1.2' as '>=1.2,<2' and '~1.2' as '~=1.2.0'."
        )
    else:
        try:
            specifiers = SpecifierSet(spec)
        except InvalidSpecifier:
            if re.fullmatch(r"\s*v?\d+(\.\d+)*\s*", spec):
                bare = spec.strip()
                hint = (
                    f" A bare version is not a range: write '=={bare}' or '>={bare},<{_next_major_of(spec)}'."
                )
        else:
            return _cap_major(specifiers)
    raise PluginVersionError(
        f"{plugin} declares requires_sdk={spec!r}, which is not a valid PEP 440 specifier.{hint} "
        f"Example: requires_sdk = {DEFAULT_REQUIRES_SDK!r}.",
        details={"plugin": plugin, "requires_sdk": spec},
    )


def _next_major_of(spec: str) -> int:
    try:
        return Version(spec.strip().lstrip("v")).major + 1
    except InvalidVersion:
        return 2


def _cap_major(specifiers: SpecifierSet) -> SpecifierSet:
    has_upper = any(s.operator in ("<", "<=", "==", "===", "~=") for s in specifiers)
    lower = [Version(s.version) for s in specifiers if s.operator in (">=", ">")]
    if has_upper or not lower:
        return specifiers
    cap = Specifier(f"<{max(lower).major + 1}")
    return specifiers & SpecifierSet(str(cap))


def _parse_sdk_version(sdk_version: str) -> Version:
    try:
        return Version(sdk_version)
    except InvalidVersion:
        raise ValueError(f"sdk_version {sdk_version!r} is not a valid version") from None


def check_compatibility(
    plugin_cls: type[Any],
    sdk_version: str = PLUGIN_SDK_VERSION,
    *,
    allow_prereleases: bool = False,
) -> None:
    """Return quietly if ``plugin_cls`` works with ``sdk_version``, else raise.

    Args:
        plugin_cls: A reader or writer class (its ``__version__`` and ``requires_sdk`` are read).
        sdk_version: The SDK version to check against; the installed one by default.
        allow_prereleases: Let a pre-release SDK satisfy the requirement.

    Raises:
        PluginVersionError: If the plugin's ``__version__`` or ``requires_sdk`` is invalid,
            or the SDK version is outside what the plugin requires. The message names the
            plugin (a plugin file by its file, never by its generated module name), what it
            requires, what is installed and how to fix it.
        ValueError: If ``sdk_version`` itself is not a valid version.
    """
    name = plugin_display_name(plugin_cls)
    _check(plugin_cls, name, name, sdk_version, allow_prereleases)


def check_compatibility_as(
    plugin_cls: type[Any],
    ref: str,
    sdk_version: str = PLUGIN_SDK_VERSION,
    *,
    allow_prereleases: bool = False,
) -> None:
    """:func:`check_compatibility`, naming the plugin by the reference the user wrote.

    Private but shared: the loader and ``plugins inspect`` name a plugin by its reference
    (``'items.py:ItemsReader' requires dativo-plugin-sdk ...``).

    Args:
        plugin_cls: A reader or writer class.
        ref: The plugin reference as written (``details["plugin"]``; quoted in the message).
        sdk_version: The SDK version to check against.
        allow_prereleases: Let a pre-release SDK satisfy the requirement.

    Raises:
        PluginVersionError: As :func:`check_compatibility`.
        ValueError: If ``sdk_version`` itself is not a valid version.
    """
    _check(plugin_cls, repr(ref), ref, sdk_version, allow_prereleases)


def _check(plugin_cls: type[Any], name: str, plugin: str, sdk_version: str, allow_prereleases: bool) -> None:
    installed = _parse_sdk_version(sdk_version)
    version = getattr(plugin_cls, "__version__", None)
    if version is not None:
        try:
            Version(str(version))
        except InvalidVersion:
            raise PluginVersionError(
                f"{name} declares __version__={version!r}, which is not a valid version; "
                f"use a semantic version such as '1.0.0'.",
                details={"plugin": plugin, "plugin_version": str(version)},
            ) from None
    declared = getattr(plugin_cls, "requires_sdk", None)
    try:
        specifiers = parse_requires_sdk(declared, plugin=name)
    except PluginVersionError as exc:
        raise PluginVersionError(exc.message, details={**exc.details, "plugin": plugin}) from None
    prereleases = allow_prereleases or bool(specifiers.prereleases)
    if specifiers.contains(installed, prereleases=prereleases):
        return
    required = declared if declared is not None else f"{DEFAULT_REQUIRES_SDK} (the default)"
    as_written = SpecifierSet(declared or DEFAULT_REQUIRES_SDK)
    if installed.is_prerelease and specifiers.contains(installed, prereleases=True):
        fix = (
            "a pre-release SDK satisfies a requirement only when asked for (allow_prereleases=True) "
            "or when requires_sdk names a pre-release"
        )
    elif as_written.contains(installed, prereleases=True):
        fix = (
            f"an open-ended requirement is capped at the next major release ({specifiers}); if the "
            "plugin really supports this SDK, give requires_sdk an explicit upper bound"
        )
    else:
        fix = (
            f"install a matching SDK (pip install 'dativo-plugin-sdk{specifiers}'), or release the "
            f"plugin with a requires_sdk that includes {installed}"
        )
    raise PluginVersionError(
        f"{name} requires dativo-plugin-sdk {required}, but {installed} is installed: {fix}.",
        details={
            "plugin": plugin,
            "plugin_version": None if version is None else str(version),
            "requires_sdk": declared,
            "effective_requires_sdk": str(specifiers),
            "sdk_version": str(installed),
        },
    )


def is_compatible(
    plugin_cls: type[Any],
    sdk_version: str = PLUGIN_SDK_VERSION,
    *,
    allow_prereleases: bool = False,
) -> bool:
    """Tell whether ``plugin_cls`` works with ``sdk_version``; see :func:`check_compatibility`.

    Returns:
        ``True`` when :func:`check_compatibility` would return quietly.
    """
    try:
        check_compatibility(plugin_cls, sdk_version, allow_prereleases=allow_prereleases)
    except PluginVersionError:
        return False
    return True
