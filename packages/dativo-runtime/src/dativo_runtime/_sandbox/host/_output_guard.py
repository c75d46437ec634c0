"""What a sandboxed writer leaves in its output folder, checked by the host.

A writer may change anything in its one writable folder, so before its files count as
committed the host makes sure that folder holds nothing dangerous and nothing too big:

* **No privileges.** Setuid and setgid bits are stripped from every file and folder, so
  no binary a plugin planted can run with its owner's rights on the host.
* **Only files, folders and symlinks.** Device files, FIFOs and sockets are refused before
  the commit (and removed from whatever is left afterwards).
* **A disk quota.** What the writer adds may not exceed the job's ``sandbox.disk``, nor
  :data:`MAX_OUTPUT_ENTRIES` files and folders, nor folders nested deeper than
  :data:`MAX_OUTPUT_DEPTH` levels: the host measures the folder after each request and, on
  a thread of its own, while the plugin works, and kills the sandbox when it goes over.

The folder is walked through directory descriptors (``openat``, ``fstatat``), depth first
with an explicit stack: no recursion, no path longer than one name, never a symlink
followed. Files are opened with ``O_NOFOLLOW`` and changed through their descriptors, so a
plugin that swaps a file for a symlink while the host looks can never make it touch another
file. Whatever the walk cannot check (a folder it cannot open, one nested too deep) fails
the check closed: a ``SandboxError``, and the writer's additions removed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from dativo_plugin_sdk import SandboxError

__all__ = [
    "MAX_OUTPUT_DEPTH",
    "MAX_OUTPUT_ENTRIES",
    "DiskQuota",
    "folder_usage",
    "sanitize_output",
]

MAX_OUTPUT_ENTRIES = 100_000
"""Most files, folders and symlinks a writer may add to its output folder in one session."""
MAX_OUTPUT_DEPTH = 64
"""Deepest a writer may nest folders in its output folder (the host's walk holds a descriptor per level)."""

_logger = logging.getLogger("dativo.sandbox")
_PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID
_WATCH_INTERVAL_S = 0.25
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_MAX_REMOVAL_PASSES = 100_000


@dataclasses.dataclass(slots=True)
class _Entry:
    """One entry met by a walk: its folder's descriptor (open while the entry is looked at)."""

    parent_fd: int
    parent: str
    name: str
    info: os.stat_result
    depth: int

    @property
    def path(self) -> str:
        """Its path relative to the walked folder."""
        return f"{self.parent}/{self.name}" if self.parent else self.name

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


class _Level:
    """A folder the walk is inside: its descriptor and the listing still to go through."""

    def __init__(self, fd: int, entry: _Entry | None) -> None:
        self.fd = fd
        self.entry = entry
        self.path = entry.path if entry is not None else ""
        self.depth = entry.depth if entry is not None else 0
        try:
            self.listing = os.scandir(fd)
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        self.listing.close()
        os.close(self.fd)


class _Walk:
    """One depth-first pass over a folder, through descriptors, with bounded depth and length.

    Folders at ``max_depth`` are listed; one deeper is met (and noted in ``too_deep``) but
    not opened, so the walk never holds more than about ``2 * max_depth`` descriptors. The
    walk stops after ``max_entries`` entries (``truncated``). Folders it cannot open or list
    are noted in ``unreadable``.

    Args:
        root_fd: A descriptor of the folder (duplicated: the caller keeps its own).
        max_depth: The deepest level of folders opened.
        max_entries: Stop after this many entries (``None``: no bound).
        post_order: Meet a folder after its contents (to remove it), not before.
    """

    def __init__(
        self, root_fd: int, *, max_depth: int, max_entries: int | None = None, post_order: bool = False
    ) -> None:
        self.root_fd = root_fd
        self.max_depth = max_depth
        self.max_entries = max_entries
        self.post_order = post_order
        self.entries = 0
        self.truncated = False
        self.too_deep: list[_Entry] = []
        self.unreadable: list[str] = []

    def __iter__(self) -> Iterator[_Entry]:
        levels = [_Level(os.dup(self.root_fd), None)]
        try:
            while levels:
                level = levels[-1]
                try:
                    item = next(level.listing, None)
                except OSError:
                    self.unreadable.append(level.path or ".")
                    item = None
                if item is None:
                    levels.pop().close()
                    if self.post_order and level.entry is not None:
                        yield level.entry
                    continue
                try:
                    info = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # Removed while we looked: nothing to check.
                except OSError:
                    self.unreadable.append(f"{level.path}/{item.name}" if level.path else item.name)
                    continue
                self.entries += 1
                if self.max_entries is not None and self.entries > self.max_entries:
                    self.truncated = True
                    return
                entry = _Entry(level.fd, level.path, item.name, info, level.depth + 1)
                if not entry.is_dir:
                    yield entry
                    continue
                if not self.post_order:
                    yield entry
                child = self._open(entry)
                if child is not None:
                    levels.append(_Level(child, entry))
                elif self.post_order:
                    yield entry
        finally:
            for level in levels:
                level.close()

    def _open(self, entry: _Entry) -> int | None:
        if entry.depth > self.max_depth:
            self.too_deep.append(entry)
            return None
        try:
            return os.open(entry.name, _DIR_FLAGS, dir_fd=entry.parent_fd)
        except FileNotFoundError:
            return None
        except OSError:
            self.unreadable.append(entry.path)  # Swapped for a symlink, or no permission to list.
            return None


def _open_root(folder: Path) -> int | None:
    try:
        return os.open(folder, _DIR_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return None


@dataclasses.dataclass
class _Measure:
    """What one walk over an output folder found."""

    usage: int = 0
    entries: int = 0
    truncated: bool = False
    too_deep: list[str] = dataclasses.field(default_factory=list)
    unreadable: list[str] = dataclasses.field(default_factory=list)
    paths: set[str] | None = None


def _measure(folder: Path, *, max_entries: int | None = None, keep_paths: bool = False) -> _Measure:
    # Allocated blocks, not apparent sizes: a sparse file claiming terabytes costs what it uses.
    found = _Measure(paths=set() if keep_paths else None)
    root = _open_root(folder)
    if root is None:
        return found
    try:
        walk = _Walk(root, max_depth=MAX_OUTPUT_DEPTH, max_entries=max_entries)
        for entry in walk:
            found.usage += entry.info.st_blocks * 512
            if found.paths is not None:
                found.paths.add(entry.path)
    finally:
        os.close(root)
    found.entries = walk.entries
    found.truncated = walk.truncated
    found.too_deep = [entry.path for entry in walk.too_deep]
    found.unreadable = walk.unreadable
    return found


def folder_usage(folder: Path) -> int:
    """Bytes the files and folders under ``folder`` take on disk (allocated blocks, not apparent sizes)."""
    return _measure(folder).usage


def _strip_privileges(entry: _Entry) -> None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    flags |= os.O_DIRECTORY if entry.is_dir else 0
    try:
        descriptor = os.open(entry.name, flags, dir_fd=entry.parent_fd)
    except OSError:
        return  # Gone or swapped for something else: the next walk sees what is there.
    try:
        info = os.fstat(descriptor)
        kind_ok = stat.S_ISDIR(info.st_mode) if entry.is_dir else stat.S_ISREG(info.st_mode)
        if kind_ok and info.st_mode & _PRIVILEGE_BITS:
            os.fchmod(descriptor, stat.S_IMODE(info.st_mode) & ~_PRIVILEGE_BITS)
            _logger.warning("removed the setuid/setgid bits of %s, left by a sandboxed writer", entry.path)
    finally:
        os.close(descriptor)


def _is_special(info: os.stat_result) -> bool:
    return not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode))


