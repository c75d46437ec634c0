"""Fixtures of the sandbox tests: the backends (skipped, or failed under DATIVO_REQUIRE_SANDBOX=1)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dativo_runtime._plugins._ref import PluginRef
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
            # Only this process's containers: other test runs may share the daemon.
            mine = {"label": [f"io.dativo.sandbox.owner.pid={os.getpid()}"]}
            return {c["Id"] for c in client.api.containers(all=True, filters=mine)}
        except Exception:
            return None

    before = labelled()
    yield
    after = labelled()
    if before is not None and after is not None:
        assert not after - before, f"sandbox containers left behind: {sorted(after - before)}"


@dataclass
class HostileRun:
    """What a ``dativo-run run --json`` subprocess did: exit code, output, time and peak memory."""

    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_bytes: int
    job: Path

    @property
    def report(self) -> dict[str, Any]:
        """The ``--json`` document printed on stdout ({} when there is none)."""
        try:
            document = json.loads(self.stdout)
        except ValueError:
            return {}
        return document if isinstance(document, dict) else {}

    @property
    def error(self) -> dict[str, Any]:
        """The typed error of a failed run (``{}`` for a success)."""
        error = self.report.get("error")
        return error if isinstance(error, dict) else {}

    def output_bytes(self) -> bytes:
        """Every byte of every file under the job's folder (to look for leaked host memory)."""
        return b"".join(p.read_bytes() for p in sorted(self.job.parent.rglob("*")) if p.is_file())


def run_job_cli(
    folder: Path,
    *,
    source: dict[str, Any],
    target: dict[str, Any] | None = None,
    sandbox: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    args: Sequence[str] = (),
) -> HostileRun:
    """Write a cloud-mode job in ``folder`` and run it with ``dativo-run run --json``.

    The runtime is a child process whose peak RSS is measured with ``wait4``; a test asserts
    that it stays within a budget whatever the plugin sent.
    """
    folder.mkdir(parents=True, exist_ok=True)
    job_doc: dict[str, Any] = {
        "tenant": "acme",
        "name": "hostile",
        "mode": "cloud",
        "source": source,
        "target": target or {"plugin": "parquet", "config": {"path": "./out"}},
        "sandbox": {"timeout": 60, "memory": "512m", **(sandbox or {})},
        **(extra or {}),
    }
    job = folder / "job.yaml"
    job.write_text(json.dumps(job_doc))  # JSON is YAML
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATIVO_")}
    environment.update({"PYTHONUNBUFFERED": "1", "DATIVO_LOG_FORMAT": "json", **(env or {})})
    command = [sys.executable, "-c", "from dativo_runtime._cli._app import main; main()"]
    began = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [*command, "run", "--config", str(job), "--json", *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=environment,
            cwd=folder,
        )
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return HostileRun(
            exit_code=process.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            seconds=time.monotonic() - began,
            peak_rss_bytes=usage.ru_maxrss * 1024,
            job=job,
        )


@pytest.fixture
def run_job() -> Callable[..., HostileRun]:
    """Run a job through ``dativo-run run --json`` in a subprocess; see :func:`run_job_cli`."""
    return run_job_cli


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each real backend's name in turn (skipped, or failed under DATIVO_REQUIRE_SANDBOX=1, when missing)."""
    require_backend(request.param)
    return str(request.param)


@pytest.fixture
def good_run_afterwards(run_job: Callable[..., HostileRun]) -> Callable[[Path, str], None]:
    """Check that a good job still runs in a backend after an attack (the runtime survived)."""

    def check(folder: Path, backend: str) -> None:
        good = run_job(
            folder / "good",
            source={"plugin": f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader", "config": {"count": 10}},
            sandbox={"backend": backend},
        )
        assert good.exit_code == 0, good.stderr[-2000:]
        assert good.report["records_written"] == 10

    return check


def _privileged_files(folder: Path) -> list[str]:
    found = []
    for path in [folder, *folder.rglob("*")]:
        info = path.lstat()
        if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
            found.append(f"{path} {stat.filemode(info.st_mode)} uid={info.st_uid}")
    return found


@pytest.fixture
def privileged_files() -> Callable[[Path], list[str]]:
    """List what under a folder (the folder included) has a setuid or setgid bit, with its owner."""
    return _privileged_files
