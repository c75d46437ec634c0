"""``dativo-run singer-tap`` end to end: piped into a real Singer target from PyPI, and read back.

The target is ``meltanolabs-target-csv`` 0.5.0 (a Singer SDK target), installed once per
session into a throwaway virtualenv with ``uv`` (its cache makes that about a second).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import clean_env, dativo_run_command, require_backend

TARGET_CSV = "meltanolabs-target-csv==0.5.0"
# Freezes the target's dependencies too (singer-sdk moves weekly).
EXCLUDE_NEWER = "2026-12-01T00:00:00Z"

ROWS = [
    {"id": "1", "name": "Ada", "amount": "12.50", "active": "true", "at": "2024-05-01T10:00:00Z"},
    {
        "id": "2",
        "name": 'Bob "the" Builder, Jr.',
        "amount": "",
        "active": "false",
        "at": "2024-05-02T11:30:00Z",
    },
    {"id": "3", "name": "Zoë\nnewline", "amount": "-0.75", "active": "", "at": "2024-05-03T12:00:00Z"},
]
MORE_ROWS = [{"id": "4", "name": "Dan", "amount": "1", "active": "true", "at": "2024-05-04T00:00:00Z"}]

JOB = """\
name: people
source:
  plugin: csv
  config: {{path: ./data, stream: people}}
  stream: people
  incremental: {{strategy: mtime}}
target: {{plugin: parquet, config: {{path: ./out}}}}
schema:
  - {{name: id, type: integer, required: true}}
  - {{name: name, type: string}}
  - {{name: amount, type: decimal}}
  - {{name: active, type: boolean}}
  - {{name: at, type: timestamp, required: true}}
