"""What a process sandbox sees of the runtime's Python: the interpreter, the standard library and the worker.

The worker needs the Python installation (interpreter, shared libraries, standard library)
and a handful of distributions: the plugin SDK, the runtime (for its worker), pyarrow,
packaging, OpenTelemetry when it is installed (for a traced run's plugin spans) and the
postgres reader's ADBC driver when it is installed, with what they require. Everything else
installed beside them (typer, pydantic, boto3, the host's own tools) is none of a plugin's
business: a plugin gets its dependencies from its own environment.

So the sandbox binds the installation read-only, hides every ``site-packages`` (or
``dist-packages``) folder in it under an empty tmpfs, and binds back, at the same paths,
exactly the files of those distributions: their top-level packages and modules (with
pyarrow's bundled shared libraries, which live in its folder), their ``.dist-info`` and
their ``.pth`` files. An editable install (a development checkout, CI) is a ``.pth`` naming
a ``src`` folder: that folder is bound too. The worker's interpreter then processes the
same ``site`` it would on the host and finds only those.
"""

from __future__ import annotations

import functools
import importlib.metadata
import site
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

__all__ = ["WORKER_DISTRIBUTIONS", "PythonView", "python_view"]

WORKER_DISTRIBUTIONS = ("dativo-plugin-sdk", "dativo-runtime", "pyarrow", "packaging")
"""What every sandboxed worker imports (with what they require, except the runtime's host dependencies)."""
_OPTIONAL_DISTRIBUTIONS = (
    "opentelemetry-api",
    "opentelemetry-sdk",
    # The postgres reader's driver (the runtime's [postgres] extra), for when the reader runs
    # sandboxed: in cloud mode, or referenced by its class (docs/connectors.md).
    "adbc-driver-postgresql",
)
_WORKER_MODULES = ("dativo_plugin_sdk", "dativo_runtime", "pyarrow", "packaging")
_NO_FOLLOW = frozenset({"dativo-runtime"})  # its requirements are the host's (typer, boto3), not the worker's


@dataclass(frozen=True)
class PythonView:
    """The host paths that make up a worker's Python.

    Args:
        installation: Folders bound read-only whole: the interpreter's prefixes.
        hidden: ``site-packages`` folders inside them, each covered by an empty tmpfs.
        entries: Files and folders inside ``hidden`` bound back at their own paths.
        sources: Folders outside ``hidden`` holding a worker package (an editable install's ``src``).
    """

    installation: tuple[Path, ...]
    hidden: tuple[Path, ...]
    entries: tuple[Path, ...]
    sources: tuple[Path, ...]

    def readable_paths(self) -> list[Path]:
        """Every folder the sandbox's user must be able to read (checked before a root runtime starts)."""
        return [*self.installation, *self.sources]


def _inside(path: Path, folders: tuple[Path, ...] | list[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)


def _installation() -> list[Path]:
    candidates = [Path(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}]
    candidates.append(Path(sys.executable).resolve().parent)
    paths: list[Path] = []
    for candidate in candidates:
        for path in (candidate, candidate.resolve()):
            if path.is_dir() and path not in paths:
                paths.append(path)
    usr = Path("/usr")
    kept = [p for p in paths if not (p == usr or usr in p.parents)]  # /usr is bound anyway
    return sorted(p for p in kept if not any(other in p.parents for other in kept))


def _site_folders(visible: list[Path]) -> list[Path]:
    """Every existing site-packages folder of the interpreter's prefixes that the sandbox would show."""
    prefixes = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix})
    found: list[Path] = []
    for name in [*site.getsitepackages(prefixes), *site.getsitepackages()]:
        path = Path(name).resolve()
        if path.is_dir() and path not in found and _inside(path, visible):
            found.append(path)
    return sorted(found)


def _distributions() -> list[importlib.metadata.Distribution]:
    """The worker's distributions and, transitively, what they require (as installed here)."""
    wanted = [*WORKER_DISTRIBUTIONS, *_OPTIONAL_DISTRIBUTIONS]
    seen: set[str] = set()
    found: list[importlib.metadata.Distribution] = []
    while wanted:
        name = canonicalize_name(wanted.pop(0))
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(dist)
        if name in _NO_FOLLOW:
            continue
        for text in dist.requires or []:
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return found


def _entries(dist: importlib.metadata.Distribution, hidden: list[Path]) -> list[Path]:
    """The top-level files and folders of ``dist`` that lie in a hidden folder.

    A folder of compiled bytecode (``__pycache__``) beside single-file modules is shared with
    other distributions: only this one's files of it are named.
    """
    base = Path(str(dist.locate_file(""))).resolve()
    if not _inside(base, hidden):
        return []
    entries: set[Path] = set()
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0] == "..":
            continue
        entry = base / parts[0] if parts[0] != "__pycache__" else base / Path(*parts)
        if entry.exists() or entry.is_symlink():
            entries.add(entry)
    dist_info = getattr(dist, "_path", None)  # files may omit the .dist-info folder itself
    if dist_info is not None and Path(dist_info).exists():
        entries.add(Path(dist_info).resolve())
    return sorted(entries)


def _module_root(module_name: str) -> Path | None:
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = __import__(module_name)
        except ImportError:
            return None
    file = getattr(module, "__file__", None)
    return Path(file).resolve().parent.parent if file else None


@functools.lru_cache(maxsize=1)
def python_view() -> PythonView:
    """Work out (once per process) which host paths make up a sandboxed worker's Python."""
    installation = _installation()
    hidden = _site_folders([*installation, Path("/usr")])
    entries: set[Path] = set()
    for dist in _distributions():
        entries.update(_entries(dist, hidden))
    sources: list[Path] = []
    for name in _WORKER_MODULES:
        root = _module_root(name)
        if root is None or not root.is_dir() or root in sources:
            continue
        if not _inside(root, hidden) and not _inside(root, installation):
            sources.append(root)
    return PythonView(
        installation=tuple(installation),
        hidden=tuple(hidden),
        entries=tuple(sorted(entries)),
        sources=tuple(sorted(sources)),
    )
