"""A plugin whose import has a side effect: it writes a marker file when DATIVO_TEST_IMPORT_MARKER is set.

The sandbox tests set that variable in the host only; the sandbox never sees host variables,
so the marker appears only if the module is imported in the host process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import BaseReader, State

_MARKER = os.environ.get("DATIVO_TEST_IMPORT_MARKER")
if _MARKER:
    Path(_MARKER).write_text(f"imported in pid {os.getpid()}\n")

IMPORTED_IN_PID = os.getpid()


class MarkerReader(BaseReader):
    """Yields the pid its module was imported in."""

    __version__ = "2.3.4"
    requires_sdk = ">=1.0,<2"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"imported_in_pid": IMPORTED_IN_PID}]


class FutureReader(BaseReader):
    """Requires an SDK that does not exist yet."""

    __version__ = "1.0.0"
    requires_sdk = ">=2,<3"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield []
