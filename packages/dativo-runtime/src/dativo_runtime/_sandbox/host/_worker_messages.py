"""Checks on what a worker sends back that is not Arrow: control messages, state, errors, file metadata.

Arrow data frames are checked by :mod:`._untrusted_arrow`; everything else a worker sends
is checked here, before the host acts on it (see docs/sandboxing.md, "What the host trusts
from a worker": nothing).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import PluginError
from dativo_plugin_sdk._frames import check_frames
from dativo_runtime._observability._logging import redact_text, truncate_text
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._sandbox._limits import DEFAULT_MEMORY_BYTES, format_bytes
from dativo_runtime._secrets import MASK, is_secret_key
from dativo_runtime._worker._protocol import MAX_CONTROL_CONTAINERS, MAX_FRAME_BYTES, ProtocolError

__all__ = [
    "MAX_ERROR_MESSAGE_CHARS",
    "MAX_PARTITION_STATES_BYTES",
    "MAX_PARTITION_STATES_CONTAINERS",
    "MAX_STATE_BYTES",
    "MIN_DATA_FRAME_BYTES",
    "bounded_error",
    "check_file_metadata",
    "check_message",
    "data_frame_limit",
    "encode_state",
]

MIN_DATA_FRAME_BYTES = 64 << 20
MAX_STATE_BYTES = 1 << 20
"""Largest state snapshot a worker may send (JSON), checked as each message arrives."""
MAX_PARTITION_STATES_BYTES = 3 << 20
"""Largest JSON of the states of one stream's partitions together, for a sandboxed reader.

The next run sends them all to its worker in one ``partitions`` request, a control frame of
at most 4 MiB (:data:`~dativo_runtime._worker._protocol.MAX_CONTROL_BYTES`); the 1 MiB left
over holds the request's other fields and its trace context. One partition's state
(:data:`MAX_STATE_BYTES`) always fits.
"""
MAX_PARTITION_STATES_CONTAINERS = MAX_CONTROL_CONTAINERS - 1_000
"""Most JSON arrays and objects the states of one stream's partitions may hold together.

