"""The host tries a sandboxed plugin's regular expressions in a child process before applying them."""

from __future__ import annotations

import subprocess

import pytest

from dativo_plugin_sdk import PluginError
from dativo_runtime._plugins._pattern_probe import probe_patterns

SCHEMA = {
    "type": "object",
    "properties": {"url": {"type": "string", "pattern": "^https://"}},
    "patternProperties": {"^x-": {"type": "string"}},
}


def test_a_schema_without_patterns_starts_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("no child expected")

    monkeypatch.setattr(subprocess, "run", refuse)
    probe_patterns("p.py:P", {"type": "object", "properties": {"n": {"type": "integer"}}}, {"n": 1})


def test_quick_patterns_pass() -> None:
    probe_patterns("p.py:P", SCHEMA, {"url": "https://example.com", "x-trace": "on", "nested": [{"k": "v"}]})


def test_a_catastrophic_pattern_is_refused_at_the_deadline_in_the_child() -> None:
    schema = {"type": "object", "properties": {"url": {"type": "string", "pattern": "^(.*.*)*X$"}}}
    with pytest.raises(PluginError) as raised:
        probe_patterns("p.py:P", schema, {"url": "https://api.example.com/v1/orders/17/page/3"}, timeout=1.0)
    assert raised.value.details == {"ref": "p.py:P", "reason": "invalid_config_schema"}
    assert "take more than 1 s to match the config" in raised.value.message


def test_too_many_searches_are_refused_without_a_child() -> None:
    patterns = {f"^k{i}$": {"type": "string"} for i in range(500)}
    config = {f"key{i}": "v" for i in range(500)}
    with pytest.raises(PluginError, match="need more than 200000 searches"):
        probe_patterns("p.py:P", {"type": "object", "patternProperties": patterns}, config)
