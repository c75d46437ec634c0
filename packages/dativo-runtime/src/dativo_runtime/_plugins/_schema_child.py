"""Applying a sandboxed plugin's ``config_schema`` to the config in a child process, under a deadline.

A sandboxed plugin's ``config_schema`` comes from its worker, so it is untrusted input,
and the host applies it. What applying a schema costs depends on its shape in ways no
static bound captures whole: each ``$ref`` in an ``anyOf`` doubles the work, a ``$ref``
may name its target by ``$anchor`` or relative ``$id``, and recursive schemas cost what
the config's depth makes them cost. ``jsonschema`` is pure Python and runs in the caller's
thread, where no deadline can stop it.

So the host checks the config against such a schema (:func:`config_problems`) in a
short-lived ``python -I -S`` child on the host's own ``sys.path``, and kills it at a
deadline; the problems it finds come back as JSON. A plugin running in the host process
is trusted code: its schema is applied in place.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
from collections.abc import Mapping
from typing import Any

from dativo_plugin_sdk import PluginError
from dativo_plugin_sdk import from_dict as error_from_dict
from dativo_runtime._plugins._python_child import run_python_child

__all__ = ["CONFIG_SCHEMA_TIMEOUT_S", "config_problems_in_child"]

CONFIG_SCHEMA_TIMEOUT_S = 5.0
"""Seconds the child may take to apply a schema to a config, its start included."""

# Runs in the child: read {"path", "ref", "schema", "config"}; print {"problems": [...]}, or the
# PluginError refusing the schema as {"refused": error.to_dict()}, or {"error": "..."}.
_CHILD = """
import json, sys
data = json.load(sys.stdin)
# The stdlib first: a plugin's folder on the parent's path may hold a numbers.py.
sys.path[:] = sys.path + [entry for entry in data["path"] if entry not in sys.path]
from dativo_plugin_sdk import PluginError
from dativo_plugin_sdk import from_dict as error_from_dict
from dativo_runtime._plugins._config_spec import applied_config_problems
try:
    result = {"problems": applied_config_problems(data["ref"], data["schema"], data["config"])}
except PluginError as exc:
    result = {"refused": exc.to_dict()}
except Exception as exc:
    result = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
print(json.dumps(result, default=str))
"""


def _refused(ref: str, why: str) -> PluginError:
    return PluginError(
        f"plugin {ref!r} declares a config_schema that cannot be applied: {why}",
        details={"ref": ref, "reason": "invalid_config_schema"},
    )


def config_problems_in_child(
    ref: str,
    schema: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    timeout: float = CONFIG_SCHEMA_TIMEOUT_S,
) -> list[dict[str, str]]:
    """What :func:`~dativo_runtime._plugins._config_spec.applied_config_problems` finds, in a child process.

    Args:
        ref: The plugin reference as the user wrote it, for the message.
        schema: The plugin's ``config_schema`` (JSON data, within the static bounds).
        config: The config to check against it.
        timeout: Seconds the child may take in all.

    Returns:
        The problems, as ``config_problems`` returns them.

    Raises:
        PluginError: If the child did not finish in time (it is killed), or refused the
            schema (not a valid JSON Schema, a ``$ref`` to nowhere).
    """
    path = [entry for entry in sys.path if entry]
    payload = json.dumps({"path": path, "ref": ref, "schema": schema, "config": dict(config)}, default=str)
    digest = hashlib.sha256(payload.encode()).hexdigest()  # the cache keeps no config (no secret)
    with _ANSWERS_LOCK:
        known = _ANSWERS.get(digest)
    if known is None:
        known = _problems_of(payload, ref, timeout)
        with _ANSWERS_LOCK:  # parallel sessions of a job ask at once
            _ANSWERS[digest] = known
            while len(_ANSWERS) > 64:
                _ANSWERS.pop(next(iter(_ANSWERS)))
    return [dict(problem) for problem in known]


_ANSWERS_LOCK = threading.Lock()
_ANSWERS: dict[str, tuple[dict[str, str], ...]] = {}
"""The child's answers by payload digest: a job's sessions share one schema and config, one child."""


def _problems_of(payload: str, ref: str, timeout: float) -> tuple[dict[str, str], ...]:
    """Run the child on ``payload`` and read its answer."""
    done = run_python_child(_CHILD, payload, timeout)
    if done is None:
        raise _refused(
            ref,
            f"applying it to the config takes more than {timeout:g} s; a $ref in an anyOf, oneOf or "
            "allOf multiplies what applying a schema costs, so name each shared $defs entry from fewer "
            "places",
        )
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        why = f"the process applying it ended with exit code {done.returncode}: {last}"
        raise _refused(ref, why) from None
    if "refused" in result:
        refusal = error_from_dict(result["refused"])
        raise refusal if isinstance(refusal, PluginError) else _refused(ref, refusal.message)
    if "error" in result:
        raise _refused(ref, str(result["error"]))
    return tuple({"field": str(p["field"]), "problem": str(p["problem"])} for p in result["problems"])
