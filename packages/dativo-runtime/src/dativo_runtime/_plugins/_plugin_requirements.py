"""What a plugin declares it needs: the :class:`EnvironmentSpec` of a plugin reference.

=====================  ================================================================
reference              requirements
=====================  ================================================================
file plugin            ``requirements.txt`` in the plugin's folder (absent: none)
installed plugin       its distribution's ``Requires-Dist`` (extras-only ones left out)
``singer``/``airbyte``  ``config["package"]``, one pip requirement
anything else          none (built-in connectors, native libraries)
=====================  ================================================================

A plugin that declares no third-party requirement (after dropping ``dativo-plugin-sdk`` and
``dativo-runtime``, which the runtime provides) gets no environment and runs as before.

``requirements.txt`` is read the way pip reads the subset that makes sense here: one
requirement a line, ``#`` comments, blank lines, ``\\`` continuations and ``-r``/
``--requirement`` includes (relative to the including file). Options that change where
packages come from or how they are checked (``--index-url``, ``--find-links``, ``-e``,
``--hash``, ``-c``...) are refused with the line they are on: indexes come from the
operator's uv settings (``UV_INDEX_URL``...) or ``dativo-run --find-links``, never from a
plugin.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Mapping
from importlib.metadata import Distribution, PackageNotFoundError, entry_points, packages_distributions
from pathlib import Path
from typing import Any

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from dativo_plugin_sdk import ConfigurationError
from dativo_plugin_sdk._loading import ENTRY_POINT_GROUP
from dativo_plugin_sdk._loading import PluginRef as _SdkPluginRef
from dativo_runtime._plugins._environment_spec import PROVIDED_BY_RUNTIME, EnvironmentSpec
from dativo_runtime.connectors._registry import BUILTIN_CONNECTORS

__all__ = ["distributions_providing", "environment_spec_for", "read_requirements_file"]

REQUIREMENTS_FILE = "requirements.txt"

_INCLUDE = re.compile(r"^(?:-r|--requirement)(?:\s+|=)(?P<path>\S.*)$")
_OPTION = re.compile(r"^(?P<option>--?[A-Za-z][\w-]*)")
_INLINE_OPTION = re.compile(r"\s(?P<option>--[A-Za-z][\w-]*)")


def environment_spec_for(ref: _SdkPluginRef, config: Mapping[str, Any]) -> EnvironmentSpec | None:
    """Return the environment a plugin needs, or ``None`` when it declares no requirement.

    Args:
        ref: The parsed plugin reference.
        config: The plugin's ``config`` from the job file (``package`` for ``singer``/``airbyte``).

    Returns:
        The spec to pass to ``ensure_environment``, or ``None``.

    Raises:
        ConfigurationError: If the declaration is invalid: an unreadable or malformed
            ``requirements.txt`` (file and line named), an option it may not use, a missing
            or non-string ``package``, or a requirement excluding the provided SDK/runtime.
    """
    if ref.kind == "file" and ref.plugin_dir is not None:
        path = ref.plugin_dir / REQUIREMENTS_FILE
        if not path.is_file():
            return None
        return _spec(read_requirements_file(path), origin=str(path))
    connector = BUILTIN_CONNECTORS.get(ref.ref) if ref.kind == "builtin" else None
    if connector is not None and connector.environment_option is not None:
        package = _package(ref.ref, config, connector.environment_option)
        # The tap runs as its own process, never in the worker: nothing of the runtime's to pin.
        return _spec((package,), origin=f"{ref.ref}: {package}", constraints=())
    if ref.kind in ("entry_point", "module"):
        dist = _distribution_of(ref)
        if dist is None:
            return None
        name = dist.metadata["Name"] or ""
        if canonicalize_name(name) in PROVIDED_BY_RUNTIME:
            return None
        return _spec(_runtime_requirements(dist), origin=f"{name} {dist.version}")
    return None


def _spec(
    requirements: tuple[str, ...], *, origin: str, constraints: tuple[str, ...] | None = None
) -> EnvironmentSpec | None:
    if constraints is None:
        spec = EnvironmentSpec(requirements=requirements, origin=origin)
    else:
        spec = EnvironmentSpec(requirements=requirements, origin=origin, constraints=constraints)
    return spec if spec.requirements else None


def _package(name: str, config: Mapping[str, Any], option: str) -> str:
    package = config.get(option)
    if not isinstance(package, str) or not package.strip():
        raise ConfigurationError(
            f"plugin {name!r}: config.{option} must be the pip requirement of the "
            f"{'tap' if name == 'singer' else 'source'} to install, such as "
            f"{'tap-example==1.2.3' if name == 'singer' else 'airbyte-source-example==1.2.3'!r}; "
            f"got {package!r}",
            details={"plugin": name, "field": f"config.{option}"},
        )
    return package.strip()


# requirements.txt ----------------------------------------------------------------------


def _logical_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of a requirements file with continuations joined and comments removed, with line numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"{path}: cannot read the plugin's requirements ({exc})", details={"file": str(path)}
        ) from None
    lines: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        # As pip: a comment starts at a '#' that begins the line or follows whitespace (so a URL's
        # '#sha256=' fragment stays).
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined = (pending + line).strip()
        pending = ""
        if joined:
            lines.append((start, joined))
    if pending.strip():
        lines.append((start, pending.strip()))
    return lines


def read_requirements_file(path: Path, *, _seen: frozenset[Path] = frozenset()) -> tuple[str, ...]:
    """Read the requirements of a ``requirements.txt`` (with its ``-r`` includes).

    Args:
        path: The file.

    Returns:
        The requirement lines, in file order.

    Raises:
        ConfigurationError: If the file (or an include) cannot be read, includes itself, uses an
            option other than ``-r``, or holds a line that is not a PEP 508 requirement; the
            message names the file and line.
    """
    path = path.resolve()
    if path in _seen:
        raise ConfigurationError(f"{path}: includes itself through -r", details={"file": str(path)})
    found: list[str] = []
    for number, line in _logical_lines(path):
        where = f"{path}:{number}"
        include = _INCLUDE.match(line)
        if include:
            target = Path(include.group("path").strip()).expanduser()
            target = target if target.is_absolute() else path.parent / target
            if not target.is_file():
                raise ConfigurationError(
                    f"{where}: includes {str(target)!r}, which is not a file", details={"file": str(path)}
                )
            found.extend(read_requirements_file(target, _seen=_seen | {path}))
            continue
        option = _OPTION.match(line) or _INLINE_OPTION.search(line)
        if option:
            raise ConfigurationError(
                f"{where}: option {option.group('option')!r} is not supported in a plugin's requirements; "
                "list plain requirements (name==1.2.3, name @ https://...). Package indexes come from uv's "
                "own settings (UV_INDEX_URL, UV_DEFAULT_INDEX), a wheel folder from "
                "`dativo-run --find-links DIR` or DATIVO_FIND_LINKS",
                details={"file": str(path), "line": number, "option": option.group("option")},
            )
        try:
            Requirement(line)
        except InvalidRequirement as exc:
            hint = (
                "; a local project must be written 'name @ file:///absolute/path'"
                if line.startswith((".", "/", "~"))
                else ""
            )
            raise ConfigurationError(
                f"{where}: {line!r} is not a pip requirement ({exc}){hint}",
                details={"file": str(path), "line": number},
            ) from None
        found.append(line)
    return tuple(found)


# Installed plugins ---------------------------------------------------------------------


_packages_lock = threading.Lock()
_packages_cache: tuple[tuple[tuple[str, int], ...], Mapping[str, list[str]]] | None = None


def _search_path_stamp() -> tuple[tuple[str, int], ...]:
    """Each ``sys.path`` folder with its modification time: installing a package changes one."""
    stamp = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return tuple(stamp)


def distributions_providing(top_level: str) -> list[str]:
    """The installed distributions providing top-level package ``top_level``, sorted.

    ``importlib.metadata.packages_distributions`` reads every installed file list (about
    half a second with a few hundred distributions), so its answer is kept until a folder of
    ``sys.path`` changes (a package installed or removed): the sessions of one run (one per
    partition) and the runs of a long-lived ``serve`` or Dask worker share it.
    """
    global _packages_cache
    stamp = _search_path_stamp()
    with _packages_lock:
        if _packages_cache is None or _packages_cache[0] != stamp:
            _packages_cache = (stamp, packages_distributions())
        return sorted(_packages_cache[1].get(top_level, []))


def _distribution_of(ref: _SdkPluginRef) -> Distribution | None:
    """The installed distribution that provides an entry-point or ``pkg.mod:Class`` plugin."""
    if ref.kind == "entry_point":
        for ep in entry_points(group=ENTRY_POINT_GROUP, name=ref.target):
            return ep.dist
        return None
    top = ref.target.split(".", 1)[0]
    for name in distributions_providing(top):
        try:
            return Distribution.from_name(name)
        except PackageNotFoundError:  # pragma: no cover - listed a moment ago
            continue
    return _editable_distribution_of(top)


def _editable_distribution_of(top: str) -> Distribution | None:
    """The distribution whose editable ``.pth`` puts the folder holding ``top`` on ``sys.path``."""
    from importlib.metadata import distributions
    from importlib.util import find_spec

    try:
        spec = find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    origin = Path(spec.origin).resolve()
    for dist in distributions():
        for file in dist.files or ():
            if file.suffix != ".pth":
                continue
            try:
                entries = Path(str(file.locate())).read_text(encoding="utf-8").splitlines()
            except OSError:
                continue
            for raw in entries:
                entry = raw.strip()
                if (
                    entry
                    and not entry.startswith(("#", "import "))
                    and origin.is_relative_to(Path(entry).resolve())
                ):
                    return dist
    return None


def _runtime_requirements(dist: Distribution) -> tuple[str, ...]:
    """A distribution's ``Requires-Dist`` without those that only an extra asks for."""
    kept = []
    for text in dist.requires or ():
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            kept.append(text)  # EnvironmentSpec reports it with the distribution's name.
            continue
        if requirement.marker is not None:
            try:
                wanted = requirement.marker.evaluate({"extra": ""})
            except UndefinedEnvironmentName:  # pragma: no cover - extra is given
                wanted = True
            if not wanted:
                continue
        kept.append(text)
    return tuple(kept)