Counted as the worker's decoder counts them (every ``[`` and ``{`` of the JSON text), less
what the rest of the ``partitions`` request holds.
"""
MAX_ERROR_MESSAGE_CHARS = 16_000
_DETAIL_CHARS = 4_000
_MAX_DETAILS = 100
_MAX_DETAIL_DEPTH = 8
_FRAME_LISTS = ("traceback", "full_traceback")


def data_frame_limit(limits: SandboxLimits) -> int:
    """The largest data frame the host reads from a worker with ``limits``.

    A worker cannot build a batch larger than its own memory, so the host refuses frames
    above the sandbox's memory limit (at least 64 MiB, at most the protocol's 512 MiB): the
    host's memory for a session stays proportional to what the operator granted it.
    """
    memory = limits.memory_bytes or DEFAULT_MEMORY_BYTES
    return max(MIN_DATA_FRAME_BYTES, min(MAX_FRAME_BYTES, memory))


_OPTIONAL = type(None)
_MESSAGE_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "loaded": {"info": (dict,), "config_schema": (dict, _OPTIONAL)},
    "ready": {"info": (dict,), "sandbox": (dict, _OPTIONAL)},
    "result": {},
    "error": {"error": (dict,)},
    "log": {"level": (int,), "logger": (str, _OPTIONAL), "message": (str, _OPTIONAL)},
    "batch": {"rows": (int,), "state": (dict, _OPTIONAL)},
    "end": {"state": (dict, _OPTIONAL), "changed": (bool, _OPTIONAL), "cancelled": (bool, _OPTIONAL)},
}
_REQUIRED_FIELDS = {"loaded": ("info",), "ready": ("info",), "error": ("error",), "batch": ("rows",)}


def check_message(message: Mapping[str, Any], size: int) -> None:
    """Check the shape of a control message from a worker (its ``op``, field types, state size).

    Args:
        message: The decoded message.
        size: Its size on the wire, in bytes.

    Raises:
        ProtocolError: Naming what is wrong.
    """
    op = message["op"]
    fields = _MESSAGE_FIELDS.get(op)
    if fields is None:
        raise ProtocolError(f"unknown message {op[:40]!r}")
    _refuse_non_finite(message)
    for name in _REQUIRED_FIELDS.get(op, ()):
        if name not in message:
            raise ProtocolError(f"a {op!r} message without {name!r}")
    for name, types in fields.items():
        value = message.get(name)
        if value is not None and (
            not isinstance(value, types) or (isinstance(value, bool) and bool not in types)
        ):
            raise ProtocolError(f"a {op!r} message whose {name!r} is a {type(value).__name__}")
    if "spans" in message and not isinstance(message["spans"], list):
        raise ProtocolError(f"a {op!r} message whose 'spans' is not a list")
    if op == "batch" and message["rows"] < 0:
        raise ProtocolError("a 'batch' message with a negative row count")
    state = message.get("state")
    if state is not None and size > MAX_STATE_BYTES and len(encode_state(state)) > MAX_STATE_BYTES:
        raise ProtocolError(
            f"the plugin's state is larger than {format_bytes(MAX_STATE_BYTES)}; keep cursors, not data, "
            "in the state"
        )


def _refuse_non_finite(message: Mapping[str, Any]) -> None:
    """Refuse a number that JSON parsing made infinite (``1e999``, or 400 digits): no recursion."""
    pending: list[Any] = [message]
    while pending:
        value = pending.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ProtocolError(
                    "a control message holds a number too large for a float (it became infinite)"
                )
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def encode_state(state: Mapping[str, Any]) -> str:
    """The JSON text of a state snapshot (strict: non-finite numbers are refused).

    Raises:
        ProtocolError: If the state cannot be JSON.
    """
    try:
        return json.dumps(state, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"the plugin's state is not JSON: {exc}") from None


def bounded_error(data: dict[str, Any]) -> dict[str, Any]:
    """An error from a worker with its message and the text in its details masked and cut to size.

    Its ``traceback`` and ``full_traceback`` (where the plugin failed) are checked with
    :func:`~dativo_plugin_sdk._frames.check_frames`: at most 50 frames of known keys, each
    string cut to size and its control characters escaped, line numbers that are integers.
    """
    bounded = dict(data)
    if isinstance(bounded.get("message"), str):
        # Masked as a log line is (known secrets, key=value pairs, URL passwords), so that no
        # output shows more of it than the logs do.
        bounded["message"] = truncate_text(redact_text(bounded["message"]), MAX_ERROR_MESSAGE_CHARS)
    details = bounded.get("details")
    if isinstance(details, dict):
        bounded["details"] = {
            str(key)[:200]: _masked(value, str(key)) for key, value in list(details.items())[:_MAX_DETAILS]
        }
        # Where the plugin failed, as the worker says: reduced to frames of bounded size and count.
        for key in _FRAME_LISTS:
            if key in details:
                # Source lines are shown as written (known secrets are masked where they are shown).
                bounded["details"][key] = check_frames(details[key], flagged=key == "full_traceback")
    return bounded


def _masked(value: Any, key: str = "", depth: int = 0) -> Any:
    """``value`` with its strings masked and cut, at any depth (a secret-looking key: masked whole)."""
    if key and is_secret_key(key) and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return MASK
    if isinstance(value, str):
        return truncate_text(redact_text(value), _DETAIL_CHARS)
    if depth >= _MAX_DETAIL_DEPTH:
        return None if isinstance(value, (dict, list)) else value
    if isinstance(value, dict):
        return {str(k)[:200]: _masked(v, str(k), depth + 1) for k, v in list(value.items())[:_MAX_DETAILS]}
    if isinstance(value, list):
        return [_masked(item, key, depth + 1) for item in value[:_MAX_DETAILS]]
    return value


_SIZE_KEYS = ("record_count", "size_bytes", "bytes_written", "records", "bytes")


def check_file_metadata(entry: Mapping[str, Any], output_dir: Path | None, *, ref: str) -> None:
    """Refuse file metadata a writer could only return to mislead the run's summary.

    Sizes and counts must be non-negative integers; a ``path`` of a writer with a local
    output folder must lie inside that folder.

    Raises:
        PluginError: Naming the entry and what is wrong with it.
    """
    problem = None
    for key in _SIZE_KEYS:
        value = entry.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            problem = f"its {key!r} is {value!r}, not a non-negative integer"
    path = entry.get("path")
    if path is not None and not isinstance(path, str):
        problem = f"its 'path' is a {type(path).__name__}, not a string"
    elif isinstance(path, str) and output_dir is not None and "://" not in path:
        where = os.path.normpath(os.path.join(output_dir, path))
        if os.path.commonpath([where, os.path.normpath(output_dir)]) != os.path.normpath(output_dir):
            problem = f"its 'path' {path[:200]!r} lies outside the writer's output folder {str(output_dir)!r}"
    if problem is not None:
        raise PluginError(
            f"plugin {ref!r}: write_batch() returned file metadata that the runtime refuses: {problem}",
            details={"ref": ref, "method": "write_batch", "problem": problem},
        )
