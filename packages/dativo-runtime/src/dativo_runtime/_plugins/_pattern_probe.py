"""Trying a sandboxed plugin's regular expressions on the config in a child process, under a deadline.

A plugin's ``config_schema`` comes from its sandbox worker, so it is untrusted input, and
the host applies it: ``jsonschema`` (and the secret and did-you-mean lookups) run
``re.search`` with the schema's ``pattern`` values and ``patternProperties`` keys over the
config's strings and keys. A pattern with nested repetition, such as ``(.*.*)*X``, takes
exponential time on an ordinary URL, and ``re`` holds the interpreter while it backtracks:
the host would hang where no deadline can reach it.

So before the host applies such a schema, every (pattern, string) pair it could try is run
once in a short-lived ``python -I`` child with the same ``re`` engine, killed at a deadline.
Matching is deterministic: pairs that finish there finish in the host too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from dativo_plugin_sdk import PluginError
from dativo_runtime._plugins._python_child import run_python_child

__all__ = ["PATTERN_PROBE_TIMEOUT_S", "probe_patterns"]

PATTERN_PROBE_TIMEOUT_S = 5.0
"""Seconds every pattern of a schema may take over the whole config, child start included."""

_MAX_PAIRS = 200_000

# Runs in the child: read {"patterns": [...], "strings": [...]}, search each pair, say "ok".
_CHILD = """
import json, re, sys
data = json.load(sys.stdin)
for pattern in data["patterns"]:
    try:
        compiled = re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        continue
    for text in data["strings"]:
        compiled.search(text)
print("ok")
"""


def _patterns(schema: Any, depth: int = 0) -> Iterator[str]:
    """Every string the host may use as a regular expression, at any depth of ``schema``."""
    if depth > 200:
        return
    if isinstance(schema, Mapping):
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            yield pattern
        by_pattern = schema.get("patternProperties")
        if isinstance(by_pattern, Mapping) and by_pattern:
            keys = [str(key) for key in by_pattern]
            yield from keys
            yield "|".join(keys)  # how jsonschema tests additionalProperties
        for value in schema.values():
            yield from _patterns(value, depth + 1)
    elif isinstance(schema, list):
        for item in schema:
            yield from _patterns(item, depth + 1)


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string and key of ``value``, at any depth."""
    if depth > 200:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item, depth + 1)


def _too_slow(ref: str, message: str) -> PluginError:
    return PluginError(
        f"plugin {ref!r} declares a config_schema whose patterns {message}; a pattern with nested "
        "repetition (such as '(a+)+' or '(.*.*)*') backtracks exponentially. Rewrite the pattern "
        "without nested quantifiers",
        details={"ref": ref, "reason": "invalid_config_schema"},
    )


def probe_patterns(
    ref: str,
    schema: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    timeout: float = PATTERN_PROBE_TIMEOUT_S,
) -> None:
    """Refuse a schema whose patterns take too long on ``config``; nothing runs when it has none.

    Args:
        ref: The plugin reference as the user wrote it, for the message.
        schema: The plugin's ``config_schema`` (already checked to be JSON data).
        config: The config it is about to be applied to.
        timeout: Seconds the child may take in all.

    Raises:
        PluginError: If the child did not finish in time (it is killed), or the schema
            and config would need more pattern searches than the host allows.
    """
    patterns = sorted(set(_patterns(schema)))
    if not patterns:
        return
    strings = sorted(set(_strings(config)))
    if len(patterns) * max(len(strings), 1) > _MAX_PAIRS:
        raise _too_slow(ref, f"and the config need more than {_MAX_PAIRS} searches")
    payload = json.dumps({"patterns": patterns, "strings": strings})
    done = run_python_child(_CHILD, payload, timeout)
    if done is None:
        raise _too_slow(ref, f"take more than {timeout:g} s to match the config")
    if done.returncode != 0 or done.stdout.strip() != "ok":
        # Not the pattern's speed (memory, a crash): applying the schema reports what is wrong.
        return
