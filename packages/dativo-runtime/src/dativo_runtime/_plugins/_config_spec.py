"""A plugin's config spec: its ``config_schema`` checked, and a ``config`` checked against it.

A reader or writer may declare ``config_schema``, a JSON Schema (draft 2020-12) of its
``config`` (read where the plugin is loaded, see :mod:`dativo_runtime._worker._config_schema`).
Every sandbox backend calls :func:`check_plugin_config` after it loads the plugin class
and before it builds the plugin, so ``run``, ``validate``, ``check`` and ``discover`` refuse
a config the plugin does not take, with the same message, whatever the backend.

A sandboxed plugin's schema is untrusted input: this process bounds its depth and size
(:mod:`~dativo_runtime._plugins._schema_bounds`) and applies it only in a child process
killed at a deadline (:mod:`~dativo_runtime._plugins._schema_child`).

A property marked ``"secret": true`` or ``"writeOnly": true`` (at any depth) is a secret:
its value is registered with the runtime's :data:`~dativo_runtime._secrets.REDACTOR` before
anything is reported, and no problem about it (or about a key that looks secret) ever
shows its value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import referencing.exceptions
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.exceptions import ValidationError as SchemaValidationError

from dativo_plugin_sdk import ConfigurationError, PluginError
from dativo_runtime._plugins._pattern_probe import probe_patterns
from dativo_runtime._plugins._schema_bounds import check_schema_bounds
from dativo_runtime._plugins._schema_child import config_problems_in_child
from dativo_runtime._secrets import REDACTOR, Redactor, is_secret_key
from dativo_runtime._worker._config_schema import CONFIG_SCHEMA_ATTRIBUTE, read_config_schema

__all__ = [
    "CONFIG_SCHEMA_ATTRIBUTE",
    "JSON_SCHEMA_DIALECT",
    "applied_config_problems",
    "check_config_schema",
    "check_plugin_config",
    "config_problems",
    "describe_problems",
    "read_config_schema",
    "register_secrets",
    "secret_paths",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema dialect a ``config_schema`` is read as."""

_MAX_PROBLEMS = 20
_MAX_SCHEMA_DEPTH = 64
_MAX_VALUE_CHARS = 60


def _depth(value: Any) -> int:
    """How deeply ``value`` nests dicts and lists (iteratively: it may be deeper than Python recurses)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        node, level = pending.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > _MAX_SCHEMA_DEPTH:
            return deepest
        pending.extend((child, level + 1) for child in children)
    return deepest


def _check_schema_size(schema: Mapping[str, Any], ref: str) -> None:
    """Refuse a schema nested too deep or too large to apply (in time linear in its size)."""
    if _depth(schema) > _MAX_SCHEMA_DEPTH:
        # A sandboxed plugin's schema is untrusted input: the validator recurses through it.
        raise PluginError(
            f"plugin {ref!r} declares an invalid config_schema: it is nested more than "
            f"{_MAX_SCHEMA_DEPTH} levels deep; config_schema must be a JSON Schema (draft 2020-12) of "
            "the plugin's config",
            details={"ref": ref, "reason": "invalid_config_schema"},
        )
    check_schema_bounds(schema, ref)


def check_config_schema(schema: Mapping[str, Any], ref: str) -> None:
    """Check that a plugin's ``config_schema`` is a valid JSON Schema (draft 2020-12).

    Args:
        schema: The declared schema.
        ref: The plugin reference as the user wrote it.

    Raises:
        PluginError: Naming the plugin, where in the schema the problem is, and what it is;
            or that the schema is too large to apply (:func:`check_schema_bounds`).
    """
    _check_schema_size(schema, ref)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(top level)"
        raise PluginError(
            f"plugin {ref!r} declares an invalid config_schema: at {where}: {exc.message}; "
            "config_schema must be a JSON Schema (draft 2020-12) of the plugin's config",
            details={"ref": ref, "reason": "invalid_config_schema", "schema_path": where},
        ) from None


def _is_secret_schema(schema: Any) -> bool:
    return isinstance(schema, Mapping) and (schema.get("secret") is True or schema.get("writeOnly") is True)


def _resolve(schema: Any, root: Mapping[str, Any], depth: int = 0) -> Any:
    """Follow a local ``$ref`` (``#/$defs/...``); anything else is returned as is."""
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and depth < 20:
        pointer = schema["$ref"]
        if not pointer.startswith("#"):
            return schema
        target: Any = root
        for raw in [p for p in pointer[1:].split("/") if p]:
            part = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                return schema
            target = target[part]
        schema, depth = target, depth + 1
    return schema


def _subschemas(schema: Mapping[str, Any]) -> Iterator[Any]:
    """The schemas that may also describe the same value (``allOf``/``anyOf``/``oneOf`` branches)."""
    yield schema
    for keyword in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list):
            yield from branches


