"""The dativo-conformance command: exit codes 0/1/2, text and JSON reports, one-line usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dativo_testkit._cli import main


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    (tmp_path / "good.json").write_text('{"records": 40, "batch_size": 8}')
    (tmp_path / "bad.json").write_text('{"records": -1}')
    (tmp_path / "writer.json").write_text(json.dumps({"folder": str(tmp_path / "out")}))
    (tmp_path / "broken.json").write_text("{")
    return tmp_path


def test_a_passing_reader_exits_0_with_a_text_report(
    configs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "dativo_testkit:MockReader",
            "--config",
            str(configs / "good.json"),
            "--bad-config",
            str(configs / "bad.json"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("Dativo conformance of dativo_testkit._mock_reader.MockReader (reader): PASSED")
    assert "PASS  reader.rejects_bad_config" in out


def test_a_failing_reader_exits_1_and_json_names_the_check(
    configs: Path, plugins_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = f"{plugins_dir / 'broken_readers.py'}:DuplicateKeyReader"
    code = main([ref, "--config", str(configs / "good.json"), "--json", "--timeout", "30"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["passed"] is False
    assert [c["name"] for c in report["checks"] if c["status"] == "failed"] == ["reader.primary_keys_unique"]
    assert report["plugin"].endswith("broken_readers.py:DuplicateKeyReader")


def test_bad_config_may_be_given_several_times(configs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (configs / "auth.json").write_text('{"check_connection_error": "authentication"}')
    (configs / "accepted.json").write_text('{"records": 5}')
    base = ["dativo_testkit:MockReader", "--config", str(configs / "good.json")]
    both = ["--bad-config", str(configs / "bad.json"), "--bad-config", str(configs / "auth.json")]
    assert main([*base, *both]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "reader.rejects_bad_config" in x)
    assert line.startswith("PASS")
    assert "all 2 bad configs were rejected" in line
    accepted = [*both, "--bad-config", str(configs / "accepted.json")]
    assert main([*base, *accepted, "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    failed = [c for c in report["checks"] if c["status"] == "failed"]
    assert [c["name"] for c in failed] == ["reader.rejects_bad_config"]
    assert failed[0]["reason"].startswith("bad config 3 of 3 was accepted")


def test_writers_read_back_from_the_output_folder(configs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "dativo_testkit:MockWriter",
        "--config",
        str(configs / "writer.json"),
        "--hypothesis-examples",
        "5",
    ]
    assert main([*args, "--output-folder", str(configs / "out")]) == 0
    assert "PASS  writer.round_trip" in capsys.readouterr().out
    assert main([*args, "--skip", "writer.close_releases_resources"]) == 0
    out = capsys.readouterr().out
    assert "SKIP  writer.round_trip" in out
    assert "--output-folder" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dativo_testkit:NoSuchReader", "--config", "{good}"], "has no class 'NoSuchReader'"),
        (["dativo_testkit:MockReader", "--config", "{dir}/missing.json"], "cannot read config file"),
        (["dativo_testkit:MockReader", "--config", "{broken}"], "is not valid JSON"),
        (
            ["dativo_testkit:MockReader", "--config", "{good}", "--skip", "reader.nope"],
            "unknown reader check",
        ),
        (["dativo_testkit:MockReader", "--config", "{good}", "--schema", "{broken}"], "is not valid JSON"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    configs: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    values = {"good": configs / "good.json", "broken": configs / "broken.json", "dir": configs}
    code = main([a.format(**values) for a in args])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("dativo-conformance: error: ")
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [[], ["dativo_testkit:MockReader"], ["x:Y", "--config", "c", "--timeout", "-1"]]
)
def test_argument_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert "usage: dativo-conformance" in capsys.readouterr().err


def test_the_command_runs_as_a_process_without_tracebacks(configs: Path) -> None:
    command = [sys.executable, "-m", "dativo_testkit._cli"]
    passed = subprocess.run(
        [*command, "dativo_testkit:MockReader", "--config", str(configs / "good.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert passed.returncode == 0, passed.stderr
    unknown = subprocess.run(
        [*command, "nowhere.py:Reader", "--config", str(configs / "good.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=configs,
    )
    assert unknown.returncode == 2
    assert "Traceback" not in unknown.stderr
    assert unknown.stderr == (
        f"dativo-conformance: error: plugin file {str(configs.resolve() / 'nowhere.py')!r} (from reference "
        "'nowhere.py:Reader') does not exist; fix the path in the reference (a relative path starts at "
        "the job file's folder; for dativo-conformance, at the current folder)\n"
    )


def test_writer_conformance_leaves_the_current_folder_untouched(tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "writer.json").write_text(json.dumps({"folder": str(tmp_path / "out")}))
    before = sorted(p.name for p in workdir.iterdir())
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "dativo_testkit._cli",
            "dativo_testkit:MockWriter",
            "--config",
            "writer.json",
            "--output-folder",
            str(tmp_path / "out"),
            "--hypothesis-examples",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=workdir,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "PASS  writer.hypothesis_round_trip" in run.stdout
    assert sorted(p.name for p in workdir.iterdir()) == before


_FILE_PLUGINS = """
from dativo_plugin_sdk import TransientError
from dativo_testkit import MockReader


class GoodReader(MockReader):
    __version__ = "1.0.0"


class FutureReader(MockReader):
    __version__ = "1.0.0"
    requires_sdk = ">=2,<3"


class ReprInErrorReader(MockReader):
    __version__ = "1.0.0"

    def discover(self):
        raise TransientError(f"{self!r} of {type(self)} could not list streams")


class NotAReader:
    __version__ = "1.0.0"

    def __init__(self, config):
        self.config = config
"""


@pytest.mark.parametrize(
    ("class_name", "code", "shown"),
    [
        ("GoodReader", 0, []),
        ("FutureReader", 1, ["plugins/file_readers.py:FutureReader requires dativo-plugin-sdk >=2,<3"]),
        (
            "ReprInErrorReader",
            1,
            ["<plugins/file_readers.py:ReprInErrorReader object at", "<class 'plugins/"],
        ),
        (
            "NotAReader",
            1,
            ["plugins/file_readers.py:NotAReader is not a subclass of dativo_plugin_sdk.BaseReader"],
        ),
    ],
)
@pytest.mark.parametrize("json_output", [False, True])
def test_conformance_output_never_shows_a_hidden_module_name(
    tmp_path: Path, class_name: str, code: int, shown: list[str], json_output: bool
) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "file_readers.py").write_text(_FILE_PLUGINS)
    (tmp_path / "good.json").write_text('{"records": 40, "batch_size": 8}')
    ref = f"plugins/file_readers.py:{class_name}"
    run = subprocess.run(
        [sys.executable, "-m", "dativo_testkit._cli", ref, "--config", "good.json"]
        + (["--json"] if json_output else []),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    output = run.stdout + run.stderr
    assert run.returncode == code, output
    assert "dativo_plugin_" not in output.replace("dativo_plugin_sdk", "")
    if json_output:
        report = json.loads(run.stdout)
        assert report["plugin"] == ref
        text = json.dumps(report)
    else:
        assert run.stdout.startswith(f"Dativo conformance of {ref} (reader)")
        text = run.stdout
    for fragment in shown:
        assert fragment in text.replace("\\'", "'").replace('\\"', '"'), text
