"""``--sandbox`` without the runtime, and the arguments a sandboxed run refuses (no sandbox starts here)."""

from __future__ import annotations

import json
import shutil
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from dativo_testkit import MockReader, _sandboxed, run_conformance
from dativo_testkit._cli import main
from dativo_testkit._sandboxed import plugin_reference

ROOT = Path(__file__).resolve().parents[3]
ARROW_READER = ROOT / "examples" / "plugins" / "arrow_reader.py"


def test_without_the_runtime_sandbox_is_exit_2_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_sandboxed, "entry_points", lambda group: [])
    config = tmp_path / "c.json"
    config.write_text("{}")
    code = main([f"{ARROW_READER}:ArrowNumbersReader", "--config", str(config), "--sandbox", "docker"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(
        "dativo-conformance: error: --sandbox docker runs the plugin in a dativo-run sandbox"
    )
    assert "dativo-runtime package provides, and it is not installed" in err
    assert "pip install dativo-runtime" in err
    assert "without --sandbox" in err
    assert "Traceback" not in err


def test_an_unknown_sandbox_is_refused() -> None:
    with pytest.raises(ValueError, match="sandbox must be one of none, process, docker, got 'vm'"):
        run_conformance(MockReader, config={}, sandbox="vm")
    assert main(["x.py:X", "--config", "c.json", "--sandbox", "vm"]) == 2


def test_a_class_is_sandboxed_by_its_reference() -> None:
    assert plugin_reference(MockReader) == "dativo_testkit._mock_reader:MockReader"

    class Local(MockReader):
        pass

    with pytest.raises(ValueError, match="defined in a function"):
        plugin_reference(Local)


def test_sandbox_none_runs_in_process_and_takes_a_reference(tmp_path: Path) -> None:
    report = run_conformance(
        f"{ARROW_READER}:ArrowNumbersReader", config={"count": 120, "batch_size": 30}, sandbox="none"
    )
    assert report.passed, report.to_text()
    assert report.sandbox is None
    assert json.loads(report.to_json())["sandbox"] is None


def _sandbox_usable() -> bool:
    registered = any(ep.name == "sandbox" for ep in entry_points(group="dativo.conformance"))
    return registered and shutil.which("bwrap") is not None


@pytest.mark.skipif(not _sandbox_usable(), reason="needs dativo-runtime and bubblewrap")
def test_the_pytest_plugin_runs_conformance_test_class_in_the_sandbox(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_numbers=f"""
        from dativo_testkit import conformance_test_class, load_plugin_class

        ArrowNumbersReader = load_plugin_class({str(ARROW_READER) + ":ArrowNumbersReader"!r})
        TestNumbers = conformance_test_class(ArrowNumbersReader, config={{"count": 90, "batch_size": 30}}, bad_config={{"count": "x"}})
        """
    )
    result = pytester.runpytest("--strict-markers", "-rs", "--dativo-sandbox", "process")
    result.assert_outcomes(
        passed=16, skipped=7
    )  # 4 mock-API checks, 2 that measure this process, partitions (unsplit)
    result.stdout.fnmatch_lines(["SKIPPED*reader.extract_streams: measured in-process only*"])
