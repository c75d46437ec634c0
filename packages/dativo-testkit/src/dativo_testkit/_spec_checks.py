"""The conformance checks of a plugin's config spec (its ``config_schema``), for readers and writers.

A plugin may declare ``config_schema``, a class attribute holding a JSON Schema (draft
2020-12) of its ``config``; ``dativo-run`` validates every config against it before it
builds the plugin. These checks hold the spec to what the runtime needs: it is a valid
JSON Schema made of JSON data, the valid config given to the harness satisfies it, and
each bad config breaks it, unless that config is well-formed and wrong only where the
plugin connects (a refused token: the plugin builds with it), which no schema can rule
out. Each is skipped, saying why, when the plugin declares no spec.

Problems are described by key path and rule only: a config's values (and so its secrets)
never appear in a report. The schema is applied in a child process killed at a deadline
(:mod:`._spec_child`), so no schema can hold the harness.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from dativo_plugin_sdk import ConfigurationError

from ._checks import CheckFailedError, CheckSkippedError, ConformanceCheck, PluginSession, RegisteredCheck
from ._spec_child import spec_problems_in_child

__all__ = ["READER_SPEC_CHECKS", "WRITER_SPEC_CHECKS", "config_spec_problems"]

_ATTRIBUTE = "config_schema"
_SHOWN_PROBLEMS = 5


def _declared_schema(session: PluginSession) -> dict[str, Any]:
    """The plugin's ``config_schema``, checked to be JSON data (the child checks it is a JSON Schema).

    Raises:
        CheckSkippedError: If the plugin declares none.
        CheckFailedError: If it is not a dict of JSON data.
    """
    value = getattr(session.plugin_class, _ATTRIBUTE, None)
    if value is None:
        raise CheckSkippedError(
            f"{session.name} declares no config_schema (optional: a JSON Schema of its config, which "
            "dativo-run then checks every config against)"
        )
    if not isinstance(value, dict):
        raise CheckFailedError(
            f"{session.name}.config_schema is a {type(value).__name__}; it must be a dict holding a JSON "
            "Schema (draft 2020-12) of the config"
        )
    try:
        copy = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise CheckFailedError(
            f"{session.name}.config_schema is not JSON data ({exc}); the runtime sends it from the sandbox "
            "as JSON, so use only dicts, lists, strings, finite numbers, booleans and None"
        ) from None
    if copy != value:
        raise CheckFailedError(
            f"{session.name}.config_schema changes when written as JSON (a non-string key, or a tuple); "
            "use only dicts with string keys, lists, strings, numbers, booleans and None"
        )
    return cast(dict[str, Any], copy)


def config_spec_problems(schema: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """Describe why ``config`` does not satisfy ``schema``, by key path and rule (never by value).

    The schema is applied in a child process killed at a deadline (:func:`spec_problems_in_child`).

    Args:
        schema: A valid JSON Schema (draft 2020-12).
        config: The config.

    Returns:
        One line per problem, such as ``page_size: the 'type' rule ('integer')``; empty
        when the config satisfies the schema.

    Raises:
        CheckFailedError: If the schema is not a valid JSON Schema, or takes too long to apply.
    """
    return spec_problems_in_child("the plugin", schema, [config])[0]


def _bad_configs(session: PluginSession) -> list[Mapping[str, Any]]:
    """The bad configs the harness was given (one, several, or none)."""
    given: Any = getattr(session, "bad_configs", None)
    if given is None:
        given = session.bad_config
    if given is None:
        return []
    if isinstance(given, Mapping):
        return [given]
    if isinstance(given, Sequence) and not isinstance(given, (str, bytes)):
        return [c for c in given if isinstance(c, Mapping)]
    return []


def check_spec_is_valid(session: PluginSession) -> str:
    """The declared ``config_schema`` is JSON data and a valid JSON Schema (draft 2020-12)."""
    schema = _declared_schema(session)
    spec_problems_in_child(session.name, schema, [])
    keys = schema.get("properties")
    count = f" with {len(keys)} key(s)" if isinstance(keys, Mapping) else ""
    return f"config_schema is a valid JSON Schema (draft 2020-12){count}"


def check_spec_accepts_valid_config(session: PluginSession) -> str:
    """The valid config satisfies the plugin's ``config_schema``."""
    schema = _declared_schema(session)
    problems = spec_problems_in_child(session.name, schema, [session.config])[0]
    if problems:
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        raise CheckFailedError(
            f"the valid config does not satisfy {session.name}.config_schema, so dativo-run would refuse "
            f"it before building the plugin: {shown}; fix config_schema (or the config given to the "
            "harness)"
        )
    return "the valid config satisfies config_schema"


