"""Malformed job files through ``dativo-run``: each gives one clear paragraph and its exit code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GOOD_TARGET = "target: {plugin: parquet, config: {path: out}}"


def _make_dir(tmp: Path) -> Path:
    (tmp / "job.yaml").mkdir()
    return tmp / "job.yaml"


def _write(text: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / "in.csv").write_text("id,amount\n1,2.5\n")
        (tmp / "job.yaml").write_text(text)
        return tmp / "job.yaml"

    return make


def _write_bytes(data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / "job.yaml").write_bytes(data)
        return tmp / "job.yaml"

    return make


CASES: list[tuple[str, Callable[[Path], Path], int, list[str]]] = [
    (
        "unknown top-level key",
        _write(f"name: j\nsourse: {{plugin: csv}}\n{GOOD_TARGET}\n"),
        2,
        ["`sourse` is not a known key", "did you mean 'source'?", "`source` is required"],
    ),
    (
        "unknown nested key",
        _write(
            f"name: j\nsource: {{plugin: csv, config: {{path: in.csv}}, increment: {{}}}}\n{GOOD_TARGET}\n"
        ),
        2,
        ["`source.increment` is not a known key", "did you mean 'incremental'?"],
    ),
    (
        "wrong type",
        _write(
            f"name: j\nsource: {{plugin: csv, config: {{path: in.csv}}}}\n{GOOD_TARGET}\nretry: {{max_attempts: lots}}\n"
        ),
        2,
        ["`retry.max_attempts` is 'lots'", "valid integer"],
    ),
    (
        "mapping expected",
        _write(f"name: j\nsource: csv\n{GOOD_TARGET}\n"),
        2,
        ["`source` must be a mapping"],
    ),
    (
        "bad enum",
        _write(
            f"name: j\nsource: {{plugin: csv, config: {{path: in.csv}}}}\n{GOOD_TARGET}\nvalidation: lenient\n"
        ),
        2,
        ["`validation` is 'lenient'", "'strict', 'warn' or 'quarantine'"],
    ),
    (
        "missing plugin by name",
        _write(f"name: j\nsource: {{plugin: salesforce-pro}}\n{GOOD_TARGET}\nsandbox: {{backend: none}}\n"),
        2,
        [
            "no plugin named 'salesforce-pro'",
            "entry-point group 'dativo.plugins'",
            "Known plugins: airbyte, csv, iceberg, jsonl, parquet, postgres, singer",
        ],
    ),
    (
        "missing plugin file",
        _write(
            f"name: j\nsource: {{plugin: plugins/missing.py:Reader}}\n{GOOD_TARGET}\nsandbox: {{backend: none}}\n"
        ),
        2,
        ["plugins/missing.py", "does not exist"],
    ),
    (
        "missing plugin module",
        _write(
            f"name: j\nsource: {{plugin: 'not_installed_pkg.readers:Reader'}}\n{GOOD_TARGET}\nsandbox: {{backend: none}}\n"
        ),
        2,
        ["'not_installed_pkg.readers'", "not installed"],
    ),
    (
        "writer used as a source",
        _write(f"name: j\nsource: {{plugin: parquet, config: {{path: x}}}}\n{GOOD_TARGET}\n"),
        2,
        ["cannot be used as a source"],
    ),
    (
        "incompatible requires_sdk",
        _write(
            f"name: j\nsource: {{plugin: 'PLUGINS:IncompatibleReader'}}\n{GOOD_TARGET}\nsandbox: {{backend: none}}\n"
        ),
        2,
        ["requires dativo-plugin-sdk >=2.0,<3", "but 1.", "is installed"],
    ),
    (
        "job file missing",
        lambda tmp: tmp / "nope.yaml",
        2,
        ["nope.yaml", "does not exist"],
    ),
    ("job file is a folder", _make_dir, 2, ["is a folder", "--job-dir"]),
    ("not YAML", _write("name: j\nsource: [unclosed\n"), 2, ["is not valid YAML at line"]),
    ("not UTF-8", _write_bytes(b"name: \xff\xfe\n"), 2, ["is not UTF-8"]),
    ("empty file", _write(""), 2, ["the job file is empty"]),
    (
        "source file missing",
        _write(f"name: j\nsource: {{plugin: csv, config: {{path: no-such.csv}}}}\n{GOOD_TARGET}\n"),
        2,
        ["source file", "no-such.csv", "does not exist", "source.config.path"],
    ),
    (
        "secret file unreadable",
        _write(
            f"name: j\nsource: {{plugin: csv, config: {{path: in.csv, password: '${{file:/no/such/secret}}'}}}}\n{GOOD_TARGET}\n"
        ),
        2,
        ["source.config.password", "cannot read secret file", "/no/such/secret"],
    ),
    (
        "environment variable unset",
        _write(
            f"name: j\nsource: {{plugin: csv, config: {{path: '${{DATA_DIR_UNSET}}/in.csv'}}}}\n{GOOD_TARGET}\n"
        ),
        2,
        ["source.config.path", "environment variable DATA_DIR_UNSET is not set"],
    ),
    (
        "target path inside a file",
        _write(
            "name: j\nsource: {plugin: csv, config: {path: in.csv}}\ntarget: {plugin: parquet, config: {path: in.csv/out}}\n"
        ),
        2,
        ["in.csv/out", "not a folder"],
    ),
]


JSON_CASES = {"unknown top-level key", "incompatible requires_sdk", "job file missing", "source file missing"}


@pytest.mark.parametrize(("case", "make", "code", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_job_files(
    *,
    tmp_path: Path,
    run_cli: Any,
    test_plugins: Path,
    case: str,
    make: Callable[[Path], Path],
    code: int,
    fragments: list[str],
) -> None:
    job = make(tmp_path)
    if job.is_file():
        job.write_bytes(job.read_bytes().replace(b"PLUGINS", str(test_plugins).encode()))
    result = run_cli("run", "--config", str(job))
    assert result.returncode == code, (case, result.stdout, result.stderr)
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, result.stderr
    message = error_lines[0]
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Traceback" not in result.stderr
    if case not in JSON_CASES:
        return
    as_json = run_cli("run", "--config", str(job), "--json")
    assert as_json.returncode == code
    document = json.loads(as_json.stdout)
    assert document["exit_code"] == code
    assert document["error"]["message"]
