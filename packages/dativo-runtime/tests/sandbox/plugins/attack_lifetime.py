"""Lifetime attack plugins: a worker that tries to outlive its run.

Loaded by path by the host-boundary lifetime tests; never imported as a test module.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import BaseReader, PluginError, State


class LingeringReader(BaseReader):
    """Yields one batch, then holds the worker busy (``config['mode']``: ``sleep``, ``spin``, ``fork``).

    ``fork`` starts a child that ignores SIGTERM and SIGHUP and sleeps, then sleeps itself:
    the sandbox must end the whole tree, not only the worker.
    """

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"step": "started", "pid": os.getpid()}]
        mode = self.config.get("mode", "sleep")
        seconds = float(self.config.get("seconds", 3600))
        if mode == "fork" and os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            time.sleep(seconds)
            os._exit(0)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if mode == "spin":
                continue
            time.sleep(0.5)
        yield [{"step": "finished", "pid": os.getpid()}]


class QuickReader(BaseReader):
    """Yields ``config['count']`` records, or raises after the first batch with ``config['fail']``."""

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"n": 0}]
        if self.config.get("fail"):
            raise PluginError("failing on purpose")
        yield [{"n": n} for n in range(1, int(self.config.get("count", 10)))]