def _property_schemas(schema: Any, root: Mapping[str, Any], key: str) -> list[Any]:
    found: list[Any] = []
    resolved = _resolve(schema, root)
    if not isinstance(resolved, Mapping):
        return found
    for candidate in _subschemas(resolved):
        branch = _resolve(candidate, root)
        if not isinstance(branch, Mapping):
            continue
        properties = branch.get("properties")
        if isinstance(properties, Mapping) and key in properties:
            found.append(_resolve(properties[key], root))
        patterns = branch.get("patternProperties")
        if isinstance(patterns, Mapping):
            for pattern, sub in patterns.items():
                if _matches(pattern, key):
                    found.append(_resolve(sub, root))
    return found


def _item_schemas(schema: Any, root: Mapping[str, Any]) -> list[Any]:
    resolved = _resolve(schema, root)
    if not isinstance(resolved, Mapping):
        return []
    return [
        _resolve(b.get("items"), root)
        for b in _subschemas(resolved)
        if isinstance(b, Mapping) and "items" in b
    ]


def _secret_values(value: Any, schema: Any, root: Mapping[str, Any], secret: bool) -> Iterator[Any]:
    """Every scalar under ``value`` that the schema marks secret (or that sits under a secret)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            subs = _property_schemas(schema, root, str(key))
            inner_secret = secret or any(_is_secret_schema(s) for s in subs)
            yield from _secret_values(item, subs[0] if subs else None, root, inner_secret)
    elif isinstance(value, (list, tuple)):
        items = _item_schemas(schema, root)
        for item in value:
            yield from _secret_values(item, items[0] if items else None, root, secret)
    elif secret and value is not None and not isinstance(value, bool):
        yield value


def register_secrets(
    schema: Mapping[str, Any], config: Mapping[str, Any], *, redactor: Redactor = REDACTOR
) -> None:
    """Register every value of ``config`` the schema marks secret, so that no output shows it.

    Args:
        schema: The plugin's ``config_schema``.
        config: The config about to be checked and handed to the plugin.
        redactor: Where secrets are registered (the runtime's, by default).
    """
    for value in _secret_values(config, schema, schema, False):
        redactor.add(value)


def secret_paths(schema: Mapping[str, Any]) -> list[str]:
    """The dotted paths of the properties a schema marks secret (``auth.token``), for ``plugins inspect``.

    Args:
        schema: A ``config_schema``.

    Returns:
        The paths, in the schema's order (``[]`` items as ``name[]``).
    """
    paths: list[str] = []

    def walk(node: Any, prefix: str, depth: int) -> None:
        node = _resolve(node, schema)
        if not isinstance(node, Mapping) or depth > 20:
            return
        for candidate in _subschemas(node):
            branch = _resolve(candidate, schema)
            if not isinstance(branch, Mapping):
                continue
            properties = branch.get("properties")
            if isinstance(properties, Mapping):
                for key, sub in properties.items():
                    path = f"{prefix}.{key}" if prefix else str(key)
                    if _is_secret_schema(_resolve(sub, schema)) and path not in paths:
                        paths.append(path)
                    walk(sub, path, depth + 1)
            if "items" in branch:
                walk(branch["items"], f"{prefix}[]", depth + 1)

    walk(schema, "", 0)
    return paths


# Problems ------------------------------------------------------------------------------------


def _field(path: Sequence[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def _is_secret_path(path: Sequence[Any], schema: Mapping[str, Any]) -> bool:
    """Whether the value at ``path`` is a secret: by the schema, or by a key that looks secret."""
    node: Any = schema
    for part in path:
        if isinstance(part, str) and is_secret_key(part):
            return True
        subs = _item_schemas(node, schema) if isinstance(part, int) else _property_schemas(node, schema, part)
        if any(_is_secret_schema(s) for s in subs):
            return True
        node = subs[0] if subs else None
    return False


def _shown(value: Any, secret: bool) -> str:
    """``value`` as a problem may show it: its type only when secret or not a short scalar."""
    if secret or isinstance(value, (Mapping, list, tuple)):
        return _json_type(value)
    text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        return _json_type(value)
    return f"{text} ({_json_type(value)})" if not isinstance(value, bool) and value is not None else text


def _allowed_keys(schema: Mapping[str, Any]) -> list[str]:
    properties = schema.get("properties")
    return [str(k) for k in properties] if isinstance(properties, Mapping) else []


def _matches(pattern: Any, key: str) -> bool:
    try:
        return re.search(str(pattern), key) is not None
    except re.error:
        return False


def _unknown_keys(error: SchemaValidationError) -> list[str]:
    instance, schema = error.instance, error.schema
    if not isinstance(instance, Mapping) or not isinstance(schema, Mapping):
        return []
    allowed = set(_allowed_keys(schema))
    patterns = schema.get("patternProperties")
    unknown = []
    for key in instance:
        if key in allowed:
            continue
        if isinstance(patterns, Mapping) and any(_matches(p, str(key)) for p in patterns):
            continue
        unknown.append(str(key))
    return unknown


def _describe(error: SchemaValidationError, secret: bool) -> str:
    """What is wrong, to follow the key path (``must be an integer, got a string``); never a secret."""
    keyword = error.validator
    expected = error.validator_value
    given = _shown(error.instance, secret)
    if keyword == "type":
        words = [_TYPE_WORDS.get(t, str(t)) for t in (expected if isinstance(expected, list) else [expected])]
        return f"must be {' or '.join(words)}, got {given}"
    if keyword == "enum" and isinstance(expected, list):
        return f"must be one of {', '.join(repr(v) for v in expected)}, got {given}"
    if keyword == "const":
        return f"must be {expected!r}, got {given}"
    bounds = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "more than",
        "exclusiveMaximum": "less than",
    }
    if keyword in bounds:
        return f"must be {bounds[keyword]} {expected}, got {given}"
    sizes = {
        "minLength": "at least {} character(s) long",
        "maxLength": "at most {} character(s) long",
        "minItems": "a list of at least {} item(s)",
        "maxItems": "a list of at most {} item(s)",
        "minProperties": "a mapping of at least {} key(s)",
        "maxProperties": "a mapping of at most {} key(s)",
    }
    if keyword in sizes:
        return f"must be {sizes[keyword].format(expected)}"
    if keyword == "pattern":
        return f"must match the pattern {expected!r}, got {given}"
    if keyword == "multipleOf":
        return f"must be a multiple of {expected}, got {given}"
    if keyword == "uniqueItems":
        return "must not repeat items"
    if keyword == "format":
        return f"must be a {expected}, got {given}"
    if keyword in ("anyOf", "oneOf") and error.context:
        inner = best_match(error.context)
        return f"matches none of the allowed forms ({keyword}); for instance it {_describe(inner, secret)}"
    if keyword == "not":
        return "is a value the plugin refuses (not)"
    return f"does not satisfy the config_schema's {keyword!r} rule"


def _problems_of(error: SchemaValidationError, schema: Mapping[str, Any]) -> list[dict[str, str]]:
    path = list(error.absolute_path)
    if (
        error.validator in ("additionalProperties", "unevaluatedProperties")
        and error.validator_value is False
    ):
        allowed = _allowed_keys(error.schema) if isinstance(error.schema, Mapping) else []
        problems = []
        for key in _unknown_keys(error):
            guess = difflib.get_close_matches(key, allowed, n=1)
            if guess:
                fix = f"did you mean '{guess[0]}'?"
            elif allowed:
                fix = f"remove or rename it (its keys here: {', '.join(allowed)})"
            else:
                fix = "remove it (the plugin takes no keys here)"
            problems.append(
                {"field": _field([*path, key]), "problem": f"is not a key this plugin takes; {fix}"}
            )
        if problems:
            return problems
    if error.validator == "required" and isinstance(error.instance, Mapping):
        missing = [k for k in error.validator_value if k not in error.instance]
        return [
            {"field": _field([*path, key]), "problem": "is required but missing; add it"} for key in missing
        ]
    if error.validator == "dependentRequired" and isinstance(error.instance, Mapping):
        return [
            {
                "field": _field(path),
                "problem": "lacks a key another key requires (dependentRequired); "
                f"rule: {error.validator_value}",
            }
        ]
    return [{"field": _field(path), "problem": _describe(error, _is_secret_path(path, schema))}]


def config_problems(schema: Mapping[str, Any], config: Mapping[str, Any]) -> list[dict[str, str]]:
    """What is wrong with ``config`` under ``schema``: each problem's key path and what is wrong.

    Args:
        schema: A valid ``config_schema`` (see :func:`check_config_schema`).
        config: The config.

    Returns:
        Problems as ``{"field": "page_size", "problem": "must be an integer, got a string"}``
        (``field`` is empty for the config as a whole), sorted by field, at most 20. No
        problem shows a secret value.
    """
    validator = Draft202012Validator(schema)
    problems: list[dict[str, str]] = []
    for error in validator.iter_errors(dict(config)):
        for problem in _problems_of(error, schema):
            if problem not in problems:
                problems.append(problem)
    problems.sort(key=lambda p: p["field"])
    return problems[:_MAX_PROBLEMS]


def describe_problems(problems: Sequence[Mapping[str, str]], prefix: str) -> str:
    """Join problems into one sentence, each after its key path under ``prefix`` (``source.config``).

    Args:
        problems: As :func:`config_problems` returns them.
        prefix: What the fields are relative to.

    Returns:
        ``"source.config.page_size must be an integer, got a string; ..."``.
    """
    parts = [
        f"{prefix}.{p['field']} {p['problem']}" if p["field"] else f"{prefix} {p['problem']}"
        for p in problems
    ]
    return "; ".join(parts)


def applied_config_problems(
    ref: str, schema: Mapping[str, Any], config: Mapping[str, Any]
) -> list[dict[str, str]]:
    """Check ``schema`` (:func:`check_config_schema`), then what is wrong with ``config`` under it.

    Args:
        ref: The plugin reference as the user wrote it.
        schema: The plugin's ``config_schema``.
        config: The config.

    Returns:
        What :func:`config_problems` returns.

    Raises:
        PluginError: If the schema is invalid, too large, or cannot be applied (a ``$ref``
            to nowhere, or to another document: nothing is fetched).
    """
    check_config_schema(schema, ref)
    try:
        return config_problems(schema, config)
    except (SchemaError, RecursionError, referencing.exceptions.Unresolvable) as exc:
        # A $ref to nowhere (or to another document: nothing is fetched) shows only when applied.
        raise PluginError(
            f"plugin {ref!r} declares a config_schema that cannot be applied: {type(exc).__name__}: "
            f"{str(exc)[:300]}; keep every $ref inside the schema (#/$defs/...)",
            details={"ref": ref, "reason": "invalid_config_schema"},
        ) from None


def check_plugin_config(
    ref: str, schema: Mapping[str, Any] | None, config: Mapping[str, Any], *, untrusted: bool = True
) -> None:
    """Check a plugin's config against its ``config_schema`` before the plugin is built.

    The schema's depth and size are bounded first (a broken schema is the plugin's fault),
    then the config's secrets are registered, then the schema is checked and the config
    validated against it (:func:`applied_config_problems`).

    Args:
        ref: The plugin reference as the user wrote it.
        schema: What :func:`read_config_schema` returned (``None``: nothing to check).
        config: The config the plugin would be built with.
        untrusted: The schema came from a sandbox worker: its regular expressions are
            tried on the config in a child process under a deadline first
            (:func:`probe_patterns`), and it is checked and applied in another
            (:func:`config_problems_in_child`). ``False`` for a plugin running in this process.

    Raises:
        PluginError: If the schema is not a valid JSON Schema, is too large, cannot be
            applied, or (untrusted) its patterns or the whole check take too long.
        ConfigurationError: If the config does not satisfy it; ``details["problems"]``
            lists each key path and its problem, ``details["field"]`` the first path.
    """
    if schema is None:
        return
    _check_schema_size(schema, ref)
    if untrusted:
        probe_patterns(ref, schema, config)
    register_secrets(schema, config)
    if untrusted:
        problems = config_problems_in_child(ref, schema, config)
    else:
        problems = applied_config_problems(ref, schema, config)
    if not problems:
        return
    count = len(problems)
    raise ConfigurationError(
        REDACTOR.redact_text(
            f"the config of plugin {ref!r} does not match its config_schema "
            f"({count} problem{'s' if count != 1 else ''}): {describe_problems(problems, 'config')}"
        ),
        details={
            "field": problems[0]["field"] or None,
            "problems": REDACTOR.redact(problems),
            "reason": "config_schema",
        },
    )
