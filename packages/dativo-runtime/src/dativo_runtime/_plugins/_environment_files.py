"""The files beside each plugin environment: its lock, its last-use stamp; disk usage and permissions.

``<store>/<key>.lock`` is an ``fcntl`` lock (exclusive while the environment is built or
removed, shared while a run uses it); ``<store>/<key>.used`` is touched on each use.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from dativo_plugin_sdk import ConfigurationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl; environments need POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "TRASH_PREFIX",
    "disk_usage",
    "key_lock",
    "make_readable",
    "remove_tree",
    "touch_used",
    "used_file",
]

TRASH_PREFIX = ".trash-"


def used_file(path: Path) -> Path:
    return path.parent / f"{path.name}.used"


def touch_used(path: Path) -> None:
    used = used_file(path)
    with contextlib.suppress(OSError):
        used.touch()
        os.utime(used)
        os.chmod(used, 0o644)


def disk_usage(path: Path) -> int:
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_blocks * 512
    return total


def make_readable(path: Path) -> None:
    """Let every user read (and traverse) the tree: the sandbox runs plugins as another uid."""
    for folder, _dirs, files in os.walk(path):
        os.chmod(folder, stat.S_IMODE(os.lstat(folder).st_mode) | 0o755)
        for name in files:
            file = os.path.join(folder, name)
            mode = os.lstat(file).st_mode
            if stat.S_ISREG(mode):
                extra = 0o444 | (0o111 if mode & stat.S_IXUSR else 0)
                os.chmod(file, stat.S_IMODE(mode) | extra)


def _acquire(path: Path, mode: int, wait: bool) -> int | None:
    """Lock ``path`` with ``flock``; the locked descriptor, or ``None`` when taken and ``wait`` is off.

    A lock file removed by ``prune`` while this process waited on it is not the lock any more:
    after locking, the file at the path must still be the one locked, else lock again.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def key_lock(root: Path, key: str, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """Hold ``<root>/<key>.lock``; yields ``False`` (not holding it) when ``wait`` is off and it is taken."""
    if fcntl is None:  # pragma: no cover
        raise ConfigurationError("plugin environments need fcntl locks (Linux or macOS)")
    fd = _acquire(root / f"{key}.lock", fcntl.LOCK_SH if shared else fcntl.LOCK_EX, wait)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)  # Closing the only descriptor releases the lock.


def remove_tree(path: Path) -> None:
    """Remove a folder: first renamed aside (atomic), so nobody sees it half-removed."""
    if not path.exists():
        return
    trash = path.parent / f"{TRASH_PREFIX}{path.name}-{secrets.token_hex(4)}"
    try:
        path.rename(trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)
