"""``sandbox.read_only_paths`` through ``dativo-run``: a sandboxed reader reads a granted folder, nothing more.

The paths are resolved against the job file's folder and mounted read-only at the same path;
a missing one, one that exposes the job's own files, and any in cloud mode without the
operator's permission are configuration errors (exit 2) naming the key.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_backend

READER = textwrap.dedent(
    """\
    from dativo_plugin_sdk import BaseReader


    class FileLinesReader(BaseReader):
        __version__ = "1.0.0"

        def extract(self, state=None):
            with open(self.config["file"]) as handle:
                rows = [{"line": line.rstrip("\\n")} for line in handle]
            try:
                with open(self.config["file"], "a") as handle:
                    handle.write("tampered\\n")
                rows.append({"line": "WRITE SUCCEEDED"})
            except OSError:
                pass
            yield rows
    """
)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """plugins/reader.py and data/lines.txt beside the job file, readable by the sandbox's user."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "reader.py").write_text(READER)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "lines.txt").write_text("first\nsecond\n")
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return tmp_path


def _job(folder: Path, backend: str, read_only: list[str], mode: str = "self_hosted") -> Path:
    job = folder / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "tenant": "acme",
                "name": "lines",
                "mode": mode,
                "source": {
                    "plugin": "plugins/reader.py:FileLinesReader",
                    "config": {"file": str(folder / "data" / "lines.txt")},
                },
                "target": {"plugin": "parquet", "config": {"path": "./out"}},
                "sandbox": {"backend": backend, "timeout": 60, "read_only_paths": read_only},
            }
        )
    )
    return job


def _run(
    run_cli: Callable[..., Any], job: Path, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    done = run_cli("run", "--config", str(job), "--json", env=env, cwd=job.parent, timeout=180)
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(done.stdout + done.stderr) from None


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_a_sandboxed_reader_reads_a_granted_folder_and_cannot_change_it(
    backend: str, layout: Path, run_cli: Callable[..., Any]
) -> None:
    require_backend(backend)
    code, result = _run(run_cli, _job(layout, backend, ["./data"]))
    assert code == 0, result
    assert result["records_written"] == 2  # first, second: the append failed
    assert (layout / "data" / "lines.txt").read_text() == "first\nsecond\n"


def test_without_the_grant_the_file_is_not_there(layout: Path, run_cli: Callable[..., Any]) -> None:
    require_backend("process")
    code, result = _run(run_cli, _job(layout, "process", []))
    assert code == 1, result
    assert "FileNotFoundError" in result["error"]["message"]


def test_a_missing_path_is_a_configuration_error_naming_the_key(
    layout: Path, run_cli: Callable[..., Any]
) -> None:
    code, result = _run(run_cli, _job(layout, "process", ["./data", "./no-such-folder"]))
    assert code == 2, result
    message = result["error"]["message"]
    assert "`sandbox.read_only_paths[1]` names './no-such-folder', which does not exist" in message


def test_a_path_exposing_the_job_file_is_refused(layout: Path, run_cli: Callable[..., Any]) -> None:
    require_backend("process")
    code, result = _run(run_cli, _job(layout, "process", ["."]))
    assert code == 2, result
    assert "sandbox.read_only_paths[0]" in result["error"]["message"]
    assert "would let the plugin read the job file" in result["error"]["message"]


def test_cloud_mode_refuses_read_only_paths_unless_the_operator_allows_them(
    layout: Path, run_cli: Callable[..., Any]
) -> None:
    require_backend("process")
    job = _job(layout, "process", ["./data"], mode="cloud")
    code, result = _run(run_cli, job)
    assert code == 2, result
    assert "sandbox.read_only_paths" in result["error"]["message"]
    assert "cloud mode refuses them" in result["error"]["message"]
    policy = layout / "runtime.yaml"
    policy.write_text("sandbox:\n  mode: cloud\n  allow_read_only_paths: true\n")
    code, result = _run(run_cli, job, env={"DATIVO_RUNTIME_CONFIG": str(policy)})
    assert code == 0, result
    assert result["records_written"] == 2
