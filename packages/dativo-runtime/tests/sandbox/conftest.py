"""Fixtures of the sandbox tests: the backends (skipped, or failed under DATIVO_REQUIRE_SANDBOX=1)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dativo_runtime._plugin_ref import PluginRef
from dativo_runtime._sandbox import BubblewrapSandbox, DockerSandbox, SandboxLimits
from dativo_runtime._sandbox._base import Sandbox

PLUGINS = Path(__file__).parent / "plugins"
EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "plugins"
REQUIRE_SANDBOX = os.environ.get("DATIVO_REQUIRE_SANDBOX") == "1"
BACKENDS = ("process", "docker")


def require_backend(name: str) -> None:
    """Skip the test when the backend does not work here, or fail it under DATIVO_REQUIRE_SANDBOX=1."""
    available, why = BubblewrapSandbox.availability() if name == "process" else DockerSandbox.availability()
    if available:
        return
    message = f"the {name} sandbox backend is not available here: {why}"
    if REQUIRE_SANDBOX:
        pytest.fail(f"DATIVO_REQUIRE_SANDBOX=1 but {message}")
    pytest.skip(message)


def make_backend(name: str) -> Sandbox:
    require_backend(name)
    return BubblewrapSandbox() if name == "process" else DockerSandbox()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Sandbox:
    """Each real sandbox backend in turn."""
    return make_backend(request.param)


@pytest.fixture
def process_backend() -> Sandbox:
    """The bubblewrap backend."""
    return make_backend("process")


@pytest.fixture
def docker_backend() -> Sandbox:
    """The Docker backend."""
    return make_backend("docker")


def _plugin_ref(file: str, class_name: str) -> PluginRef:
    return PluginRef.parse(f"{PLUGINS / file}:{class_name}")


@pytest.fixture
def plugin_ref() -> Callable[[str, str], PluginRef]:
    """Make a reference to a test plugin (a data file in tests/sandbox/plugins)."""
    return _plugin_ref


@pytest.fixture
def example_ref() -> Callable[[str, str], PluginRef]:
    """Make a reference to an example plugin in examples/plugins."""
    return lambda file, class_name: PluginRef.parse(f"{EXAMPLES / file}:{class_name}")


@pytest.fixture
def read_all() -> Callable[..., list[dict[str, Any]]]:
    """Run a reader plugin in a backend and return every record it extracted."""

    def run(
        sandbox: Sandbox,
        ref: PluginRef,
        config: dict[str, Any],
        limits: SandboxLimits = SandboxLimits(timeout_s=60),  # noqa: B008
    ) -> list[dict[str, Any]]:
        with sandbox.open_reader(ref, config, limits=limits) as session:
            records: list[dict[str, Any]] = []
            for batch in session.extract():  # type: ignore[attr-defined]
                records.extend(batch.data.to_pylist())
            return records

    return run


@pytest.fixture
def survives(read_all: Callable[..., list[dict[str, Any]]]) -> Callable[[Sandbox], None]:
    """Check that a normal plugin run still works in the backend (the runtime survived)."""

    def check(sandbox: Sandbox) -> None:
        ref = PluginRef.parse(f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader")
        records = read_all(sandbox, ref, {"count": 10, "batch_size": 4})
        assert [r["id"] for r in records] == list(range(10))

    return check


@pytest.fixture
def no_leftover_containers() -> Iterator[None]:
    """Fail if a test leaves a container with the Dativo sandbox label behind."""

    def labelled() -> set[str] | None:
        try:
            import docker

            client = docker.from_env(timeout=10)
            return {c.id for c in client.containers.list(all=True, filters={"label": "io.dativo.sandbox=1"})}
        except Exception:
            return None

    before = labelled()
    yield
    after = labelled()
    if before is not None and after is not None:
        assert not after - before, f"sandbox containers left behind: {sorted(after - before)}"