def _refused_as_malformed(session: PluginSession, config: Mapping[str, Any]) -> bool:
    """Whether the plugin refuses ``config`` with a ConfigurationError when it is built."""
    try:
        instance = session.construct(config)
    except ConfigurationError:
        return True
    except Exception:
        return False  # Judged by *.rejects_bad_config: a config problem must be a ConfigurationError.
    session.close_quietly(instance)
    return False


def check_spec_rejects_bad_configs(session: PluginSession) -> str:
    """Each bad config the plugin refuses as malformed breaks its ``config_schema``.

    A bad config may be well-formed and wrong only where the plugin connects (a refused
    token); no schema can rule that out, so such a config may satisfy the spec. One the
    plugin's constructor refuses (``ConfigurationError``) is malformed: the spec must refuse
    it too, since the runtime checks the spec instead of building the plugin.
    """
    schema = _declared_schema(session)
    bad = _bad_configs(session)
    if not bad:
        raise CheckSkippedError("no bad config was given (bad_config=..., or --bad-config)")
    found = spec_problems_in_child(session.name, schema, bad)
    satisfying = [index for index, problems in enumerate(found, 1) if not problems]
    missed = [index for index in satisfying if _refused_as_malformed(session, bad[index - 1])]
    if missed:
        which = ", ".join(f"#{index}" for index in missed)
        raise CheckFailedError(
            f"bad config {which} of {len(bad)} satisfies {session.name}.config_schema, yet constructing "
            f"{session.name} with it raises ConfigurationError: the spec misses a rule the plugin "
            "enforces. Describe the config more tightly (required keys, types, minimum, enums, "
            "additionalProperties: false) so that dativo-run refuses it before building the plugin"
        )
    broken = len(bad) - len(satisfying)
    message = f"{broken} of the {len(bad)} bad config(s) break config_schema"
    if satisfying:
        which = ", ".join(f"#{index}" for index in satisfying)
        message += (
            f"; {which} satisfy it but are well-formed (the plugin builds with them and refuses them "
            "only when it connects), which no schema can rule out"
        )
    return message


def _spec_checks(kind: Literal["reader", "writer"]) -> tuple[RegisteredCheck[Any], ...]:
    def check(name: str, description: str, run: Any, requires: str) -> RegisteredCheck[Any]:
        return RegisteredCheck(ConformanceCheck(f"{kind}.{name}", kind, description, (requires,)), run)

    return (
        check(
            "config_spec_valid",
            "A declared config_schema is JSON data and a valid JSON Schema (draft 2020-12).",
            check_spec_is_valid,
            f"{kind}.is_concrete_base_{kind}",
        ),
        check(
            "config_spec_accepts_valid_config",
            "The valid config satisfies the declared config_schema.",
            check_spec_accepts_valid_config,
            f"{kind}.config_spec_valid",
        ),
        check(
            "config_spec_rejects_bad_configs",
            "Each bad config breaks the declared config_schema (unless the plugin builds with it and "
            "refuses it only when connecting), so dativo-run refuses it before building the plugin.",
            check_spec_rejects_bad_configs,
            f"{kind}.config_spec_valid",
        ),
    )


READER_SPEC_CHECKS: tuple[RegisteredCheck[Any], ...] = _spec_checks("reader")
"""The config-spec checks of a reader, run after the reader checks."""

WRITER_SPEC_CHECKS: tuple[RegisteredCheck[Any], ...] = _spec_checks("writer")
"""The config-spec checks of a writer, run after the writer checks."""