def _link_escapes(entry: _Entry, folder: Path) -> bool:
    """Whether ``entry`` is a symlink that may lead outside ``folder`` (or cannot be read).

    The host never follows a writer's symlinks, but a reader given that folder later would:
    a link to ``/etc/shadow`` left in a tenant's output would let a later job read it. A link
    may point down into the folder (a relative target without ``..``, or an absolute one
    inside it); every other link counts as leading out.
    """
    if not stat.S_ISLNK(entry.info.st_mode):
        return False
    try:
        target = os.readlink(entry.name, dir_fd=entry.parent_fd)
    except OSError:
        return True
    if ".." in target.split("/"):
        return True  # '..' after another link (d -> '..') goes where no lexical check can see
    if os.path.isabs(target):
        return not (target == str(folder) or target.startswith(str(folder).rstrip("/") + "/"))
    return False


def sanitize_output(folder: Path, *, ref: str, backend: str, refuse_special: bool) -> None:
    """Strip setuid/setgid bits under ``folder`` and deal with device files, FIFOs and sockets.

    Args:
        folder: The writer's output folder.
        ref: The plugin reference, for the message.
        backend: The backend's name, for the message.
        refuse_special: Raise on a special file, or on anything the walk cannot check (before
            the commit); otherwise remove special files and folders nested too deep.

    Raises:
        SandboxError: If ``refuse_special`` and the folder holds a special file (reason
            ``crash``), folders nested deeper than :data:`MAX_OUTPUT_DEPTH` levels or folders
            the host cannot open (reason ``disk``).
    """
    try:
        _sanitize(folder, ref=ref, backend=backend, refuse_special=refuse_special)
    except OSError as exc:
        raise SandboxError(
            f"the host could not check the output folder {str(folder)!r} of plugin {ref!r} in the {backend} "
            f"sandbox: {exc}. Nothing was committed.",
            details={"reason": "disk", "backend": backend, "ref": ref, "limit": "unreadable"},
        ) from None


