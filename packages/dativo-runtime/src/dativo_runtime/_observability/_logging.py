"""Logs: one JSON object per line on stderr (a readable line on a terminal), secrets removed.

This is the runtime's one logging setup: the CLI's ``--log-format``/``--log-level`` (and
``DATIVO_LOG_FORMAT``/``DATIVO_LOG_LEVEL``), the pipeline's run ids and ``serve`` all go
through it. :func:`configure_logging` installs one handler with two filters on the root
logger:

* :class:`LogContextFilter` adds the ``tenant``, ``job`` and ``run_id`` set with
  :func:`log_context`, and the current OpenTelemetry ``trace_id``/``span_id``;
* :class:`RedactingFilter` removes secrets from the message, the ``extra`` fields and the
  exception text: every value the process-wide redactor knows (job-file secrets), values
  given to it, values under secret-looking keys (``password=...``, ``"token": "..."``,
  ``extra={"api_key": ...}``), passwords in URLs and ``Bearer``/``Basic`` credentials.

A JSON line holds ``ts``, ``level``, ``logger``, ``message``, the context ids that are
set, the record's ``extra`` fields, and ``error`` (type, message, traceback, and
``error_code``/``retryable`` for Dativo errors) when an exception is attached. A
``traceback`` extra that is a list of frames (where a plugin failed, see
:mod:`._plugin_frames`) stays a list in a JSON line and becomes ``  | at FILE:LINE in
FUNCTION`` continuation lines in a human one.

Log text is untrusted: a plugin's messages and errors reach these records. So redaction
costs time linear in the text (every pattern has bounded repetitions, and a key is tried
only where a token starts), text is cut to :data:`MAX_TEXT_CHARS` with a visible marker
before the patterns run (:func:`truncate_text`), and a human line shows control
characters escaped (``\\n``, ``\\x1b``...), so a message can neither forge a line nor
drive the terminal. JSON lines escape them as JSON does.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import math
import re
import sys
import types
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, Literal

from dativo_plugin_sdk import DativoError
from dativo_plugin_sdk._frames import format_frames
from dativo_runtime._observability._tracing import current_trace_ids
from dativo_runtime._secrets import MASK, REDACTOR, RedactingStream, Redactor, is_secret_key

__all__ = [
    "CONTEXT_FIELDS",
    "MAX_TEXT_CHARS",
    "HumanLogFormatter",
    "JsonLogFormatter",
    "LogContextFilter",
    "RedactingFilter",
    "configure_logging",
    "escape_control",
    "log_context",
    "redact_text",
    "truncate_text",
]

CONTEXT_FIELDS = ("tenant", "job", "run_id", "trace_id", "span_id")
"""Fields :class:`LogContextFilter` sets on every record (``None`` when unknown)."""

_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "dativo_log_context", default=types.MappingProxyType({})
)
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    *CONTEXT_FIELDS,
}
_RESERVED = frozenset({"ts", "level", "logger", "message", "error", *CONTEXT_FIELDS})
_NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "docker")

MAX_TEXT_CHARS = 16 * 1024
"""Longest text a log record keeps of a message, an ``extra`` string or an error's text."""

_NEAR_SPACE = 256  # How far a cut moves to a space, so that no token is left half shown.

# Words that make a key secret-looking (the same idea as ``is_secret_key``, which confirms each match).
_SECRET_KEY_WORDS = (
    "password|passwd|passphrase|secret|token|credential|api_?key|apikey|private_?key|access_?key"
    "|signature|authorization|pwd|auth"
)
_KEY_CHARS = r"A-Za-z0-9_.\-"
_MAX_KEY = 128
_MAX_VALUE = MAX_TEXT_CHARS
# Redaction must cost time linear in the text whatever a plugin logs. So every repetition is
# bounded, and a key is tried only where a token starts (the look-behind), after a look-ahead
# has seen a secret word in it: each character starts at most one attempt, of bounded cost. A
# value ends the pattern, so a match never backtracks into it; a quoted value with no closing
# quote is masked to the end of its line.
_KEY_VALUE = re.compile(
    rf"""(?<![{_KEY_CHARS}"'])(?=["']?[{_KEY_CHARS}]{{0,{_MAX_KEY}}}?(?:{_SECRET_KEY_WORDS}))"""
    rf"""(?P<key>["']?[{_KEY_CHARS}]{{1,{_MAX_KEY}}}["']?)"""
    r"""(?P<sep>\s{0,16}[=:]\s{0,16})"""
    rf"""(?P<value>"[^"\n]{{0,{_MAX_VALUE}}}"?|'[^'\n]{{0,{_MAX_VALUE}}}'?|[^\s,;&)}}\]]{{1,{_MAX_VALUE}}})""",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^:/@\s]{1,256}:)"
    rf"(?P<password>[^@/\s]{{1,{_MAX_VALUE}}})(?P<at>@)"
)
_AUTH_SCHEME = re.compile(
    rf"(?P<scheme>\b(?:Bearer|Basic|Token)\s{{1,16}})(?P<credential>[A-Za-z0-9._~+/=-]{{6,{_MAX_VALUE}}})",
    re.IGNORECASE,
)

