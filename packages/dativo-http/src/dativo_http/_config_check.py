"""Checking a config against a reader's ``config_schema``, with messages that never show a value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dativo_plugin_sdk import ConfigurationError

__all__ = ["check_config", "config_problems"]

_MAX_PROBLEMS = 8


def _where(path: Sequence[Any]) -> str:
    text = "config"
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}"
    return text


def config_problems(config: Any, schema: Mapping[str, Any]) -> list[str]:
    """Return what is wrong with a config, one line per problem, by key path and rule (no values shown).

    Args:
        config: The config.
        schema: Its JSON Schema (draft 2020-12).

    Returns:
        Problems by key path and rule; empty when the config fits the config spec.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        where = _where(error.absolute_path)
        if error.validator == "required":
            missing = error.message.split("'")[1] if "'" in error.message else error.message
            problems.append(f"{where} needs '{missing}'")
        elif error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            known = ", ".join(sorted(error.schema.get("properties", {})))
            problems.append(f"{where} has unknown key(s) {', '.join(map(repr, extra))}; known keys: {known}")
        elif error.validator in ("enum", "const"):
            problems.append(f"{where} must be one of {', '.join(map(repr, error.validator_value))}")
        elif error.validator == "oneOf":
            choices = " or ".join(
                "/".join(alt.get("required", ["?"])) for alt in error.validator_value if isinstance(alt, dict)
            )
            problems.append(f"{where} needs exactly one of {choices}")
        else:
            problems.append(f"{where} breaks the '{error.validator}' rule ({error.validator_value!r})")
    return problems


def check_config(owner: str, config: Any, schema: Mapping[str, Any]) -> None:
    """Raise ``ConfigurationError`` listing every problem of ``config`` under ``schema``.

    Args:
        owner: What the config is for (``"the http reader"``), for the message.
        config: The config.
        schema: Its JSON Schema.

    Raises:
        ConfigurationError: If the config does not fit; ``details["problems"]`` lists them all.
    """
    problems = config_problems(config, schema)
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        more = f" (and {len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
        raise ConfigurationError(
            f"{owner}'s config does not fit its spec ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}): {'; '.join(shown)}{more}",
            details={"problems": problems},
        )