def _sanitize(folder: Path, *, ref: str, backend: str, refuse_special: bool) -> None:
    root = _open_root(folder)
    if root is None:
        return
    try:
        info = os.fstat(root)
        if info.st_mode & _PRIVILEGE_BITS:
            os.fchmod(root, stat.S_IMODE(info.st_mode) & ~_PRIVILEGE_BITS)
        special: list[str] = []
        walk = _Walk(root, max_depth=MAX_OUTPUT_DEPTH)
        for entry in walk:
            if entry.is_dir or stat.S_ISREG(entry.info.st_mode):
                if entry.info.st_mode & _PRIVILEGE_BITS:
                    _strip_privileges(entry)
            elif _is_special(entry.info) or _link_escapes(entry, folder):
                special.append(entry.path)
                if not refuse_special:
                    _remove_special(entry)
        too_deep = [entry.path for entry in walk.too_deep]
        if refuse_special:
            _refuse(folder, special, too_deep, walk.unreadable, ref=ref, backend=backend)
        else:
            for path in too_deep:
                _remove_subtree(root, path)
            if walk.unreadable:
                _logger.warning(
                    "could not check %d folder(s) a sandboxed writer left in %s: %s",
                    len(walk.unreadable),
                    folder,
                    ", ".join(walk.unreadable[:5]),
                )
    finally:
        os.close(root)


def _remove_special(entry: _Entry) -> None:
    try:
        os.unlink(entry.name, dir_fd=entry.parent_fd)
    except OSError:
        return
    _logger.warning("removed %s, a special file left by a sandboxed writer", entry.path)


def _shown(paths: list[str]) -> str:
    return ", ".join(path if len(path) <= 200 else f"{path[:100]}...{path[-100:]}" for path in paths[:5])


def _refuse(
    folder: Path, special: list[str], too_deep: list[str], unreadable: list[str], *, ref: str, backend: str
) -> None:
    where = f"plugin {ref!r} in the {backend} sandbox"
    details = {"backend": backend, "ref": ref, "output": str(folder)}
    if special:
        raise SandboxError(
            f"{where} left {len(special)} device file(s), FIFO(s), socket(s) or symlink(s) pointing "
            f"outside it in its output folder ({_shown(special)}); a writer may leave only files, "
            "folders and symlinks to them. "
            "Nothing was committed.",
            details={**details, "reason": "crash", "special_files": [p[:1000] for p in special[:20]]},
        )
    if too_deep:
        raise SandboxError(
            f"{where} nested folders more than {MAX_OUTPUT_DEPTH} levels deep in its output folder "
            f"({_shown(too_deep)}); the host does not commit what it cannot check. Nothing was committed.",
            details={**details, "reason": "disk", "limit": "depth", "max_depth": MAX_OUTPUT_DEPTH},
        )
    if unreadable:
        raise SandboxError(
            f"{where} left folders the host cannot open in its output folder ({_shown(unreadable)}); "
            "the host does not commit what it cannot check. Nothing was committed.",
            details={**details, "reason": "disk", "limit": "unreadable"},
        )


def _remove_subtree(root_fd: int, path: str) -> None:
    """Remove the folder at ``path`` (relative to ``root_fd``), however deep it goes."""
    parent, _, name = path.rpartition("/")
    try:
        parent_fd = _open_relative(root_fd, parent)
    except OSError:
        return
    try:
        folder_fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        try:
            _remove_entries(folder_fd, keep=lambda _: False)
        finally:
            os.close(folder_fd)
        os.rmdir(name, dir_fd=parent_fd)
    except OSError:
        return
    finally:
        os.close(parent_fd)
    _logger.warning(
        "removed %s, folders a sandboxed writer nested more than %d deep", path[:200], MAX_OUTPUT_DEPTH
    )


