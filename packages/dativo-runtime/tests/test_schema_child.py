"""A sandboxed plugin's config_schema is applied in a child process, killed at a deadline."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError, PluginError
from dativo_runtime._plugins._config_spec import applied_config_problems, check_plugin_config
from dativo_runtime._plugins._schema_child import config_problems_in_child

SCHEMA = {
    "type": "object",
    "properties": {
        "page_size": {"type": "integer", "minimum": 1},
        "token": {"type": "string", "secret": True},
    },
    "required": ["page_size"],
    "additionalProperties": False,
}


def _id_bomb(levels: int = 40) -> dict[str, Any]:
    """Levels named by ``$id``, each an ``anyOf`` of two ``$ref`` to the next: no static count follows them."""
    defs: dict[str, Any] = {
        f"d{i}": {"$id": f"urn:d{i}", "anyOf": [{"$ref": f"urn:d{i + 1}"}] * 2} for i in range(levels)
    }
    defs[f"d{levels}"] = {"$id": f"urn:d{levels}", "type": "integer"}
    return {"$defs": defs, "$ref": "urn:d0"}


def test_the_child_finds_what_this_process_finds() -> None:
    config = {"page_size": "ten", "tokn": "x"}
    assert config_problems_in_child("p.py:P", SCHEMA, config) == applied_config_problems(
        "p.py:P", SCHEMA, config
    )
    assert config_problems_in_child("p.py:P", SCHEMA, {"page_size": 5}) == []


def test_a_schema_slow_to_apply_is_refused_at_the_deadline() -> None:
    began = time.monotonic()
    with pytest.raises(PluginError) as raised:
        config_problems_in_child("bomb.py:R", _id_bomb(), {"a": 1}, timeout=1.0)
    assert time.monotonic() - began < 5.0
    assert "plugin 'bomb.py:R' declares a config_schema that cannot be applied" in raised.value.message
    assert "takes more than 1 s" in raised.value.message
    assert raised.value.details == {"ref": "bomb.py:R", "reason": "invalid_config_schema"}


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": 3}, "declares an invalid config_schema: at type"),
        ({"properties": {"a": {"$ref": "#/$defs/nope"}}}, "cannot be applied"),
    ],
)
def test_what_the_child_refuses_is_the_plugin_s_error(schema: dict[str, Any], words: str) -> None:
    with pytest.raises(PluginError, match=words) as raised:
        config_problems_in_child("p.py:P", schema, {"a": 1})
    assert raised.value.details["reason"] == "invalid_config_schema"


def test_an_untrusted_schema_is_applied_in_the_child_and_a_trusted_one_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dativo_runtime._plugins._config_spec as config_spec

    calls: list[str] = []
    real = config_spec.config_problems_in_child

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append("child")
        return real(*args, **kwargs)

    monkeypatch.setattr(config_spec, "config_problems_in_child", spy)
    with pytest.raises(ConfigurationError, match="page_size must be an integer"):
        check_plugin_config("p.py:P", SCHEMA, {"page_size": "ten"})
    assert calls == ["child"]
    with pytest.raises(ConfigurationError, match="page_size must be an integer"):
        check_plugin_config("p.py:P", SCHEMA, {"page_size": "ten"}, untrusted=False)
    assert calls == ["child"]
