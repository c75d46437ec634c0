"""Plugin environments for the singer and airbyte reader tests, built with uv like dativo-run builds them.

``fake_taps_env`` installs the fake taps of ``fake_taps/`` (a tiny project with console
scripts); ``faker_env`` and ``jsonfile_env`` install real packages from PyPI. Each is built
once into pytest's cache folder, keyed by what it installs, and reused by later sessions.
Without PyPI and without a cached copy the tests that need one skip, except under CI
(``CI`` or ``DATIVO_REQUIRE_SANDBOX`` set), where they fail.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._plugins._environments import EnvironmentStore, environment_spec_for
from dativo_runtime._plugins._ref import PluginRef

FAKE_TAPS = Path(__file__).parent / "fake_taps"
FAKER = "airbyte-source-faker==7.2.1"
JSONFILE = "tap-jsonfile==0.1.2"
EXCLUDE_NEWER = "2026-12-01T00:00:00Z"  # Transitive versions frozen: the CDK and singer-sdk move weekly.


def _must_not_skip() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("DATIVO_REQUIRE_SANDBOX"))


def _store_root(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests' environments live: pytest's cache folder (reused by later sessions) or a temp folder."""
    cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if cache is not None:
        return Path(cache.mkdir("dativo-envs"))
    return tmp_path_factory.mktemp("dativo-envs")


def build_environment(root: Path, what: str) -> Path:
    """The runtime's own plugin environment holding ``what`` (built by uv once, then reused)."""
    os.environ.setdefault("UV_EXCLUDE_NEWER", EXCLUDE_NEWER)
    spec = environment_spec_for(PluginRef.parse("airbyte"), {"package": what})  # as dativo-run builds it
    assert spec is not None
    try:
        return EnvironmentStore(root).ensure(spec).path
    except ConfigurationError as exc:
        message = f"cannot build an environment with {what}: {exc}"
        if _must_not_skip():
            pytest.fail(message)
        pytest.skip(message)


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def fake_taps_env(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An environment holding the fake taps (``tap-fake``, ``tap-fake-other``, ``source-fake``)."""
    root = _store_root(pytestconfig, tmp_path_factory)
    copy = root / "fake-taps-src" / _tree_digest(FAKE_TAPS)[:16]
    if not copy.exists():
        shutil.copytree(FAKE_TAPS, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return build_environment(root, f"dativo-fake-taps @ {copy.as_uri()}")


@pytest.fixture(scope="session")
def faker_env(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An environment holding airbyte-source-faker 7.2.1 from PyPI."""
    return build_environment(_store_root(pytestconfig, tmp_path_factory), FAKER)


@pytest.fixture(scope="session")
def jsonfile_env(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An environment holding tap-jsonfile 0.1.2 from PyPI."""
    return build_environment(_store_root(pytestconfig, tmp_path_factory), JSONFILE)


@pytest.fixture
def in_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``in_env(folder)``: run the readers as the worker would with that plugin environment."""

    def use(folder: Path) -> Path:
        monkeypatch.setenv("DATIVO_PLUGIN_ENV", str(folder))
        return folder

    return use
