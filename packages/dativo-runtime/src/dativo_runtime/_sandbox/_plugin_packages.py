"""Where an installed plugin's own code lives, so a sandbox can show it and nothing else of the host.

A sandbox hides the host's ``site-packages`` (see :mod:`.bubblewrap._python_view`); a plugin
referenced as ``package.module:Class`` or by its entry-point name is code installed there. Its
distribution's top-level packages and modules, and its ``.dist-info`` (entry points), become the
session's :attr:`~._base.SessionMounts.packages`; its dependencies come from its environment.
Nothing of the plugin is imported here: the files are found through the distribution's metadata
and ``importlib.util.find_spec`` of the top-level name only.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

from dativo_plugin_sdk._loading import ENTRY_POINT_GROUP
from dativo_runtime._plugins._plugin_requirements import distributions_providing
from dativo_runtime._plugins._ref import PluginRef

__all__ = ["installed_plugin_packages"]


def _distribution_files(dist: importlib.metadata.Distribution) -> list[Path]:
    base = Path(str(dist.locate_file(""))).resolve()
    found: set[Path] = set()
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
            continue
        entry = base / parts[0]
        if entry.exists():
            found.add(entry)
    dist_info = getattr(dist, "_path", None)
    if dist_info is not None and Path(dist_info).exists():
        found.add(Path(dist_info).resolve())
    return sorted(found)


def _module_location(top_level: str) -> Path | None:
    """The folder of package ``top_level`` or the file of module ``top_level``, without importing it."""
    try:
        spec = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        locations = [Path(p) for p in spec.submodule_search_locations]
        return locations[0].resolve() if len(locations) == 1 else None
    return Path(spec.origin).resolve() if spec.origin and spec.has_location else None


def installed_plugin_packages(ref: PluginRef) -> tuple[Path, ...]:
    """The host paths of an installed plugin's own code (``module`` and ``entry_point`` references).

    Args:
        ref: The plugin reference.

    Returns:
        Its distribution's top-level packages and modules and its ``.dist-info`` folder, and
        the package's own folder when an editable install keeps it elsewhere; nothing for a
        file plugin, a built-in, or a name no distribution provides (the worker then reports
        it missing, with a hint).
    """
    dists: list[importlib.metadata.Distribution] = []
    top_level = ""
    if ref.kind == "module":
        top_level = ref.target.split(".", maxsplit=1)[0]
        names = distributions_providing(top_level)
        for name in names:
            try:
                dists.append(importlib.metadata.distribution(name))
            except importlib.metadata.PackageNotFoundError:
                continue
    elif ref.kind == "entry_point":
        for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if point.name == ref.target:
                top_level = point.module.split(".", maxsplit=1)[0]
                if point.dist is not None:
                    dists.append(point.dist)
                break
    else:
        return ()
    paths: set[Path] = set()
    for dist in dists:
        if dist.metadata["Name"] in ("dativo-runtime", "dativo-plugin-sdk"):
            continue  # the worker's own: always there
        paths.update(_distribution_files(dist))
    location = _module_location(top_level) if top_level else None
    if location is not None and not any(location == p or p in location.parents for p in paths):
        worker_own = {"dativo_runtime", "dativo_plugin_sdk"} & set(location.parts)
        if not worker_own:
            paths.add(location)
    return tuple(sorted(paths))
