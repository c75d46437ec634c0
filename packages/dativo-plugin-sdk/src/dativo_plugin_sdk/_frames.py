"""Where a plugin failed: the frames of an exception that belong to the plugin's own code.

Private but shared, like :mod:`._loading`: the runtime's sandbox worker and its in-process
backend both attach these frames to the error a plugin raised, the runtime's host checks
the frames a worker sends with :func:`check_frames`, and ``dativo-conformance`` shows them
in its reports. It imports only the standard library and the SDK's own modules.

A frame is plain JSON data::

    {"file": "helpers.py", "line": 6, "function": "pick", "code": "return row['missing']"}

``file`` is relative to the plugin's folder (for a file plugin, the folder holding the file
the reference names; for an installed package, the folder holding the package, so the path
starts with the package's name). An error carries two lists in its ``details``, innermost
frame first (the line that raised comes first):

* ``traceback``: the plugin's own frames only, what an author needs;
* ``full_traceback``: every frame, the runtime's, the SDK's, the standard library's and
  third-party libraries' included, each with ``"plugin": true`` or ``false``; shown only at
  ``--log-level debug``. Frames outside the plugin's folder are shown relative to the
  ``sys.path`` entry that holds them (``dativo_runtime/_worker/_main.py``).

A frame is never a plugin's when it lies in the standard library, in a ``site-packages``
folder other than the plugin's own package, or in the SDK, the runtime or the testkit, even
when that folder sits inside the plugin's folder (a virtual environment beside the plugin).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._loading import PluginRef
from ._plugin_names import plugin_file

__all__ = [
    "FRAME_KEYS",
    "MAX_CODE_CHARS",
    "MAX_FILE_CHARS",
    "MAX_FRAMES",
    "MAX_FUNCTION_CHARS",
    "PluginScope",
    "check_frames",
    "exception_chain",
    "format_frames",
    "frames_of",
    "with_frames",
]

MAX_FRAMES = 50
"""Most frames a list keeps (the innermost ones)."""
MAX_FILE_CHARS = 400
MAX_FUNCTION_CHARS = 200
MAX_CODE_CHARS = 400
FRAME_KEYS = ("file", "line", "function", "code")
"""The keys of a frame (``full_traceback`` frames also have ``plugin``)."""

_DATIVO_PACKAGES = ("dativo_plugin_sdk", "dativo_runtime", "dativo_testkit")
_MAX_LINE = 10**9


@dataclass(frozen=True)
class PluginScope:
    """Where a plugin's own code lives: frames under ``inside`` are its frames, shown relative to ``base``.

    Args:
        inside: The plugin's folder, its package's folder, or its single module file.
        base: The folder frame paths are made relative to.
    """

    inside: str
    base: str

    @classmethod
    def of_path(
        cls, inside: str | os.PathLike[str], base: str | os.PathLike[str] | None = None
    ) -> PluginScope:
        """The scope of a folder (or file), paths relative to ``base`` (the folder itself by default)."""
        real = os.path.realpath(inside)
        return cls(inside=real, base=os.path.realpath(base) if base is not None else real)

    @classmethod
    def of_module(cls, module_name: str) -> PluginScope | None:
        """The scope of an installed module's top-level package (``None`` when it has no file).

        A package's frames are shown as ``package/module.py``; a single-module plugin's as
        ``module.py``. Nothing is imported: only modules already loaded, or found by their spec.
        """
        top = module_name.split(".", maxsplit=1)[0]
        module = sys.modules.get(top)
        file = getattr(module, "__file__", None)
        if not isinstance(file, str):
            import importlib.util

            try:
                spec = importlib.util.find_spec(top)
            except (ImportError, ValueError):
                return None
            file = spec.origin if spec is not None else None
            if not isinstance(file, str) or not os.path.isabs(file):
                return None
        if os.path.basename(file).startswith("__init__."):
            package = os.path.dirname(file)
            return cls.of_path(package, os.path.dirname(package))
        return cls.of_path(file, os.path.dirname(file))

    @classmethod
    def of_class(cls, plugin_cls: type[Any]) -> PluginScope | None:
        """The scope of a loaded plugin class: its file's folder for a file plugin, else its package."""
        file = plugin_file(plugin_cls)
        if file is not None:
            return cls.of_path(os.path.dirname(file))
        module_name = getattr(plugin_cls, "__module__", "") or ""
        return cls.of_module(module_name) if module_name else None

    @classmethod
    def of_ref(cls, ref: PluginRef, plugin_cls: type[Any] | None = None) -> PluginScope | None:
        """The scope of the plugin a reference names (the class, when loaded, for an entry point).

        Args:
            ref: The parsed reference.
            plugin_cls: The class it loaded, when loading got that far.

        Returns:
            The folder of a file plugin, the package of a module plugin or of the loaded
            class; ``None`` for a built-in connector (the runtime's own code, whose frames
            are shown only with the runtime's), for a native library (no Python frame is its
            own: its reader class is the SDK's) and when nothing tells where the plugin lives.
        """
        if ref.kind == "file":
            return cls.of_path(os.path.dirname(ref.target))
        if ref.kind in ("builtin", "native"):
            return None
        if plugin_cls is not None:
            return cls.of_class(plugin_cls)
        return cls.of_module(ref.target) if ref.kind == "module" else None

    def contains(self, path: str, excluded: Iterable[str] = ()) -> bool:
        """Tell whether the real path ``path`` is the plugin's code (and in no excluded folder within it)."""
        if not _under(path, self.inside):
            return False
        return not any(len(folder) > len(self.inside) and _under(path, folder) for folder in excluded)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _not_plugin_folders() -> list[str]:
    """The standard library, site-packages and the Dativo packages: never a plugin's own code."""
    import site
    import sysconfig

    folders = {sysconfig.get_paths().get(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    getsitepackages = getattr(site, "getsitepackages", None)  # Missing in some old virtualenvs.
    if callable(getsitepackages):
        folders.update(getsitepackages())
    folders.update(p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages"))
    for name in _DATIVO_PACKAGES:
        file = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(file, str):
            folders.add(os.path.dirname(file))
    return sorted({os.path.realpath(f) for f in folders if f})


def _shown_path(path: str, scope: PluginScope | None, is_plugin: bool, roots: list[str]) -> str:
    if is_plugin and scope is not None:
        return os.path.relpath(path, scope.base)
    for root in roots:  # Longest first: the most specific sys.path entry.
        if _under(path, root) and path != root:
            return os.path.relpath(path, root)
    return path


def _clean(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, control characters shown as escapes."""
    text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def frames_of(
    exc: BaseException, scope: PluginScope | None, *, tb: TracebackType | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The plugin's frames and every frame of ``exc``'s traceback, innermost first.

    Args:
        exc: The exception the plugin raised.
        scope: Where the plugin's code lives (``None``: no frame is the plugin's).
        tb: The traceback to read (``exc.__traceback__`` by default).

    Returns:
        ``(plugin_frames, all_frames)``: each at most :data:`MAX_FRAMES` long; a frame of
        the second list says whether it is the plugin's (``"plugin": true``).
    """
    summary = traceback.extract_tb(tb if tb is not None else exc.__traceback__, limit=-4 * MAX_FRAMES)
    excluded = _not_plugin_folders()
    roots = sorted({os.path.realpath(p) for p in sys.path if p}, key=len, reverse=True)
    plugin: list[dict[str, Any]] = []
    every: list[dict[str, Any]] = []
    for entry in reversed(summary):
        if entry.filename.startswith("<frozen"):
            continue  # The import machinery: never anybody's code.
        real = os.path.realpath(entry.filename) if not entry.filename.startswith("<") else entry.filename
        is_plugin = scope is not None and scope.contains(real, excluded)
        frame = {
            "file": _clean(_shown_path(real, scope, is_plugin, roots), MAX_FILE_CHARS),
            "line": entry.lineno if isinstance(entry.lineno, int) else None,
            "function": _clean(entry.name, MAX_FUNCTION_CHARS),
            "code": _clean((entry.line or "").strip(), MAX_CODE_CHARS),
        }
        if is_plugin and len(plugin) < MAX_FRAMES:
            plugin.append(dict(frame))
        if len(every) < MAX_FRAMES:
            every.append({**frame, "plugin": is_plugin})
    return plugin, every


def with_frames(
    details: Mapping[str, Any], exc: BaseException, scope: PluginScope | None, *, plugin_only: bool = False
) -> dict[str, Any]:
    """``details`` with ``traceback`` and ``full_traceback`` from ``exc`` (kept when already set).

    The frames come from the first exception of :func:`exception_chain` that has plugin
    frames (else from ``exc`` itself).

    Args:
        details: An error's details.
        exc: The exception whose traceback to read.
        scope: Where the plugin's code lives.
        plugin_only: Add nothing unless a frame is the plugin's (for a DativoError, which
            the runtime itself may have raised).

    Returns:
        A new dict; unchanged but copied when no exception of the chain has a traceback
        or ``details`` already holds a ``traceback``.
    """
    out = dict(details)
    if "traceback" in out:
        return out
    chain = [frames_of(link, scope) for link in exception_chain(exc)]
    # The first link with plugin frames, else ``exc`` itself (the chain's first link).
    plugin, every = next((found for found in chain if found[0]), chain[0] if chain else ([], []))
    if every and (plugin or not plugin_only):
        out["traceback"] = plugin
        out["full_traceback"] = every
    return out


def exception_chain(exc: BaseException, *, limit: int = 8) -> list[BaseException]:
    """``exc``, then the exceptions it was raised from or while handling, outermost first.

    A plugin error the SDK's loader wraps (an import that failed) keeps the plugin's
    frames in its cause; a conformance check that failed while handling a plugin's
    exception keeps them in its context.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < limit and all(current is not e for e in chain):
        chain.append(current)
        current = current.__cause__ if current.__cause__ is not None else current.__context__
    return chain


def _checked_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_LINE:
        return None
    return value


def check_frames(value: Any, *, flagged: bool = False) -> list[dict[str, Any]]:
    """Frames from an untrusted sender, reduced to their shape and cut to size.

    Args:
        value: What a sandbox worker sent as a ``traceback`` (anything).
        flagged: Keep each frame's ``plugin`` flag (a ``full_traceback``).

    Returns:
        At most :data:`MAX_FRAMES` frames, each with exactly :data:`FRAME_KEYS` (and
        ``plugin``): strings cut to size with control characters escaped, a line number
        that is a non-negative integer or ``None``. Anything that is not a frame is dropped.
    """
    if not isinstance(value, (list, tuple)):
        return []
    frames: list[dict[str, Any]] = []
    for item in value[: 4 * MAX_FRAMES]:
        if len(frames) >= MAX_FRAMES:
            break
        if not isinstance(item, Mapping):
            continue
        file, function, code = item.get("file"), item.get("function"), item.get("code")
        frame: dict[str, Any] = {
            "file": _clean(file, MAX_FILE_CHARS) if isinstance(file, str) else "?",
            "line": _checked_int(item.get("line")),
            "function": _clean(function, MAX_FUNCTION_CHARS) if isinstance(function, str) else "?",
            "code": _clean(code, MAX_CODE_CHARS) if isinstance(code, str) else "",
        }
        if flagged:
            frame["plugin"] = item.get("plugin") is True
        frames.append(frame)
    return frames


def format_frames(frames: Iterable[Mapping[str, Any]], *, indent: str = "  ") -> list[str]:
    """The lines that show ``frames`` to a person, like a compact traceback, innermost first.

    Args:
        frames: Frames as :func:`frames_of` or :func:`check_frames` return them.
        indent: Put before each ``at`` line (the source line gets four more spaces).

    Returns:
        ``at FILE:LINE in FUNCTION`` (``[internal]`` appended for a frame that is not the
        plugin's), then the source line when known, for each frame.

    Example:
        >>> format_frames([{"file": "helpers.py", "line": 6, "function": "pick", "code": "return row['x']"}])
        ['  at helpers.py:6 in pick', "      return row['x']"]
    """
    lines: list[str] = []
    for frame in frames:
        line = frame.get("line")
        where = f"{frame.get('file', '?')}:{line}" if line is not None else str(frame.get("file", "?"))
        mark = " [internal]" if frame.get("plugin") is False else ""
        lines.append(f"{indent}at {where} in {frame.get('function', '?')}{mark}")
        if frame.get("code"):
            lines.append(f"{indent}    {frame['code']}")
    return lines
