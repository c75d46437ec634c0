"""End to end: `dativo-run run` with an untrusted plugin in each real sandbox backend.

A good plugin lands the same Parquet whichever backend runs it; a plugin that blows its
memory limit fails the run with exit code 1, a SandboxError naming OOM, and nothing
committed; the next run on the same machine works.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import require_backend

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "plugins"
HOSTILE = ROOT / "packages" / "dativo-runtime" / "tests" / "sandbox" / "plugins" / "hostile.py"


def _run(job: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-c",
        "from dativo_runtime._cli._app import main; main()",
        "run",
        "--config",
        str(job),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def _job(folder: Path, plugin: str, config: dict[str, object], backend: str, memory: str = "512m") -> Path:
    job = folder / "job.yaml"
    job.write_text(
        textwrap.dedent(
            f"""\
            tenant: acme
            name: sandboxed
            mode: cloud
            source:
              plugin: {plugin}
              config: {json.dumps(config)}
            target:
              plugin: parquet
              config: {{path: ./out}}
            sandbox:
              backend: {backend}
              memory: {memory}
              timeout: 120
            """
        )
    )
    return job


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_sandboxed_plugin_lands_parquet_and_a_hostile_one_commits_nothing(backend, tmp_path):
    require_backend(backend)
    import duckdb

    good = tmp_path / "good"
    good.mkdir()
    plugin = f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader"
    result = _run(_job(good, plugin, {"count": 1000, "batch_size": 100}, backend))
    assert result.returncode == 0, result.stderr
    files = sorted((good / "out").glob("*.parquet"))
    table = pq.read_table(files[0])
    assert table.num_rows == 1000
    assert sorted(table.column("id").to_pylist()) == list(range(1000))
    count = duckdb.execute(
        f"SELECT count(*), sum(square) FROM read_parquet('{good / 'out'}/*.parquet')"
    ).fetchone()
    assert count == (1000, sum(i * i for i in range(1000)))

    bad = tmp_path / "bad"
    bad.mkdir()
    result = _run(_job(bad, f"{HOSTILE}:KillerReader", {"action": "memory"}, backend, memory="256m"))
    assert result.returncode == 1, result.stderr
    assert "exceeded the memory limit 256 MiB (OOM)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((bad / "out").rglob("*.parquet"))

    again = _run(_job(good, plugin, {"count": 1000, "batch_size": 100}, backend))
    assert again.returncode == 0, again.stderr
