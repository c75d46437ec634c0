"""Fixtures of the plugin-environment tests: a store per test, hand-made wheels, a fake installed plugin.

Builds from PyPI use exact pins (uv's cache makes rebuilds fast); the offline tests install from
wheels made here with :func:`make_wheel` (no network, no build backend).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dativo_runtime._plugins._environments import EnvironmentStore


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(
    folder: Path, name: str, version: str, *, requires: tuple[str, ...] = (), body: str = ""
) -> Path:
    """Write a pure-Python wheel ``name-version-py3-none-any.whl`` holding module ``name``.

    Args:
        folder: Where to write it.
        name: Distribution and module name (underscores).
        version: Its version.
        requires: ``Requires-Dist`` lines.
        body: The module's source.

    Returns:
        The wheel's path.
    """
    dist_info = f"{name}-{version}.dist-info"
    metadata = "".join(
        [
            "Metadata-Version: 2.1\n",
            f"Name: {name}\n",
            f"Version: {version}\n",
            *(f"Requires-Dist: {r}\n" for r in requires),
        ]
    )
    files = {
        f"{name}/__init__.py": (body or f"VALUE = {version!r}\n").encode(),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: dativo-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(path, data) for path, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def fake_installed_plugin(site: Path, *, name: str, requires: tuple[str, ...], entry_point: str) -> None:
    """Make ``site`` look like a site-packages holding distribution ``name`` with a ``dativo.plugins`` entry point.

    Args:
        site: The folder (put it on ``sys.path``).
        name: Distribution and top-level package name.
        requires: ``Requires-Dist`` lines.
        entry_point: The entry point's name (pointing at ``name.mod:Reader``).
    """
    package = site / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "mod.py").write_text("Reader = None\n", encoding="utf-8")
    dist_info = site / f"{name}-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: 1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        encoding="utf-8",
    )
    (dist_info / "entry_points.txt").write_text(
        f"[dativo.plugins]\n{entry_point} = {name}.mod:Reader\n", encoding="utf-8"
    )
    (dist_info / "top_level.txt").write_text(f"{name}\n", encoding="utf-8")
    (dist_info / "RECORD").write_text(
        f"{name}/__init__.py,,\n{name}/mod.py,,\n{name}-1.0.dist-info/METADATA,,\n", encoding="utf-8"
    )


@pytest.fixture
def dativo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh DATIVO_HOME for the test (DATIVO_FIND_LINKS unset)."""
    home = tmp_path / "dativo-home"
    monkeypatch.setenv("DATIVO_HOME", str(home))
    monkeypatch.delenv("DATIVO_FIND_LINKS", raising=False)
    return home


@pytest.fixture
def store(dativo_home: Path) -> EnvironmentStore:
    """The store of the test's DATIVO_HOME."""
    return EnvironmentStore()


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of wheels: ``dativo_envtest_base`` 1.0 and 2.0, ``dativo_envtest_app`` 1.0 needing base<2,
    and ``dativo_envtest_plugin`` 1.0 needing the SDK (which the folder does not hold) and base 2.0."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(folder, "dativo_envtest_base", "1.0")
    make_wheel(folder, "dativo_envtest_base", "2.0")
    make_wheel(
        folder,
        "dativo_envtest_app",
        "1.0",
        requires=("dativo-envtest-base<2",),
        body="from dativo_envtest_base import VALUE as BASE\n",
    )
    make_wheel(
        folder, "dativo_envtest_plugin", "1.0", requires=("dativo-plugin-sdk>=1", "dativo-envtest-base==2.0")
    )
    return folder


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make a fake installed plugin distribution importable for the test (:func:`fake_installed_plugin`)."""
    site = tmp_path / "site"

    def install(*, name: str, requires: tuple[str, ...], entry_point: str) -> None:
        fake_installed_plugin(site, name=name, requires=requires, entry_point=entry_point)
        monkeypatch.syspath_prepend(str(site))

    return install
