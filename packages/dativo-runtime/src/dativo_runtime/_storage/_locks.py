"""Leases: "this run is alive and owns that thing", on local disk and on S3.

Local leases are ``flock`` locks on a file: the kernel releases them when the owning
process dies, even by ``kill -9``, so a free lock means a dead owner. S3 has no locks, so
an S3 lease is an object created with ``If-None-Match: *`` holding an expiry time that a
background thread pushes forward (``If-Match`` on the last ETag); a lease whose expiry
has passed belongs to a dead run and may be taken over.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from typing import Any

from dativo_runtime._storage._base import Storage
from dativo_runtime._storage._local import LocalStorage

__all__ = ["Lease", "acquire_lease", "read_lease"]

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows)
    fcntl = None  # type: ignore[assignment]


class Lease:
    """A held lease; release it with :meth:`release` (or ``with``)."""

    def __init__(self, storage: Storage, path: str, owner: str) -> None:
        self.storage = storage
        self.path = path
        self.owner = owner
        self.lost = False

    def release(self, *, delete: bool = True) -> None:
        """Give the lease up (and delete its file when ``delete``). Safe to call twice."""

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _body(owner: str, ttl: float) -> bytes:
    now = time.time()
    return json.dumps(
        {
            "owner": owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now,
            "expires_at": now + ttl,
        }
    ).encode()


class _FlockLease(Lease):
    def __init__(self, storage: LocalStorage, path: str, owner: str, fd: int) -> None:
        super().__init__(storage, path, owner)
        self._fd: int | None = fd

    def release(self, *, delete: bool = True) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if delete:
            assert isinstance(self.storage, LocalStorage)
            with contextlib.suppress(OSError):
                os.unlink(self.storage.path(self.path))
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class _S3Lease(Lease):
    def __init__(self, storage: Storage, path: str, owner: str, ttl: float, token: str) -> None:
        super().__init__(storage, path, owner)
        self.ttl = ttl
        self._token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"dativo-lease-{owner}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(max(self.ttl / 3, 0.05)):
            try:
                ok = self.storage.replace_if_unchanged(self.path, _body(self.owner, self.ttl), self._token)
                info = self.storage.stat(self.path) if ok else None
            except Exception:
                continue  # A failed renewal is retried at the next tick.
            if not ok or info is None:
                self.lost = True
                return
            self._token = info.token

    def release(self, *, delete: bool = True) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=5)
        if delete and not self.lost:
            with contextlib.suppress(Exception):
                current = read_lease(self.storage, self.path)
                if current is not None and current.get("owner") == self.owner:
                    self.storage.delete(self.path)


def _acquire_local(storage: LocalStorage, path: str, owner: str) -> Lease | None:
    if fcntl is None:  # pragma: no cover
        raise RuntimeError("local leases need fcntl (POSIX)")
    target = storage.path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise storage.error_for(exc, "create the lock", path) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    # The file may have been unlinked by its previous holder between our open and flock.
    try:
        same = os.fstat(fd).st_ino == os.stat(target).st_ino
    except FileNotFoundError:
        same = False
    if not same:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        return _acquire_local(storage, path, owner)
    os.ftruncate(fd, 0)
    os.pwrite(fd, _body(owner, 0), 0)
    return _FlockLease(storage, path, owner, fd)


def acquire_lease(storage: Storage, path: str, *, owner: str, ttl: float = 120.0) -> Lease | None:
    """Take the lease at ``path`` if nobody alive holds it.

    Args:
        storage: Where the lease lives.
        path: The lease file, relative to the storage root.
        owner: Who takes it (a run id), recorded for messages.
        ttl: S3 only: seconds a lease stays valid without renewal (renewed every ``ttl/3``).

    Returns:
        The held :class:`Lease`, or ``None`` when a live owner holds it.
    """
    if isinstance(storage, LocalStorage):
        return _acquire_local(storage, path, owner)
    body = _body(owner, ttl)
    if storage.create_exclusive(path, body):
        info = storage.stat(path)
        return _S3Lease(storage, path, owner, ttl, info.token if info else "")
    info = storage.stat(path)
    current = read_lease(storage, path)
    if info is None:
        return acquire_lease(storage, path, owner=owner, ttl=ttl)
    if current is not None and float(current.get("expires_at", 0)) > time.time():
        return None
    if storage.replace_if_unchanged(path, body, info.token):
        info = storage.stat(path)
        return _S3Lease(storage, path, owner, ttl, info.token if info else "")
    return None


def read_lease(storage: Storage, path: str) -> dict[str, Any] | None:
    """Return what a lease file says about its holder (``None`` if absent or unreadable)."""
    try:
        data = storage.read_bytes(path)
    except Exception:
        return None
    if not data:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