# What a human line shows escaped: C0 controls, DEL and C1 controls (a message could end the
# line or drive the terminal with them), line and paragraph separators, and the bidirectional
# controls that reorder how a line reads.
_INVISIBLE = (0x061C, 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROL_ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    0x09: "\\t",
    0x0A: "\\n",
    0x0D: "\\r",
    **{code: f"\\u{code:04x}" for code in _INVISIBLE},
}
# JSON escapes C0 controls itself; these are the rest, escaped the JSON way.
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in (0x7F, *range(0x80, 0xA0), *_INVISIBLE)}


def _mask_key_value(match: re.Match[str]) -> str:
    key = match.group("key").strip("\"'").rsplit(".", 1)[-1]
    if not is_secret_key(key):
        return match.group(0)
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    closing = quote if quote and len(value) > 1 and value.endswith(quote) else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{MASK}{closing}"


def _head(text: str, size: int) -> str:
    """The first ``size`` characters of ``text``, ending at a space near the cut if there is one."""
    head = text[:size]
    if text[size : size + 1].isspace():
        return head
    space = max(head.rfind(c, max(size - _NEAR_SPACE, 0)) for c in " \t\n")
    return head[:space] if space >= 0 else head


def _tail(text: str, size: int) -> str:
    """The last ``size`` characters of ``text``, starting after a space near the cut if there is one."""
    start = len(text) - size
    tail = text[start:]
    if text[start - 1 : start].isspace():
        return tail
    found = [i for i in (tail.find(c, 0, _NEAR_SPACE) for c in " \t\n") if i >= 0]
    return tail[min(found) + 1 :] if found else tail


