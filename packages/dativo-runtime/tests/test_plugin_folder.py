"""A sandboxed file plugin's folder (mounted whole) may not hold the job's own files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime import load_job
from dativo_runtime._engine._mounts import check_plugin_folder

PLUGIN = "from dativo_plugin_sdk import BaseReader\n\nclass R(BaseReader):\n    def extract(self, state=None):\n        yield []\n"


def _job(folder: Path, plugin: str, target: str = "../out") -> Path:
    job = folder / "job.yaml"
    job.write_text(
        f"name: j\nsource: {{plugin: '{plugin}', config: {{path: in.csv}}}}\n"
        f"target: {{plugin: parquet, config: {{path: '{target}'}}}}\nstate: {{uri: ../state}}\n"
    )
    return job


def test_plugin_beside_the_job_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "r.py").write_text(PLUGIN)
    job = load_job(_job(tmp_path / "jobs", "r.py:R"))
    with pytest.raises(ConfigurationError, match="holds the job file") as info:
        check_plugin_folder(job, job.source_ref())
    assert "folder of its own" in info.value.message
    assert info.value.details["setting"] == "source.plugin"


def test_plugin_folder_holding_the_output_or_state_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "r.py").write_text(PLUGIN)
    (tmp_path / "jobs").mkdir()
    job = load_job(_job(tmp_path / "jobs", "../plugins/r.py:R", target="../plugins/out"))
    with pytest.raises(ConfigurationError, match="the target folder"):
        check_plugin_folder(job, job.source_ref())
    # A target may see its own output folder, but not the state.
    check_plugin_folder(job, job.source_ref(), role="target")


def test_plugin_in_a_folder_of_its_own_is_fine(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "r.py").write_text(PLUGIN)
    job = load_job(_job(tmp_path, "plugins/r.py:R", target="out"))
    check_plugin_folder(job, job.source_ref())
    builtin = load_job(_job(tmp_path, "csv", target="out"))
    check_plugin_folder(builtin, builtin.source_ref())  # nothing is mounted for a built-in
