"""Plugin environments for the singer and airbyte reader tests, built with uv like dativo-run builds them.

``fake_taps_env`` installs the fake taps of ``fake_taps/`` (a tiny project with console
scripts); ``faker_env`` and ``jsonfile_env`` install real packages from PyPI. Each is built
once into pytest's cache folder, keyed by what it installs, and reused by later sessions.
Without PyPI and without a cached copy the tests that need one skip, except under CI
(``CI`` or ``DATIVO_REQUIRE_SANDBOX`` set), where they fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FAKE_TAPS = Path(__file__).parent / "fake_taps"
FAKER = "airbyte-source-faker==7.2.1"
JSONFILE = "tap-jsonfile==0.1.2"
EXCLUDE_NEWER = "2026-12-01T00:00:00Z"  # Transitive versions frozen: the CDK and singer-sdk move weekly.


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("uv is not installed (pip install uv)")
    return str(find_uv_bin())


def _must_not_skip() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("DATIVO_REQUIRE_SANDBOX"))


def build_environment(cache: pytest.Cache, what: str, key_parts: list[str], *, local: bool = False) -> Path:
    """A ``uv pip install --target`` folder holding ``what``, cached across sessions by ``key_parts``."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    key = hashlib.sha256(json.dumps([*key_parts, python]).encode()).hexdigest()[:16]
    root = cache.mkdir("dativo-tap-envs")
    folder = root / key
    if (folder / "dativo-env.json").exists():
        return folder
    building = root / f".tmp-{key}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    command = [_uv(), "pip", "install", "--target", str(building), "--python-version", python]
    if not local:
        command += ["--python-platform", "x86_64-manylinux_2_28", "--compile-bytecode"]
    command.append(what)
    env = {**os.environ, "UV_EXCLUDE_NEWER": EXCLUDE_NEWER, "NO_COLOR": "1", "UV_NO_PROGRESS": "1"}
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0:
        shutil.rmtree(building, ignore_errors=True)
        message = f"cannot build an environment with {what}: {done.stderr.strip()[-1500:]}"
        if _must_not_skip():
            pytest.fail(message)
        pytest.skip(message)
    name = what if not local else "dativo-fake-taps"
    marker = {"requirements": [name], "python": python, "origin": "tests"}
    (building / "dativo-env.json").write_text(json.dumps(marker))
    try:
        building.rename(folder)
    except OSError:  # Another session built it meanwhile.
        shutil.rmtree(building, ignore_errors=True)
    return folder


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="session")
def fake_taps_env(pytestconfig: pytest.Config) -> Path:
    """An environment holding the fake taps (``tap-fake``, ``tap-fake-other``, ``source-fake``)."""
    assert pytestconfig.cache is not None
    copy = Path(pytestconfig.cache.mkdir("dativo-fake-taps-src")) / _tree_digest(FAKE_TAPS)[:16]
    if not copy.exists():
        shutil.copytree(FAKE_TAPS, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return build_environment(pytestconfig.cache, str(copy), ["fake", _tree_digest(FAKE_TAPS)], local=True)


@pytest.fixture(scope="session")
def faker_env(pytestconfig: pytest.Config) -> Path:
    """An environment holding airbyte-source-faker 7.2.1 from PyPI."""
    assert pytestconfig.cache is not None
    return build_environment(pytestconfig.cache, FAKER, [FAKER, EXCLUDE_NEWER])


@pytest.fixture(scope="session")
def jsonfile_env(pytestconfig: pytest.Config) -> Path:
    """An environment holding tap-jsonfile 0.1.2 from PyPI."""
    assert pytestconfig.cache is not None
    return build_environment(pytestconfig.cache, JSONFILE, [JSONFILE, EXCLUDE_NEWER])


@pytest.fixture
def in_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """``in_env(folder)``: run the readers as the worker would with that plugin environment."""

    def use(folder: Path) -> Path:
        monkeypatch.setenv("DATIVO_PLUGIN_ENV", str(folder))
        return folder

    return use