def _cut(text: str, limit: int, keep_end: bool) -> tuple[str, str, str]:
    """``text`` as (start kept, marker, end kept); the marker and end are empty when nothing is cut."""
    if len(text) <= limit:
        return text, "", ""
    if not keep_end:
        head = _head(text, limit)
        return head, f"... [truncated {len(text) - len(head)} chars]", ""
    head, tail = _head(text, limit - limit // 2), _tail(text, limit // 2)
    return head, f"\n... [truncated {len(text) - len(head) - len(tail)} chars] ...\n", tail


def truncate_text(text: str, limit: int = MAX_TEXT_CHARS, *, keep_end: bool = False) -> str:
    """Cut ``text`` to at most ``limit`` characters, saying how many were cut.

    The cut moves to a space when one is near, so that a word, a URL or a credential is
    kept whole or not at all, and redaction by pattern after the cut still recognises it.

    Args:
        text: Untrusted text (a plugin's message, an error's text, a traceback).
        limit: How many characters of ``text`` to keep at most (the marker comes on top).
        keep_end: Keep the start and the end, as for a traceback whose last lines say what
            failed, instead of the start only.

    Returns:
        ``text`` itself when it is short enough; otherwise what is kept, with a
        ``... [truncated N chars]`` marker where the rest was.

    Example:
        >>> truncate_text("a" * 20, 8)
        'aaaaaaaa... [truncated 12 chars]'
        >>> truncate_text("first line " + "x" * 50 + " last line", 20, keep_end=True)
        'first line\\n... [truncated 52 chars] ...\\nlast line'
    """
    return "".join(_cut(text, limit, keep_end))


def escape_control(text: str) -> str:
    r"""Show control characters as escapes, so that text can neither forge a line nor drive a terminal.

    Args:
        text: Any text.

    Returns:
        ``text`` with ``\n``, ``\r``, ``\t`` written as such, other C0 and C1 controls and DEL
        as ``\xNN``, and line separators and bidirectional controls as ``\uNNNN``.

    Example:
        >>> print(escape_control("done\n12:00:00 INFO  forged \x1b[2J"))
        done\n12:00:00 INFO  forged \x1b[2J
    """
    return text.translate(_CONTROL_ESCAPES)


def _redact_patterns(text: str) -> str:
    """Mask URL passwords, ``Bearer``/``Basic`` credentials and secret-looking pairs (linear time)."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}{m.group('at')}", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group('scheme')}{MASK}", text)
    return _KEY_VALUE.sub(_mask_key_value, text)


def redact_text(
    text: str, redactor: Redactor = REDACTOR, secrets: Iterable[str] = (), *, keep_end: bool = False
) -> str:
    """Remove secrets from free text, cut to :data:`MAX_TEXT_CHARS` characters.

    Known values are masked in the whole text first (plain substring replacement, linear),
    so that a cut never leaves part of one; then the text is cut (:func:`truncate_text`),
    and the patterns run on what is kept, in time linear in it, never on the marker.

    Args:
        text: A message, an exception's text, a traceback.
        redactor: Its known secret values are masked.
        secrets: More values to mask.
        keep_end: Keep the start and the end of a long text (a traceback) instead of the start.

    Returns:
        ``text`` with known values, secret-looking ``key=value`` pairs, URL passwords
        and ``Bearer``/``Basic`` credentials replaced by ``***``, and a
        ``... [truncated N chars]`` marker where a long text was cut.

    Example:
        >>> redact_text("connect password=hunter22 to https://u:pw1234@db:5432", Redactor())
        'connect password=*** to https://u:***@db:5432'
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    head, marker, tail = _cut(redactor.redact_text(text), MAX_TEXT_CHARS, keep_end)
    return _redact_patterns(head) + marker + (_redact_patterns(tail) if tail else "")


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Add ``tenant``, ``job``, ``run_id`` (or other fields) to every record in the block.

    Example:
        >>> with log_context(tenant="acme", job="orders", run_id="r-1"):
        ...     logging.getLogger("dativo.run").info("started")
    """
    merged = {**_CONTEXT.get(), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class LogContextFilter(logging.Filter):
    """Sets :data:`CONTEXT_FIELDS` on each record from :func:`log_context` and the current span."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get()
        for name in ("tenant", "job", "run_id"):
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        ids = current_trace_ids()
        record.trace_id, record.span_id = ids if ids else (None, None)
        for name, value in context.items():
            if name not in CONTEXT_FIELDS and not hasattr(record, name):
                setattr(record, name, value)
        return True


def _json_safe(value: Any, depth: int = 0) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if depth > 8:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v, depth + 1) for v in value]
    return str(value)


class RedactingFilter(logging.Filter):
    """Removes secrets from a record's message, ``extra`` fields and exception text.

    Each text is cut to :data:`MAX_TEXT_CHARS` first (a traceback keeps its start and its
    end), so a record costs bounded time and space whatever a plugin sent.

    Args:
        redactor: Known secret values (the process-wide one by default).
        secrets: More values to remove.
    """

    def __init__(self, redactor: Redactor = REDACTOR, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._redactor = redactor
        self._secrets = tuple(str(s) for s in secrets if s)

    def _text(self, text: str, *, keep_end: bool = False) -> str:
        return redact_text(text, self._redactor, self._secrets, keep_end=keep_end)

    def _value(self, value: Any, key: str | None) -> Any:
        if (
            key is not None
            and is_secret_key(key)
            and value not in (None, "", {}, [])
            and not isinstance(value, (Mapping, list, tuple))
        ):
            return MASK
        if isinstance(value, Mapping):
            return {k: self._value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v, None) for v in value]
        if isinstance(value, str):
            return self._text(value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # A bad format string must not lose the record.
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self._text(message)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRIBUTES:
                setattr(record, key, self._value(_json_safe(value), key))
        if record.exc_info and record.exc_info[1] is not None:
            if not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._text(record.exc_text, keep_end=True)
            exc = record.exc_info[1]
            record.dativo_error = {
                "type": type(exc).__name__,
                "message": self._text(str(exc)),
                **(
                    {"error_code": exc.error_code, "retryable": exc.retryable}
                    if isinstance(exc, DativoError)
                    else {}
                ),
            }
        elif record.exc_text:
            record.exc_text = self._text(record.exc_text, keep_end=True)
        if record.stack_info:
            record.stack_info = self._text(record.stack_info, keep_end=True)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD_ATTRIBUTES or key == "dativo_error":
            continue
        extras[f"extra.{key}" if key in _RESERVED else key] = _json_safe(value)
    return extras


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, tz=datetime.timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                event[name] = value
        event.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            error = dict(getattr(record, "dativo_error", None) or {})
            error["traceback"] = record.exc_text
            event["error"] = error
        if record.stack_info:
            event["stack"] = record.stack_info
        return json.dumps(event, ensure_ascii=False, default=str).translate(_JSON_ESCAPES)


def _are_frames(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, Mapping) and "file" in v for v in value)