sandbox: {{backend: {backend}}}
"""


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin
    except ImportError:
        pytest.skip("uv is not installed: it installs the Singer target these tests pipe into")
    return str(find_uv_bin())


@pytest.fixture(scope="session")
def target_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``target-csv`` console script of a throwaway virtualenv (built once per session)."""
    venv = tmp_path_factory.mktemp("target-csv") / "venv"
    env = {**os.environ, "UV_EXCLUDE_NEWER": EXCLUDE_NEWER, "NO_COLOR": "1"}
    subprocess.run(
        [_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env, capture_output=True
    )
    subprocess.run(
        [_uv(), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), TARGET_CSV],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    return venv / "bin" / "target-csv"


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _job(tmp_path: Path, backend: str) -> Path:
    _write_csv(tmp_path / "data" / "a.csv", ROWS)
    job = tmp_path / "job.yaml"
    job.write_text(JOB.format(backend=backend))
    return job


def _pipe(tap_args: list[str], target: Path, output: Path, cwd: Path) -> tuple[str, str]:
    """``dativo-run singer-tap ARGS | target-csv``: the target's stdout (its final state) and the tap's stderr."""
    config = cwd / f"target-{output.name}.json"
    config.write_text(json.dumps({"output_path": str(output)}))
    with subprocess.Popen(
        [*dativo_run_command(), "singer-tap", *tap_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=clean_env(),
    ) as tap:
        assert tap.stdout is not None
        sink = subprocess.run(
            [str(target), "--config", str(config)],
            stdin=tap.stdout,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        tap.stdout.close()
        _, errors = tap.communicate(timeout=300)
    tap_err = errors.decode()
    assert tap.returncode == 0, tap_err
    assert sink.returncode == 0, sink.stderr
    return sink.stdout, tap_err


def _read_back(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _expected(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The rows as target-csv writes them: decimals with the schema's 9 places, datetimes as Python prints them."""

    def decimal(text: str) -> str:
        return f"{float(text):.9f}" if text else ""

    return [
        {
            "id": row["id"],
            "name": row["name"],
            "amount": decimal(row["amount"]),
            "active": {"true": "True", "false": "False", "": ""}[row["active"]],
            "at": row["at"].replace("T", " ").replace("Z", "+00:00"),
        }
        for row in rows
    ]


@pytest.mark.parametrize("backend", ["none", "process", "docker"])
def test_a_job_piped_into_target_csv_twice_reads_only_new_files(
    tmp_path: Path, target_csv: Path, backend: str
) -> None:
    require_backend(backend)
    job = _job(tmp_path, backend)
    state_out, _ = _pipe(["--config", str(job)], target_csv, tmp_path / "first", tmp_path)
    assert _read_back(tmp_path / "first" / "people.csv") == _expected(ROWS)
    state = json.loads(state_out.strip().splitlines()[-1])
    assert state["bookmarks"]["people"]["paths_at_mtime"] == [str(tmp_path / "data" / "a.csv")]
    assert not (tmp_path / "out").exists()  # singer-tap writes neither the job's target nor its state

    _write_csv(tmp_path / "data" / "b.csv", MORE_ROWS)
    (tmp_path / "state.json").write_text(json.dumps(state))
    state_out, _ = _pipe(
        ["--config", str(job), "--state", str(tmp_path / "state.json")],
        target_csv,
        tmp_path / "second",
        tmp_path,
    )
    assert _read_back(tmp_path / "second" / "people.csv") == _expected(MORE_ROWS)
    assert json.loads(state_out.strip().splitlines()[-1])["bookmarks"]["people"]["paths_at_mtime"] == [
        str(tmp_path / "data" / "b.csv")
    ]


def test_discover_prints_a_catalog_that_selects_the_run(
    tmp_path: Path, run_cli: Callable[..., Any], target_csv: Path
) -> None:
    job = _job(tmp_path, "none")
    found = run_cli("singer-tap", "--config", str(job), "--discover")
    assert found.returncode == 0, found.stderr
    catalog = json.loads(found.stdout)
    (entry,) = catalog["streams"]
    jsonschema.Draft7Validator.check_schema(entry["schema"])
    assert entry["tap_stream_id"] == "people"
    assert entry["schema"]["required"] == ["id", "at"]
    assert entry["replication_method"] == "INCREMENTAL"
    breadcrumbs = [tuple(m["breadcrumb"]) for m in entry["metadata"]]
    assert breadcrumbs == [(), *(("properties", n) for n in ("id", "name", "amount", "active", "at"))]
    assert all(m["metadata"]["selected-by-default"] is True for m in entry["metadata"])

    # As Meltano does: select some fields, pass the catalog back (--catalog, or --properties for old runners).
    for item in entry["metadata"]:
        item["metadata"]["selected"] = item["breadcrumb"] != ["properties", "amount"]
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    for option in ("--catalog", "--properties"):
        output = tmp_path / option.strip("-")
        _pipe(["--config", str(job), option, str(tmp_path / "catalog.json")], target_csv, output, tmp_path)
        expected = [{k: v for k, v in row.items() if k != "amount"} for row in _expected(ROWS)]
        assert _read_back(output / "people.csv") == expected


PRINTING_PLUGIN = """
import sys
from dativo_plugin_sdk import BaseReader, ConnectionTestResult


class PrintingReader(BaseReader):
    __version__ = "1.0.0"

    def check_connection(self):
        return ConnectionTestResult(True, "ok")

    def extract(self, state=None):
        print("a plugin printing to stdout")
        sys.stdout.write("more noise\\n")
        yield [{"n": 1}]
        print("and again")
        yield [{"n": 2}]
"""


def test_stdout_holds_only_singer_messages(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "printing.py").write_text(textwrap.dedent(PRINTING_PLUGIN))
    (tmp_path / "job.yaml").write_text(
        "name: noisy\nsource: {plugin: plugins/printing.py:PrintingReader}\n"
        "target: {plugin: parquet, config: {path: out}}\nsandbox: {backend: none}\n"
    )
    result = run_cli("singer-tap", "--config", "job.yaml", "--log-level", "info")
    assert result.returncode == 0, result.stderr
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    assert [m["type"] for m in messages] == ["SCHEMA", "RECORD", "RECORD"]
    assert [m["record"] for m in messages[1:]] == [{"n": 1}, {"n": 2}]
    assert "a plugin printing to stdout" in result.stderr
    assert "singer-tap: 2 record(s)" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--config", "missing.yaml"], 2, "missing.yaml"),
        (["--config", "job.yaml", "--state", "state.json"], 2, "--state"),
        (["--config", "job.yaml", "--catalog", "c.json", "--properties", "c.json"], 2, "not both"),
        (["--config", "bad.yaml"], 65, "id"),
        ([], 2, "--config is required"),
    ],
)
def test_errors_exit_with_the_documented_codes_and_no_traceback(
    tmp_path: Path, run_cli: Callable[..., Any], args: list[str], code: int, message: str
) -> None:
    _job(tmp_path, "none")
    (tmp_path / "state.json").write_text("[1, 2]")
    (tmp_path / "c.json").write_text('{"streams": []}')
    _write_csv(tmp_path / "bad" / "x.csv", [{"id": "not a number", "at": "2024-01-01T00:00:00Z"}])
    (tmp_path / "bad.yaml").write_text(
        "name: bad\nsource: {plugin: csv, config: {path: ./bad}}\ntarget: {plugin: parquet, config: {path: o}}\n"
        "schema: [{name: id, type: integer}, {name: at, type: timestamp}]\nsandbox: {backend: none}\n"
    )
    result = run_cli("singer-tap", *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert all(json.loads(line)["type"] == "SCHEMA" for line in result.stdout.splitlines())


def test_tap_dativo_runs_with_a_meltano_style_config(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "tap-dativo"
    if not script.exists():
        pytest.skip("the tap-dativo console script is not installed in this environment")
    _job(tmp_path, "none")
    (tmp_path / "tap.json").write_text(json.dumps({"job": "job.yaml"}))
    result = subprocess.run(
        [str(script), "--config", "tap.json"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sum(json.loads(line)["type"] == "RECORD" for line in result.stdout.splitlines()) == len(ROWS)
    about = subprocess.run(
        [str(script), "--about", "--format", "json"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    document = json.loads(about.stdout)
    assert document["name"] == "tap-dativo"
    assert set(document["capabilities"]) >= {"catalog", "discover", "state", "properties", "about"}
    assert document["settings"]["required"] == ["job"]
