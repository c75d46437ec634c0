"""Fixtures for the cross-package tests: the real ``dativo-run`` command, a real S3 endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TEST_PLUGINS = ROOT / "packages" / "dativo-runtime" / "tests" / "data" / "plugins.py"

RunCli = Callable[..., subprocess.CompletedProcess[str]]


def dativo_run_command() -> list[str]:
    """The installed ``dativo-run`` of this interpreter's environment (the console script)."""
    beside = Path(sys.executable).parent / "dativo-run"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dativo-run")
    if found:
        return [found]
    return [sys.executable, "-c", "from dativo_runtime._cli._app import main; main()"]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a ``dativo-run`` subprocess: no AWS settings unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATIVO_"))}
    env["DATIVO_LOG_FORMAT"] = "json"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def require_backend(backend: str) -> None:
    """Skip the test, saying why, when sandbox ``backend`` does not work here (``none`` always does).

    With ``DATIVO_REQUIRE_SANDBOX=1`` (CI) the test fails instead of skipping.
    """
    if backend == "none":
        return
    from dativo_runtime._sandbox import BubblewrapSandbox, DockerSandbox

    available, why = (BubblewrapSandbox if backend == "process" else DockerSandbox).availability()
    if available:
        return
    message = f"the {backend} sandbox backend is not available here: {why}"
    if os.environ.get("DATIVO_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"DATIVO_REQUIRE_SANDBOX=1 but {message}")
    pytest.skip(message)


@pytest.fixture
def start_cli(tmp_path: Path) -> Callable[..., subprocess.Popen[bytes]]:
    """Start ``dativo-run ARGS`` in the background (for tests that kill it)."""

    def start(
        *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*dativo_run_command(), *args],
            cwd=cwd or tmp_path,
            env=clean_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    return start


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run ``dativo-run ARGS`` in a subprocess and return the completed process."""

    def run(
        *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
    ) -> Any:
        return subprocess.run(
            [*dativo_run_command(), *args],
            capture_output=True,
            text=True,
            env=clean_env(env),
            cwd=cwd or tmp_path,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def write_job(tmp_path: Path) -> Callable[..., Path]:
    """Write a job file (YAML text, dedented) into the test's folder."""

    def write(text: str, name: str = "job.yaml", folder: Path | None = None) -> Path:
        target = (folder or tmp_path) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
        return target

    return write


@pytest.fixture
def example_copy(tmp_path: Path) -> Path:
    """A copy of examples/ (jobs, data, plugins) so that runs write into the test's folder."""
    target = tmp_path / "examples"
    for part in ("jobs", "data", "plugins"):
        shutil.copytree(
            EXAMPLES / part, target / part, ignore=shutil.ignore_patterns("__pycache__", "output")
        )
    return target


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An S3-compatible server over HTTP on 127.0.0.1 with an ephemeral port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def aws_credentials() -> dict[str, str]:
    """The fake credentials the moto tests use (passed to subprocesses through their environment)."""
    return dict(AWS_ENV)


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 client on the moto server and a fresh bucket name (credentials set for this test only)."""
    import boto3

    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    client.bucket = bucket
    client.endpoint = moto_endpoint
    return client


@pytest.fixture
def test_plugins() -> Path:
    """The runtime's test plugins (a file loaded by path)."""
    return TEST_PLUGINS
