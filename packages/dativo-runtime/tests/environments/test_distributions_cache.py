"""The installed-distributions lookup is shared by a process's sessions until a package is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dativo_runtime._plugins import _plugin_requirements


def test_distributions_are_listed_once_until_a_search_path_folder_changes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[int] = []

    def listing() -> dict[str, list[str]]:
        calls.append(1)
        return {"pkg": ["b-dist", "a-dist"]}

    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [str(site)])
    monkeypatch.setattr(_plugin_requirements, "packages_distributions", listing)
    monkeypatch.setattr(_plugin_requirements, "_packages_cache", None)
    assert _plugin_requirements.distributions_providing("pkg") == ["a-dist", "b-dist"]
    assert _plugin_requirements.distributions_providing("other") == []
    assert len(calls) == 1
    (site / "new_package").mkdir()  # An install changes the folder.
    _plugin_requirements.distributions_providing("pkg")
    assert len(calls) == 2
