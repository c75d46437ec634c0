"""A cloud job's plugin environment is installed from wheels only: no package code runs on the host.

Building a source distribution runs its build backend, the package's own code, in the
runtime's process tree, outside any sandbox. The sdists here carry an in-tree build backend
that leaves a marker file when it runs; in cloud mode it must never run, whether the plugin
declares it in a ``requirements.txt``, as a ``name @ file://`` reference or as a Singer tap's
``package``. The self-hosted control shows the marker does appear when a build is allowed.
"""

from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path

import pytest

from dativo_runtime._plugins._environments import EnvironmentSpec, EnvironmentStore, ensure_environment

from .conftest import require_backend

EXAMPLES = Path(__file__).resolve().parents[4] / "examples" / "plugins"

_BACKEND = """
from pathlib import Path

MARKER = {marker!r}


def _ran(*args, **kwargs):
    Path(MARKER).write_text("the build backend ran on the host")
    raise RuntimeError("this package is never built")


get_requires_for_build_wheel = build_wheel = prepare_metadata_for_build_wheel = _ran
get_requires_for_build_sdist = build_sdist = _ran
"""


def _sdist(folder: Path, marker: Path, name: str = "buildcanary", version: str = "1.0") -> Path:
    """Write ``name-version.tar.gz``, an sdist whose build backend writes ``marker``."""
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        "pyproject.toml": textwrap.dedent(
            """
            [build-system]
            requires = []
            build-backend = "backend"
            backend-path = ["."]
            """
        ),
        "backend.py": _BACKEND.format(marker=str(marker)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    sdist = folder / f"{name}-{version}.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{path}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return sdist


@pytest.fixture
def process_sandbox() -> None:
    """The cloud jobs below run under the process backend (the refusal comes before it starts)."""
    require_backend("process")


@pytest.fixture
def canary(tmp_path: Path) -> tuple[Path, Path]:
    """An sdist folder holding ``buildcanary`` 1.0, and the marker its build backend would write."""
    marker = tmp_path / "host-marker"
    sdists = tmp_path / "sdists"
    _sdist(sdists, marker)
    return sdists, marker


def test_wheels_only_never_runs_a_build_backend(tmp_path: Path, canary: tuple[Path, Path]) -> None:
    sdists, marker = canary
    store = EnvironmentStore(tmp_path / "envs")
    spec = EnvironmentSpec(("buildcanary==1.0",), origin="test")
    with pytest.raises(Exception) as refused:
        ensure_environment(spec, find_links=sdists, store=store, wheels_only=True)
    assert "allow_source_builds" in str(refused.value)
    assert not marker.exists(), "a cloud-mode install ran the package's build backend"


def test_a_self_hosted_install_does_build_from_source(tmp_path: Path, canary: tuple[Path, Path]) -> None:
    """The control: without wheels_only the (benign) backend runs, so the test above can fail."""
    sdists, marker = canary
    store = EnvironmentStore(tmp_path / "envs")
    with pytest.raises(Exception, match="never built"):
        ensure_environment(
            EnvironmentSpec(("buildcanary==1.0",), origin="test"), find_links=sdists, store=store
        )
    assert marker.exists()


def test_wheels_only_refuses_url_and_file_requirements(tmp_path: Path, canary: tuple[Path, Path]) -> None:
    sdists, marker = canary
    spec = EnvironmentSpec(
        (f"buildcanary @ file://{sdists / 'buildcanary-1.0.tar.gz'}",), origin="requirements.txt"
    )
    with pytest.raises(Exception, match="names a URL or a file"):
        ensure_environment(spec, store=EnvironmentStore(tmp_path / "envs"), wheels_only=True)
    assert not marker.exists()


def _plugin_with_requirements(folder: Path, requirement: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    plugin = folder / "arrow_reader.py"
    plugin.write_text((EXAMPLES / "arrow_reader.py").read_text())
    (folder / "requirements.txt").write_text(requirement + "\n")
    return plugin


@pytest.mark.parametrize("how", ["index", "file_reference"])
def test_a_cloud_jobs_requirements_never_build_on_the_host(process_sandbox, run_job, tmp_path, canary, how):
    sdists, marker = canary
    requirement = (
        "buildcanary==1.0" if how == "index" else f"buildcanary @ file://{sdists}/buildcanary-1.0.tar.gz"
    )
    plugin = _plugin_with_requirements(tmp_path / "plugin", requirement)
    run = run_job(
        tmp_path / "job",
        source={"plugin": f"{plugin}:ArrowNumbersReader", "config": {"count": 10}},
        sandbox={"backend": "process"},
        env={"DATIVO_HOME": str(tmp_path / "home"), "DATIVO_FIND_LINKS": str(sdists)},
    )
    assert run.exit_code == 2, run.stderr[-3000:]
    assert run.error["error_type"] == "ConfigurationError", run.error
    assert "allow_source_builds" in run.error["message"]
    assert not marker.exists(), "a cloud job's requirement ran its build backend on the host"


def test_a_cloud_singer_package_never_builds_on_the_host(process_sandbox, run_job, tmp_path, canary):
    sdists, marker = canary
    run = run_job(
        tmp_path / "job",
        source={"plugin": "singer", "config": {"package": "buildcanary==1.0", "executable": "buildcanary"}},
        sandbox={"backend": "process"},
        env={"DATIVO_HOME": str(tmp_path / "home"), "DATIVO_FIND_LINKS": str(sdists)},
    )
    assert run.exit_code == 2, run.stderr[-3000:]
    assert "allow_source_builds" in run.error["message"]
    assert not marker.exists()


def test_an_operator_may_allow_source_builds(process_sandbox, run_job, tmp_path, canary):
    sdists, marker = canary
    policy = tmp_path / "policy.yaml"
    policy.write_text("sandbox:\n  mode: cloud\n  allow_source_builds: true\n")
    plugin = _plugin_with_requirements(tmp_path / "plugin", "buildcanary==1.0")
    run = run_job(
        tmp_path / "job",
        source={"plugin": f"{plugin}:ArrowNumbersReader", "config": {"count": 10}},
        sandbox={"backend": "process"},
        env={
            "DATIVO_HOME": str(tmp_path / "home"),
            "DATIVO_FIND_LINKS": str(sdists),
            "DATIVO_RUNTIME_CONFIG": str(policy),
        },
    )
    assert run.exit_code == 2, run.stderr[-3000:]  # the canary's backend refuses to build
    assert "never built" in run.error["message"]
    assert marker.exists()
