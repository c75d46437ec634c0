"""A third-party writer's output through the real ``dativo-run``, on every backend.

Its ``target.config.path`` is relative to the job file, and the command runs from another
folder: the plugin must get the resolved absolute folder (the one a sandbox mounts), write
nothing relative to the working directory, and the run's summary must count the files and
bytes its ``write_batch``/``commit_files`` returned.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_backend

ROOT = Path(__file__).resolve().parent.parent
RECORDS = 300

# Writes each batch straight into its folder and returns paths relative to it; commit_files
# keeps the SDK's default summary ({"files_committed": n}), so the run's summary must come
# from write_batch's metadata.
JSONL_TARGET = """
import json
import os
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import BaseWriter, ConnectionTestResult, records_from_batch


class JsonlTarget(BaseWriter):
    __version__ = "1.0.0"
    config_schema = {
        "type": "object",
        "properties": {"path": {"type": "string"}},
        "required": ["path"],
        "additionalProperties": False,
    }

    def __init__(self, config, schema=None):
        super().__init__(config, schema)
        self.path = Path(config["path"])

    def check_connection(self):
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return ConnectionTestResult(False, f"cannot write to {self.path}: {exc}", "TARGET_NOT_WRITABLE")
        return ConnectionTestResult(True, f"{self.path} is writable (absolute: {self.path.is_absolute()})")

    def write_batch(self, records, file_counter):
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"part-{file_counter:06d}.jsonl"
        with open(self.path / name, "a", encoding="utf-8") as handle:
            for row in records_from_batch(records):
                handle.write(json.dumps(row, default=str) + "\\n")
        return [{"path": name, "record_count": records.num_rows, "size_bytes": os.path.getsize(self.path / name)}]
"""


def _project(tmp_path: Path, backend: str, plugin: str) -> tuple[Path, Path]:
    """A project with its plugin, data and job in folders of their own; returns (job file, other cwd)."""
    project = tmp_path / "project"
    (project / "plugins").mkdir(parents=True)
    if plugin == "jsonl_target.py:JsonlTarget":
        (project / "plugins" / "jsonl_target.py").write_text(JSONL_TARGET)
    else:
        (project / "plugins" / "jsonl_writer.py").write_text(
            (ROOT / "examples" / "plugins" / "jsonl_writer.py").read_text()
        )
    (project / "data").mkdir()
    rows = "\n".join(f"{i},item-{i}" for i in range(RECORDS))
    (project / "data" / "orders.csv").write_text(f"id,name\n{rows}\n")
    job = project / "jobs" / "orders.yaml"
    job.parent.mkdir()
    job.write_text(
        textwrap.dedent(
            f"""\
            name: orders
            source: {{plugin: csv, config: {{path: ../data/orders.csv, block_size: 1m}}}}
            target: {{plugin: ../plugins/{plugin}, config: {{path: ../output/orders}}}}
            sandbox: {{backend: {backend}, timeout: 120}}
            """
        )
    )
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    return job, elsewhere


@pytest.mark.parametrize("backend", ["none", "process", "docker"])
def test_a_relative_output_path_is_resolved_against_the_job_file(
    run_cli: Any, tmp_path: Path, backend: str
) -> None:
    require_backend(backend)
    job, elsewhere = _project(tmp_path, backend, "jsonl_target.py:JsonlTarget")
    check = run_cli("check", "--config", str(job), "--json", cwd=elsewhere)
    assert check.returncode == 0, check.stdout + check.stderr
    target = next(r for r in json.loads(check.stdout)["checks"] if r["role"] == "target")
    output = (tmp_path / "project" / "output" / "orders").resolve()
    assert target["message"] == f"{output} is writable (absolute: True)"

    result = run_cli("run", "--config", str(job), "--json", cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    written = sorted(output.glob("*.jsonl"))
    assert len(written) == 1
    assert len(written[0].read_text().splitlines()) == RECORDS
    # Nothing relative to the working directory (under none the raw '../output' meant tmp_path/elsewhere/output).
    assert not (tmp_path / "elsewhere" / "output").exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == []

    # The summary counts what write_batch returned: one file, its bytes, the resolved folder.
    summary = json.loads(result.stdout)
    assert summary["records_written"] == RECORDS
    assert summary["files"] == [str(written[0])]
    assert summary["bytes_written"] == written[0].stat().st_size > 0
    assert summary["output"] == str(output)
    human = run_cli("run", "--config", str(job), cwd=elsewhere)
    assert human.returncode == 0, human.stderr
    assert f"{output}  (1 new file(s), " in human.stdout
    assert "duckdb" not in human.stdout  # the read hint is for a parquet dataset only


@pytest.mark.parametrize("backend", ["none", "process"])
def test_the_summary_takes_the_paths_commit_files_returned(
    run_cli: Any, tmp_path: Path, backend: str
) -> None:
    """The example JsonlWriter stages files and returns the committed ones from commit_files."""
    require_backend(backend)
    job, elsewhere = _project(tmp_path, backend, "jsonl_writer.py:JsonlWriter")
    result = run_cli("run", "--config", str(job), "--json", cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    output = (tmp_path / "project" / "output" / "orders").resolve()
    committed = sorted(output.glob("*.jsonl"))
    summary = json.loads(result.stdout)
    assert summary["files"] == [str(p) for p in committed]
    assert len(committed) == 1
    assert summary["bytes_written"] == committed[0].stat().st_size
    assert summary["output"] == str(output)
