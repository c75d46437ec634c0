"""Structured logs on stderr: JSON lines for machines, short lines for people, secrets masked.

Every record carries the ``tenant``, ``job`` and ``run_id`` of the run in progress (set
with :func:`run_context`), also records logged by plugins and libraries.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from ._secrets import REDACTOR, RedactingStream

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "current_context", "run_context"]

_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "dativo_log_context", default=None
)
_CONTEXT_KEYS = ("tenant", "job", "run_id")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def run_context(**ids: str) -> Iterator[None]:
    """Attach ids (``tenant``, ``job``, ``run_id``) to every log record inside the block."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> dict[str, str]:
    """The ids :func:`run_context` set for this thread of execution."""
    return dict(_CONTEXT.get() or {})


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_CONTEXT.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the run ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            entry[key] = getattr(record, key, None)
        for key, value in _extras(record).items():
            if key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(REDACTOR.redact(entry), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``12:00:01 INFO  acme/orders 20240501T...: message`` for terminals."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        ids = ""
        tenant, job, run_id = (getattr(record, k, None) for k in _CONTEXT_KEYS)
        if job:
            ids = f" {tenant}/{job}" + (f" {run_id}" if run_id else "")
        text = f"{when} {record.levelname:<7}{ids}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None and record.levelno >= logging.DEBUG:
            text += f" ({type(record.exc_info[1]).__name__})"
        return REDACTOR.redact_text(text)


_HANDLER: logging.Handler | None = None


def configure_logging(*, log_format: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Send logs to stderr, structured.

    Args:
        log_format: ``json``, ``text``, or ``auto`` (text on a terminal, JSON otherwise).
        level: ``debug``, ``info``, ``warning`` or ``error``.
        stream: Where to write (``sys.stderr`` by default).
    """
    global _HANDLER
    target = stream if stream is not None else sys.stderr
    use_json = log_format == "json" or (
        log_format == "auto" and not getattr(target, "isatty", lambda: False)()
    )
    handler = logging.StreamHandler(RedactingStream(target))
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    if _HANDLER is not None:
        root.removeHandler(_HANDLER)
    root.addHandler(handler)
    _HANDLER = handler
    numeric = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    # Libraries are chatty at debug level; keep them at warning unless asked.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING if numeric > logging.DEBUG else logging.DEBUG)
