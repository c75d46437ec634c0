"""Keep Hypothesis's on-disk caches out of the current folder while a conformance check runs.

Even with ``database=None``, Hypothesis writes caches (``constants/``, ``unicode_data/``)
under its storage folder, ``.hypothesis/`` in the current folder by default. A
conformance run must leave the author's project as it found it, so while the property
check runs the storage folder is a temporary one, removed afterwards; the previous folder
is restored when the last concurrent check is done.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["private_hypothesis_storage"]

_lock = threading.Lock()
_users = 0
_previous: Path | None = None
_temporary: str | None = None


def _current_home(storage_directory: Any) -> Path:
    """Hypothesis's storage folder now (older releases return a path, newer an object)."""
    try:
        current = storage_directory(intent_to_write=False)
    except TypeError:  # Hypothesis before intent_to_write
        current = storage_directory()
    return Path(getattr(current, "home_directory", current))


@contextmanager
def private_hypothesis_storage() -> Iterator[Path]:
    """Point Hypothesis's storage folder at a temporary folder for the duration of the block.

    Returns:
        A context manager yielding the temporary folder.
    """
    global _users, _previous, _temporary
    from hypothesis.configuration import set_hypothesis_home_dir, storage_directory

    with _lock:
        if _users == 0:
            _previous = _current_home(storage_directory)
            _temporary = tempfile.mkdtemp(prefix="dativo-conformance-hypothesis-")
            set_hypothesis_home_dir(_temporary)
        _users += 1
        assert _temporary is not None
        folder = Path(_temporary)
    try:
        yield folder
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                set_hypothesis_home_dir(_previous)
                shutil.rmtree(folder, ignore_errors=True)
                _previous = _temporary = None
