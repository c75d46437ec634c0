"""Shared fixtures of the dativo-testkit tests: pytester, and the broken plugins loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytest_plugins = ["pytester"]

PLUGINS = Path(__file__).parent / "plugins"


def _load(name: str) -> ModuleType:
    module_name = f"_dativo_testkit_tests_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, PLUGINS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def broken_readers() -> Iterator[ModuleType]:
    """The deliberately broken readers; their leaked threads and descriptors are released after."""
    module = _load("broken_readers")
    yield module
    module.release_leaks()


@pytest.fixture(scope="session")
def broken_writers() -> Iterator[ModuleType]:
    """The deliberately broken writers; their leaked threads are released after."""
    module = _load("broken_writers")
    yield module
    module.release_leaks()


@pytest.fixture(scope="session")
def broken_specs() -> ModuleType:
    """Readers and writers whose config_schema is broken, and two whose spec is good."""
    return _load("broken_specs")


@pytest.fixture(scope="session")
def broken_partitions() -> ModuleType:
    """Partitioned readers that each break one partition rule."""
    return _load("broken_partitions")


@pytest.fixture(scope="session")
def http_readers() -> ModuleType:
    """The mock-API readers: one that handles every HTTP fault, and ones that break one rule each."""
    return _load("http_readers")


@pytest.fixture
def plugins_dir() -> Path:
    """The folder holding the broken plugin files."""
    return PLUGINS
