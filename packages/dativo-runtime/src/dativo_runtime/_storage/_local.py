"""A storage root on local disk: atomic writes by fsync and rename, errors mapped to Dativo's."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dativo_plugin_sdk import ConfigurationError, DativoError
from dativo_runtime._storage._base import FileInfo, Storage

__all__ = ["LocalStorage"]


class LocalStorage(Storage):
    """A folder on local disk."""

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync

    @property
    def uri(self) -> str:
        return str(self.root)

    @property
    def is_local(self) -> bool:
        return True

    def path(self, path: str) -> Path:
        """The local :class:`Path` of a relative path."""
        return self.root / path if path else self.root

    def _fsync_dir(self, folder: Path) -> None:
        if not self.fsync:
            return
        try:
            fd = os.open(folder, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def error_for(self, exc: OSError, action: str, path: str) -> DativoError:
        """The Dativo error for an OSError met while doing ``action`` on ``path``."""
        where = self.location(path)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ConfigurationError(
                f"cannot {action} {where}: {exc.strerror}; check the folder's permissions",
                details={"path": where},
            )
        if exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            return ConfigurationError(
                f"cannot {action} {where}: part of the path is not a folder ({exc.strerror}); fix the path",
                details={"path": where},
            )
        if exc.errno == errno.ENOSPC:
            return DativoError(
                f"cannot {action} {where}: disk full", error_code="DISK_FULL", details={"path": where}
            )
        return DativoError(
            f"cannot {action} {where}: {exc.strerror or exc}",
            error_code="STORAGE_ERROR",
            details={"path": where},
        )

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return self.path(path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.error_for(exc, "read", path) from exc

    def write_bytes(self, path: str, data: bytes) -> None:
        target = self.path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    if self.fsync:
                        os.fsync(handle.fileno())
                os.replace(temp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
            self._fsync_dir(target.parent)
        except OSError as exc:
            raise self.error_for(exc, "write", path) from exc

    def create_exclusive(self, path: str, data: bytes) -> bool:
        target = self.path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise self.error_for(exc, "create", path) from exc
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return True

    def replace_if_unchanged(self, path: str, data: bytes, token: str) -> bool:
        # Local leases use flock (see _locks.py); this is best effort for completeness.
        info = self.stat(path)
        if info is None or info.token != token:
            return False
        self.write_bytes(path, data)
        return True

    def stat(self, path: str) -> FileInfo | None:
        try:
            st = self.path(path).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.error_for(exc, "inspect", path) from exc
        return FileInfo(path, st.st_size, st.st_mtime_ns, f"{st.st_mtime_ns}-{st.st_size}")

    def list_files(self, prefix: str = "") -> Iterator[FileInfo]:
        base = self.path(prefix)
        if not base.exists():
            return
        if base.is_file():
            info = self.stat(prefix)
            if info is not None:
                yield info
            return
        found = []
        for folder, _, files in os.walk(base):
            for name in files:
                full = Path(folder) / name
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                rel = full.relative_to(self.root).as_posix()
                found.append(FileInfo(rel, st.st_size, st.st_mtime_ns, f"{st.st_mtime_ns}-{st.st_size}"))
        yield from sorted(found, key=lambda f: f.path)

    def list_dirs(self, prefix: str) -> list[str]:
        base = self.path(prefix)
        try:
            return sorted(p.name for p in base.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    def delete(self, path: str) -> None:
        try:
            self.path(path).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self.error_for(exc, "delete", path) from exc

    def delete_tree(self, prefix: str) -> None:
        target = self.path(prefix)
        try:
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self.error_for(exc, "delete", prefix) from exc

    def move(self, source: str, destination: str) -> None:
        target = self.path(destination)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.path(source), target)
        except OSError as exc:
            raise self.error_for(exc, "move to", destination) from exc
        self._fsync_dir(target.parent)

    def upload(self, local_file: Path, path: str) -> None:
        target = self.path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(local_file), target)
        except OSError as exc:
            raise self.error_for(exc, "write", path) from exc

    def open_input(self, path: str) -> IO[bytes]:
        try:
            return self.path(path).open("rb")
        except FileNotFoundError:
            raise ConfigurationError(
                f"file {self.location(path)} does not exist", details={"path": self.location(path)}
            ) from None
        except OSError as exc:
            raise self.error_for(exc, "read", path) from exc
