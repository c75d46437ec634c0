"""The installed-distributions lookup is shared by a run's sessions, and refreshed after a while."""

from __future__ import annotations

import pytest

from dativo_runtime._plugins import _plugin_requirements


def test_distributions_are_listed_once_then_refreshed_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    clock = [1000.0]

    def listing() -> dict[str, list[str]]:
        calls.append(1)
        return {"pkg": ["b-dist", "a-dist"]}

    monkeypatch.setattr(_plugin_requirements, "packages_distributions", listing)
    monkeypatch.setattr(_plugin_requirements, "_packages_cache", None)
    monkeypatch.setattr(_plugin_requirements.time, "monotonic", lambda: clock[0])
    assert _plugin_requirements.distributions_providing("pkg") == ["a-dist", "b-dist"]
    assert _plugin_requirements.distributions_providing("other") == []
    assert len(calls) == 1
    clock[0] += _plugin_requirements._PACKAGES_TTL_S + 1
    _plugin_requirements.distributions_providing("pkg")
    assert len(calls) == 2
