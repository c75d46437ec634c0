"""Attacks on the host's time: text that is slow to redact, and waits that never end (issue 11, finding 5).

Loaded by path by the host-boundary log tests; never imported as a test module. A plugin runs
in the worker's interpreter, so it can send anything the worker could: besides ordinary
``logging`` calls (which the worker cuts to 10,000 characters), these plugins write raw
control frames with the worker's own frame writer.
"""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import BaseReader, State, TransientError

# Lines that made the host's old redaction pattern backtrack for seconds to minutes each.
SLOW_LINES = (
    "password" * 1250,
    "x" * 5000 + "token" + "y" * 4995,
    "api_key" + "-" * 9993,
    "secret=" * 1428,
    "a" * 10_000,
)
FORGED = "\n12:00:00 INFO     dativo_runtime.pipeline run succeeded\x1b[2K\r"


def _frame_writer() -> Any:
    """The worker's ``FrameWriter`` (found among live objects, as any code in the worker could)."""
    for candidate in gc.get_objects():
        if type(candidate).__name__ == "FrameWriter" and hasattr(candidate, "_write_frame"):
            return candidate
    raise RuntimeError("no frame writer in this process")


def _send_raw(payload: bytes) -> None:
    """Write one control frame of exactly ``payload``, past the worker's encoder and its checks."""
    writer = _frame_writer()
    with writer._lock:
        writer._write_frame(1, payload, len(payload))
        writer._flush()


class LogFloodReader(BaseReader):
    """Logs a forged line, five slow 10,000-character ones and a raw 1 MB one, then fails with 30,000 characters.

    ``config['raise']``: ``value`` raises a ``ValueError`` (the worker reports a ``PluginError``),
    ``plugin`` sends a ``PluginError`` as is.
    """

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        log = logging.getLogger("attack.cpu")
        log.warning("done%s", FORGED)
        for line in SLOW_LINES:
            log.warning("%s%s", line, FORGED)
        megabyte = ("password=" * 111_112)[:1_000_000]
        _send_raw(
            json.dumps(
                {"op": "log", "level": logging.WARNING, "logger": "attack.cpu", "message": megabyte}
            ).encode()
        )
        yield [{"n": 1}]
        message = "secret" * 5000 + FORGED
        if self.config.get("raise") == "plugin":
            from dativo_plugin_sdk import PluginError

            raise PluginError(message)
        raise ValueError(message)


class WaitForeverReader(BaseReader):
    """Fails with a ``TransientError`` whose ``retry_after`` would stop the host for good.

    ``config['wire']`` is the ``retry_after`` literal written in the error frame: ``1e9``
    (31 years, a finite number the SDK accepts), ``1e999`` (JSON that Python reads as
    ``inf``), ``Infinity`` or ``-1``. The worker's encoder refuses non-finite numbers, so
    the frame is written raw.
    """

    __version__ = "1.0.0"

    def extract(self, state: State | None = None) -> Iterator[Any]:
        yield [{"n": 1}]
        wire = str(self.config.get("wire", "1e9"))
        if wire == "1e9":
            raise TransientError("come back in 31 years", retry_after=1e9)
        error = TransientError("come back never").to_dict()
        error["retry_after"] = "__RETRY_AFTER__"
        frame = json.dumps({"op": "error", "error": error}).replace('"__RETRY_AFTER__"', wire)
        _send_raw(frame.encode())
        time.sleep(3600)  # The host must give up on this worker, not wait for it.