class HumanLogFormatter(logging.Formatter):
    """``12:00:01 INFO  acme/orders [run r-1] message key=value`` for a terminal.

    Control characters show as escapes (:func:`escape_control`), and each line of a
    traceback starts with ``  | ``: a message cannot pass for a line of its own.
    """

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        parts = [when, f"{record.levelname:<7}"]
        tenant, job, run = (getattr(record, n, None) for n in ("tenant", "job", "run_id"))
        if job:
            parts.append(f"{tenant}/{job}" if tenant else str(job))
        if run:
            parts.append(f"[run {run}]")
        parts.append(record.getMessage())
        extras = _extras(record)
        frames = extras.pop("traceback", None) if _are_frames(extras.get("traceback")) else None
        if extras:
            parts.append(" ".join(f"{k}={v}" for k, v in extras.items()))
        line = escape_control(" ".join(parts))
        if frames:
            # Where a plugin failed, one continuation line per frame and per source line.
            line += "".join(f"\n  | {escape_control(part)}" for part in format_frames(frames, indent=""))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "".join(f"\n  | {escape_control(part)}" for part in record.exc_text.split("\n"))
        return line


def configure_logging(
    *,
    stream: IO[str] | None = None,
    level: int | str = "info",
    fmt: Literal["auto", "json", "text"] = "auto",
    redactor: Redactor = REDACTOR,
    secrets: Iterable[str] = (),
    logger: logging.Logger | None = None,
) -> logging.Handler:
    """Send logs to ``stream`` as JSON lines (or human lines on a terminal), secrets removed.

    Calling it again replaces the handler it installed before. Below ``debug``, the
    chatty libraries (botocore, urllib3...) stay at ``warning``.

    Args:
        stream: Where to write; ``sys.stderr`` by default.
        level: ``debug``, ``info``, ``warning``, ``error`` (any case) or a ``logging`` level.
        fmt: ``json``, ``text`` (human lines), or ``auto`` (text when ``stream`` is a terminal).
        redactor: Known secret values.
        secrets: More values to remove.
        logger: The logger to configure; the root logger by default.

    Returns:
        The installed handler.

    Raises:
        ValueError: If ``fmt`` or ``level`` is not one of the accepted values.
    """
    if fmt not in ("auto", "json", "text"):
        raise ValueError(f"log format must be auto, json or text, not {fmt!r}")
    numeric = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level must be debug, info, warning or error, not {level!r}")
    out = sys.stderr if stream is None else stream
    target = logging.getLogger() if logger is None else logger
    for handler in list(target.handlers):
        if getattr(handler, "_dativo_handler", False):
            target.removeHandler(handler)
            handler.close()
    if fmt == "auto":
        isatty = getattr(out, "isatty", None)
        fmt = "text" if callable(isatty) and isatty() else "json"
    # The stream masks known secrets once more, in whatever a formatter produced.
    handler = logging.StreamHandler(RedactingStream(out, redactor))
    handler._dativo_handler = True  # type: ignore[attr-defined]
    handler.addFilter(LogContextFilter())
    handler.addFilter(RedactingFilter(redactor, secrets))
    handler.setFormatter(HumanLogFormatter() if fmt == "text" else JsonLogFormatter())
    target.addHandler(handler)
    target.setLevel(numeric)
    for noisy in _NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING if numeric > logging.DEBUG else logging.DEBUG)
    return handler
