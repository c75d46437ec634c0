"""Pick the storage backend for a location, and match paths under it against globs.

The backends themselves live in :mod:`._local` and :mod:`._s3` (the interface in
:mod:`._base`); their names are re-exported here, where the rest of the runtime imports them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._storage._base import FileInfo, Storage
from dativo_runtime._storage._local import LocalStorage
from dativo_runtime._storage._s3 import S3Storage, is_s3_uri

__all__ = ["FileInfo", "LocalStorage", "S3Storage", "Storage", "match_glob", "open_storage"]


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
