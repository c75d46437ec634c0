"""A folder on local disk or a prefix in S3, with the few operations commits and state need.

Paths given to a :class:`Storage` are relative to its root and use ``/``. Local writes
that must be atomic go to a temporary file that is fsynced and renamed into place; on S3
a single PUT is atomic. Exclusive creation and compare-and-swap (``If-None-Match`` /
``If-Match``) make leases possible on both.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dativo_plugin_sdk import ConfigurationError, DativoError
from dativo_runtime._storage._s3 import S3Uri, is_s3_uri, map_s3_error, s3_client

__all__ = ["FileInfo", "LocalStorage", "S3Storage", "Storage", "match_glob", "open_storage", "unique_suffix"]


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


class S3Storage(Storage):
    """A prefix in an S3 bucket (any S3-compatible endpoint).

    Args:
        root: ``s3://bucket/prefix``.
        options: ``endpoint_url``, ``region`` and credentials (see :func:`s3_client`).
    """

    def __init__(self, root: str, options: Mapping[str, Any] | None = None) -> None:
        self.root = S3Uri.parse(root)
        self.options = dict(options or {})
        self.endpoint = self.options.get("endpoint_url")
        self._client: Any = None

    @property
    def uri(self) -> str:
        return str(self.root).rstrip("/")

    @property
    def client(self) -> Any:
        """The boto3 client, created on first use."""
        if self._client is None:
            self._client = s3_client(self.options)
        return self._client

    def key(self, path: str) -> str:
        """The object key of a relative path."""
        return self.root.child(path).key

    def _error(self, exc: BaseException, action: str, path: str) -> DativoError:
        return map_s3_error(exc, action=action, uri=self.location(path), endpoint=self.endpoint)

    @staticmethod
    def _code(exc: BaseException) -> str:
        response = getattr(exc, "response", None) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def read_bytes(self, path: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.root.bucket, Key=self.key(path))
            data: bytes = response["Body"].read()
            return data
        except Exception as exc:
            if self._code(exc) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._error(exc, "reading", path) from exc

    def write_bytes(self, path: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.root.bucket, Key=self.key(path), Body=data)
        except Exception as exc:
            raise self._error(exc, "writing", path) from exc

    def create_exclusive(self, path: str, data: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.root.bucket, Key=self.key(path), Body=data, IfNoneMatch="*")
        except Exception as exc:
            if self._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise self._error(exc, "writing", path) from exc
        return True

    def replace_if_unchanged(self, path: str, data: bytes, token: str) -> bool:
        try:
            self.client.put_object(Bucket=self.root.bucket, Key=self.key(path), Body=data, IfMatch=token)
        except Exception as exc:
            if self._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                return False
            raise self._error(exc, "writing", path) from exc
        return True

    def stat(self, path: str) -> FileInfo | None:
        try:
            head = self.client.head_object(Bucket=self.root.bucket, Key=self.key(path))
        except Exception as exc:
            if self._code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(exc, "inspecting", path) from exc
        modified = head["LastModified"]
        return FileInfo(path, int(head["ContentLength"]), int(modified.timestamp() * 1e9), str(head["ETag"]))

    def list_files(self, prefix: str = "") -> Iterator[FileInfo]:
        key_prefix = self.key(prefix)
        base = self.root.key.strip("/")
        if prefix and not key_prefix.endswith("/"):
            # A prefix names a folder unless an object has exactly that key.
            single = self.stat(prefix)
            if single is not None:
                yield single
                return
            key_prefix += "/"
        elif not prefix and base:
            key_prefix = base + "/"
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.root.bucket, Prefix=key_prefix):
                for item in page.get("Contents", []):
                    rel = item["Key"][len(base) + 1 :] if base else item["Key"]
                    yield FileInfo(
                        rel, int(item["Size"]), int(item["LastModified"].timestamp() * 1e9), str(item["ETag"])
                    )
        except DativoError:
            raise
        except Exception as exc:
            raise self._error(exc, "listing", prefix) from exc

    def delete(self, path: str) -> None:
        try:
            self.client.delete_object(Bucket=self.root.bucket, Key=self.key(path))
        except Exception as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                return
            raise self._error(exc, "deleting", path) from exc

    def delete_tree(self, prefix: str) -> None:
        keys = [self.key(info.path) for info in self.list_files(prefix)]
        try:
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                self.client.delete_objects(
                    Bucket=self.root.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
        except Exception as exc:
            raise self._error(exc, "deleting", prefix) from exc

    def move(self, source: str, destination: str) -> None:
        try:
            self.client.copy(
                {"Bucket": self.root.bucket, "Key": self.key(source)}, self.root.bucket, self.key(destination)
            )
        except Exception as exc:
            raise self._error(exc, "publishing", destination) from exc
        self.delete(source)

    def upload(self, local_file: Path, path: str) -> None:
        try:
            self.client.upload_file(str(local_file), self.root.bucket, self.key(path))
        except Exception as exc:
            raise self._error(exc, "uploading", path) from exc
        finally:
            with contextlib.suppress(OSError):
                local_file.unlink()

    def open_input(self, path: str) -> IO[bytes]:
        try:
            response = self.client.get_object(Bucket=self.root.bucket, Key=self.key(path))
        except Exception as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                raise ConfigurationError(
                    f"object {self.location(path)} does not exist", details={"uri": self.location(path)}
                ) from None
            raise self._error(exc, "reading", path) from exc
        body: IO[bytes] = response["Body"]
        return body

    def check_bucket(self) -> None:
        """Check the bucket exists and the credentials are accepted.

        Raises:
            AuthenticationError: Credentials refused.
            DativoConnectionError: Endpoint unreachable.
            ConfigurationError: Bucket missing.
        """
        try:
            self.client.head_bucket(Bucket=self.root.bucket)
        except Exception as exc:
            if self._code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise ConfigurationError(
                    f"bucket {self.root.bucket!r} does not exist"
                    + (f" at {self.endpoint}" if self.endpoint else "")
                    + "; create it or fix the path",
                    details={"uri": self.uri, "endpoint_url": self.endpoint},
                ) from None
            raise self._error(exc, "checking", "") from exc


def open_storage(location: str, options: Mapping[str, Any] | None = None, *, fsync: bool = True) -> Storage:
    """Return the storage for a local folder or an ``s3://`` URI.

    Args:
        location: An absolute folder path or ``s3://bucket/prefix``.
        options: S3 options (endpoint, region, credentials); ignored for local folders.
        fsync: Whether local atomic writes fsync files and folders.

    Returns:
        A :class:`LocalStorage` or :class:`S3Storage`.

    Raises:
        ConfigurationError: For another URI scheme.
    """
    if is_s3_uri(location):
        return S3Storage(location, options)
    if "://" in location:
        raise ConfigurationError(
            f"{location!r}: only local folders and s3:// URIs are supported", details={"location": location}
        )
    return LocalStorage(location, fsync=fsync)


def match_glob(pattern: str, path: str) -> bool:
    """Match ``path`` against a glob where ``**`` spans folders and ``*`` does not."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i)
            if end == -1:
                regex += re.escape(pattern[i])
                i += 1
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                regex += "[" + body.replace("\\", "\\\\") + "]"
                i = end + 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def unique_suffix() -> str:
    """A short random hex string."""
    return uuid.uuid4().hex[:8]
