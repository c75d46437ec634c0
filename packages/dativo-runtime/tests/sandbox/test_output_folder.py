"""A sandboxed writer may write to its own output folder only, never to the runtime's bookkeeping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime import load_job, run_job
from dativo_runtime._engine._mounts import writable_output_dir
from dativo_runtime._sandbox import DockerSandbox
from dativo_runtime._sandbox.docker import _backend as docker_backend

from .conftest import require_backend

PLUGINS = Path(__file__).resolve().parents[1] / "data" / "plugins.py"


def _write_job(folder: Path, target_path: str, **extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "in.csv").write_text("id\n1\n2\n3\n")
    lines = [
        "tenant: t",
        "name: j",
        "source: {plugin: csv, config: {path: in.csv}}",
        "target:",
        f"  plugin: {PLUGINS}:StateTamperingWriter",
        f"  config: {{path: {target_path}, target_file: {folder / '.dativo' / 'state' / 't' / 'j.json'}}}",
        "sandbox: {backend: process, timeout: 60}",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    job = folder / "job.yaml"
    job.write_text("\n".join(lines) + "\n")
    return job


def test_a_sandboxed_writer_cannot_modify_the_state_file(tmp_path: Path) -> None:
    require_backend("process")
    # Plugins get their config as written: an absolute path, so the writer finds its folder.
    job = load_job(_write_job(tmp_path, str(tmp_path / "out")))
    state = tmp_path / ".dativo" / "state" / "t" / "j.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"format": "dativo.state/1", "streams": {}}')
    result = run_job(job)
    assert result.succeeded, result.error
    assert result.sandbox["target"] == "process"
    report = (tmp_path / "out" / "tamper-report.txt").read_text()
    assert report.startswith("refused:"), report
    assert state.read_text() == '{"format": "dativo.state/1", "streams": {}}'


@pytest.mark.parametrize(
    ("target_path", "extra", "names"),
    [
        (".", {}, "the job's state"),
        ("out", {"state": "{uri: out/state}"}, "set state.uri to a folder outside it"),
        ("out/.dativo/x", {}, ".dativo"),
    ],
)
def test_an_output_folder_overlapping_the_bookkeeping_is_refused_before_anything_runs(
    tmp_path: Path, target_path: str, extra: dict[str, str], names: str
) -> None:
    job = load_job(_write_job(tmp_path, target_path, **extra))
    with pytest.raises(ConfigurationError, match="sandboxed writer") as refused:
        writable_output_dir(job)
    assert names in refused.value.message
    result = run_job(job)
    assert result.exit_code == 2
    assert "target.config.path" in result.error.message
    assert not (tmp_path / "out" / "tamper-report.txt").exists()


def test_a_folder_holding_a_parquet_targets_bookkeeping_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shared" / "_dativo" / "manifests").mkdir(parents=True)
    job = load_job(_write_job(tmp_path / "jobs", str(tmp_path / "shared")))
    with pytest.raises(ConfigurationError, match="_dativo"):
        writable_output_dir(job)


def test_a_folder_of_its_own_is_given(tmp_path: Path) -> None:
    job = load_job(_write_job(tmp_path, "out"))
    assert writable_output_dir(job) == (tmp_path / "out").resolve()


class _RecordingClient:
    """Stands in for docker.DockerClient to see that every probe path closes it."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.closed = False
        self.images = self

    def ping(self) -> None:
        if self.fail:
            raise ConnectionError("daemon gone")

    def info(self) -> dict[str, Any]:
        return {"SecurityOptions": ["name=seccomp,profile=default"], "ServerVersion": "test"}

    def get(self, image: str) -> Any:
        raise docker_backend_errors().ImageNotFound(image)

    def close(self) -> None:
        self.closed = True


def docker_backend_errors() -> Any:
    import docker

    return docker.errors


@pytest.mark.parametrize("fail", [True, False])
def test_the_docker_probe_closes_its_client(monkeypatch: pytest.MonkeyPatch, fail: bool) -> None:
    client = _RecordingClient(fail)
    monkeypatch.setattr(docker_backend, "_docker_client", lambda timeout=30: client)
    available, why = DockerSandbox.image_availability("some-image:1")
    assert not available
    assert ("unreachable" if fail else "missing") in why
    assert client.closed