def _open_relative(root_fd: int, path: str) -> int:
    fd = os.dup(root_fd)
    for name in filter(None, path.split("/")):
        try:
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _remove_entries(root_fd: int, keep: Callable[[str], bool]) -> None:
    """Remove every entry under ``root_fd`` whose relative path ``keep`` does not keep.

    A folder nested deeper than the walk goes is moved up to ``root_fd`` (``renameat``) and
    removed on the next pass, so any depth is removed with a bounded number of descriptors.
    Call it once the writer is gone.
    """
    for number in range(_MAX_REMOVAL_PASSES):
        moved = False
        walk = _Walk(root_fd, max_depth=MAX_OUTPUT_DEPTH, post_order=True)
        for entry in walk:
            if keep(entry.path):
                continue
            try:
                if entry.is_dir:
                    os.rmdir(entry.name, dir_fd=entry.parent_fd)
                else:
                    os.unlink(entry.name, dir_fd=entry.parent_fd)
            except OSError:
                if entry.is_dir and entry.depth > MAX_OUTPUT_DEPTH:
                    moved = _move_up(entry, root_fd, number) or moved
        if not moved:
            return


def _move_up(entry: _Entry, root_fd: int, number: int) -> bool:
    try:
        name = f".dativo-removing-{number}-{entry.info.st_ino}"
        os.rename(entry.name, name, src_dir_fd=entry.parent_fd, dst_dir_fd=root_fd)
    except OSError:
        return False
    return True


class DiskQuota:
    """Bounds what a writer adds to its output folder, measured against the folder at the start.

    Besides ``limit_bytes``, the writer may add at most :data:`MAX_OUTPUT_ENTRIES` files and
    folders, nested at most :data:`MAX_OUTPUT_DEPTH` levels; each walk stops once it has
    seen that many more entries than the folder held, so the host's cost stays bounded.

    Args:
        folder: The writer's output folder.
        limit_bytes: What the writer may add in all (``None``: no byte limit, only the others).
        on_exceeded: Called once, from the watching thread, when the folder goes over
            (the backend kills the sandbox there).
    """

    def __init__(self, folder: Path, limit_bytes: int | None, on_exceeded: Callable[[], None]) -> None:
        self.folder = folder
        self.limit_bytes = limit_bytes
        before = _measure(folder, keep_paths=True)
        self.baseline = before.usage
        self._before = before.paths or set()
        self._before_deep = set(before.too_deep)
        self._before_unreadable = set(before.unreadable)
        self.exceeded_by: int | None = None
        self.problem: str | None = None
        """What went over: ``disk``, ``entries``, ``depth`` or ``unreadable`` (``None`` while within)."""
        self._on_exceeded = on_exceeded
        self._removed = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="dativo-disk-quota", daemon=True)

    def start(self) -> DiskQuota:
        """Start watching; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (safe to call twice, from any thread but the watcher)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def added(self) -> int:
        """Bytes the writer added so far."""
        return folder_usage(self.folder) - self.baseline

    def over(self) -> bool:
        """Measure now; remember and report whether the writer went over its quota.

        Anything that keeps the host from measuring counts as over (it fails closed).
        """
        try:
            found = _measure(self.folder, max_entries=len(self._before) + MAX_OUTPUT_ENTRIES)
        except Exception as exc:  # Whatever the walk meets, the writer is stopped.
            _logger.warning("could not measure the output folder %s: %s", self.folder, exc)
            self._exceed("unreadable", 0)
            return True
        added = found.usage - self.baseline
        if self.limit_bytes is not None and added > self.limit_bytes:
            self._exceed("disk", added)
        elif found.truncated:
            self._exceed("entries", added)
        elif set(found.too_deep) - self._before_deep:
            self._exceed("depth", added)
        elif set(found.unreadable) - self._before_unreadable:
            self._exceed("unreadable", added)
        return self.exceeded_by is not None

    def _exceed(self, problem: str, added: int) -> None:
        with self._lock:
            if self.exceeded_by is None:
                self.problem = problem
                self.exceeded_by = max(added, 0)

    def describe(self) -> str:
        """What the writer did to go over, for a message (empty while within its quota)."""
        if self.problem == "entries":
            return f"added more than {MAX_OUTPUT_ENTRIES:,} files and folders to its output folder"
        if self.problem == "depth":
            return f"nested folders more than {MAX_OUTPUT_DEPTH} levels deep in its output folder"
        if self.problem == "unreadable":
            return "left folders the host cannot open in its output folder"
        return ""

    def remove_added(self) -> None:
        """Delete every file and folder that was not there at the start (call once the writer is gone)."""
        if self._removed:
            return
        self._removed = True
        root = _open_root(self.folder)
        if root is None:
            return
        try:
            _remove_entries(root, keep=self._before.__contains__)
        finally:
            os.close(root)
        _logger.warning("removed the partial output a sandboxed writer left in %s", self.folder)

    def _watch(self) -> None:
        while not self._stop.wait(_WATCH_INTERVAL_S):
            if self.over():
                self._on_exceeded()
                return
