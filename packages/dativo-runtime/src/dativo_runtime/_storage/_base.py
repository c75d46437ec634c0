"""What every storage backend offers: a root folder or prefix and the few operations commits and state need.

Paths given to a :class:`Storage` are relative to its root and use ``/``. Local writes
that must be atomic go to a temporary file that is fsynced and renamed into place; on S3
a single PUT is atomic. Exclusive creation and compare-and-swap (``If-None-Match`` /
``If-Match``) make leases possible on both.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["FileInfo", "Storage"]


@dataclass(frozen=True)
class FileInfo:
    """A file (object) under a storage root.

    Args:
        path: Path relative to the root, with ``/``.
        size: Size in bytes.
        mtime_ns: Modification time in nanoseconds since the epoch.
        token: A value that changes when the content changes (ETag, or mtime and size).
    """

    path: str
    size: int
    mtime_ns: int
    token: str


class Storage(abc.ABC):
    """A root folder or prefix; every method takes paths relative to it."""

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """The root as a path or ``s3://`` URI."""

    @property
    def is_local(self) -> bool:
        """Whether this is local disk."""
        return False

    def location(self, path: str) -> str:
        """The full path or URI of ``path``."""
        return self.uri.rstrip("/") + "/" + path.lstrip("/") if path else self.uri

    def check_writable(self) -> None:
        """Write and delete a probe file under ``_dativo/``: whatever fails raises the backend's error."""
        probe = f"_dativo/.probe-{uuid.uuid4().hex[:8]}"
        self.write_bytes(probe, b"dativo write probe")
        self.delete(probe)

    @abc.abstractmethod
    def read_bytes(self, path: str) -> bytes | None:
        """Return the content of ``path``, or ``None`` when it does not exist."""

    @abc.abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace ``path`` atomically with ``data``: readers see the old or the new content."""

    @abc.abstractmethod
    def create_exclusive(self, path: str, data: bytes) -> bool:
        """Create ``path`` only if it does not exist; return whether it was created."""

    @abc.abstractmethod
    def replace_if_unchanged(self, path: str, data: bytes, token: str) -> bool:
        """Replace ``path`` only if its :attr:`FileInfo.token` is still ``token``."""

    @abc.abstractmethod
    def stat(self, path: str) -> FileInfo | None:
        """Describe ``path``, or return ``None`` when it does not exist."""

    @abc.abstractmethod
    def list_files(self, prefix: str = "") -> Iterator[FileInfo]:
        """List every file below ``prefix`` (recursively), in path order."""

    @abc.abstractmethod
    def delete(self, path: str) -> None:
        """Delete ``path`` if it exists."""

    @abc.abstractmethod
    def delete_tree(self, prefix: str) -> None:
        """Delete everything below ``prefix``."""

    @abc.abstractmethod
    def move(self, source: str, destination: str) -> None:
        """Move a file; the destination appears whole (rename, or server-side copy then delete)."""

    @abc.abstractmethod
    def upload(self, local_file: Path, path: str) -> None:
        """Store a local file at ``path`` (the local file is consumed)."""

    @abc.abstractmethod
    def open_input(self, path: str) -> IO[bytes]:
        """Open ``path`` for streaming reads."""

    def list_dirs(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix``."""
        base = prefix.rstrip("/") + "/"
        names = set()
        for info in self.list_files(prefix):
            rest = info.path[len(base) :] if info.path.startswith(base) else ""
            if "/" in rest:
                names.add(rest.split("/", 1)[0])
        return sorted(names)
