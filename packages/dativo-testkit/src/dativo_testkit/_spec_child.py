"""Checking a ``config_schema``, and configs against it, in a child process killed at a deadline.

What applying a JSON Schema costs depends on its shape: each ``$ref`` in an ``anyOf``
doubles the work, and a ``pattern`` with nested repetition backtracks exponentially.
``jsonschema`` is pure Python (and ``re`` holds the interpreter while it backtracks), so a
check's time limit cannot stop it in a thread of this process. Under ``--sandbox`` the
schema even comes from a plugin this process never imports. So the spec checks apply it in
a short-lived ``python -I -S`` child on this process's ``sys.path``, which needs only
``jsonschema``, and kill it at a deadline; the problems come back as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ._checks import CheckFailedError

__all__ = ["SPEC_CHECK_TIMEOUT_S", "spec_problems_in_child"]

SPEC_CHECK_TIMEOUT_S = 10.0
"""Seconds the child may take to check a schema and every config against it, its start included."""

# Runs in the child: read {"path", "schema", "configs"}; print {"invalid": [where, message]}
# when the schema is not a valid JSON Schema, else {"problems": [[line, ...] per config]}.
_CHILD = """
import json, sys
data = json.load(sys.stdin)
# The stdlib first: a plugin's folder on the parent's path may hold a numbers.py.
sys.path[:] = sys.path + [entry for entry in data["path"] if entry not in sys.path]
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
try:
    Draft202012Validator.check_schema(data["schema"])
except SchemaError as exc:
    where = "/".join(str(part) for part in exc.absolute_path) or "(top level)"
    print(json.dumps({"invalid": [where, exc.message]}))
    raise SystemExit(0)
validator = Draft202012Validator(data["schema"])
found = []
for config in data["configs"]:
    problems = []
    for error in validator.iter_errors(config):
        where = ".".join(str(part) for part in error.absolute_path) or "(the config)"
        rule = json.dumps(error.validator_value, default=str)
        if len(rule) > 80:
            rule = rule[:77] + "..."
        problems.append(f"{where}: the {error.validator!r} rule ({rule})")
    found.append(sorted(problems))
print(json.dumps({"problems": found}))
"""


def spec_problems_in_child(
    name: str,
    schema: Mapping[str, Any],
    configs: Sequence[Mapping[str, Any]],
    *,
    timeout: float | None = None,
) -> list[list[str]]:
    """Check ``schema`` is a valid JSON Schema (draft 2020-12), then describe why each config breaks it.

    Args:
        name: The plugin's name, for the messages.
        schema: The plugin's ``config_schema`` (JSON data).
        configs: The configs to check against it (none: only the schema is checked).
        timeout: Seconds the child may take in all (:data:`SPEC_CHECK_TIMEOUT_S` by default).

    Returns:
        For each config, one line per problem, by key path and rule (never by value), such
        as ``page_size: the 'type' rule ('integer')``; empty when it satisfies the schema.

    Raises:
        CheckFailedError: If the schema is not a valid JSON Schema, or the child did not
            finish in time (it is killed), or failed.
    """
    timeout = SPEC_CHECK_TIMEOUT_S if timeout is None else timeout
    path = [entry for entry in sys.path if entry]
    payload = json.dumps({"path": path, "schema": schema, "configs": [dict(c) for c in configs]}, default=str)
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _CHILD],
            input=payload,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailedError(
            f"checking the configs against {name}.config_schema takes more than {timeout:g} s, and "
            "dativo-run refuses a schema that slow to apply: a $ref in an anyOf, oneOf or allOf "
            "multiplies what applying a schema costs, and a pattern with nested repetition (such as "
            "'(a+)+') backtracks exponentially"
        ) from None
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        raise CheckFailedError(
            f"{name}.config_schema could not be applied: the process applying it ended with exit code "
            f"{done.returncode}: {last}"
        ) from None
    if "invalid" in result:
        where, message = result["invalid"]
        raise CheckFailedError(
            f"{name}.config_schema is not a valid JSON Schema (draft 2020-12): at {where}: {message}"
        )
    return [list(problems) for problems in result["problems"]]
