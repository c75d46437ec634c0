"""Where a check failed: a failed check carries the plugin's own frames when the plugin raised."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dativo_testkit import CheckResult, CheckStatus, ConformanceReport, load_plugin_class, run_conformance

HELPERS = """\
def lookup(row):
    return pick(row)


def pick(row):
    return row["missing"]
"""

READER = """\
from dativo_plugin_sdk import BaseReader, Column, DiscoveredStream, DiscoveryResult

from helpers import lookup


class CrashyReader(BaseReader):
    __version__ = "1.0.0"

    def discover(self):
        return DiscoveryResult([DiscoveredStream("items", [Column("id", "integer")])])

    def extract(self, state=None):
        yield [{"id": 1}]
        lookup({"id": 2})
"""


@pytest.fixture
def crashy_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> type:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "helpers.py").write_text(HELPERS)
    (folder / "crashy.py").write_text(READER)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "helpers", raising=False)
    return load_plugin_class("plugins/crashy.py:CrashyReader", base_dir=tmp_path)


def test_a_check_failed_by_a_plugin_exception_shows_its_frames(crashy_reader: type) -> None:
    report = run_conformance(crashy_reader, config={}, timeout=30)
    failure = report.check("reader.extract_yields_batches")
    assert failure.failed
    assert list(failure.traceback) == [
        {"file": "helpers.py", "line": 6, "function": "pick", "code": 'return row["missing"]'},
        {"file": "helpers.py", "line": 2, "function": "lookup", "code": "return pick(row)"},
        {"file": "crashy.py", "line": 14, "function": "extract", "code": 'lookup({"id": 2})'},
    ]
    assert report.check("reader.discover").traceback == ()
    text = report.to_text()
    assert (
        "      at helpers.py:6 in pick\n"
        '          return row["missing"]\n'
        "      at helpers.py:2 in lookup\n"
        "          return pick(row)\n"
        "      at crashy.py:14 in extract\n"
        '          lookup({"id": 2})\n'
    ) in text
    checks = {c["name"]: c for c in json.loads(report.to_json())["checks"]}
    assert checks["reader.extract_yields_batches"]["traceback"] == list(failure.traceback)
    assert checks["reader.discover"]["traceback"] == []


@pytest.mark.parametrize(
    ("name", "check", "function"),
    [
        ("CheckConnectionKeyErrorWriter", "writer.check_connection", "check_connection"),
        ("ConstructorFailsWriter", "writer.constructs", "__init__"),
    ],
)
def test_a_writer_check_shows_where_the_writer_raised(
    broken_writers: ModuleType, tmp_path: Path, name: str, check: str, function: str
) -> None:
    cls = getattr(broken_writers, name)
    report = run_conformance(
        cls, config={"folder": str(tmp_path)}, bad_config=cls.BAD_CONFIG, read_back=tmp_path
    )
    frames = report.check(check).traceback
    assert [(f["file"], f["function"]) for f in frames] == [(Path(broken_writers.__file__).name, function)]
    assert "dativo_testkit" not in json.dumps(frames)


def test_the_text_report_puts_frames_under_their_check() -> None:
    frame = {"file": "r.py", "line": 3, "function": "extract", "code": "x = row['a']"}
    report = ConformanceReport(
        plugin="r.py:R",
        kind="reader",
        checks=(
            CheckResult("reader.a", CheckStatus.FAILED, "extract raised KeyError: 'a'", traceback=(frame,)),
        ),
        sdk_version="1.0.0",
        testkit_version="0.1.0",
    )
    assert report.to_text().endswith(
        "FAIL  reader.a  extract raised KeyError: 'a'\n      at r.py:3 in extract\n          x = row['a']\n"
    )


def test_frames_a_sandboxed_plugin_sent_in_its_error_are_reported(crashy_reader: type) -> None:
    from dativo_plugin_sdk import PluginError
    from dativo_testkit._checks import CheckFailedError, PluginSession
    from dativo_testkit._conformance import _plugin_frames

    # What a session that runs the plugin in a sandbox worker raises: the frames come in the details.
    sent = [{"file": "crashy.py", "line": 14, "function": "extract", "code": 'lookup({"id": 2})', "x": 1}]
    try:
        try:
            raise PluginError("plugin raised KeyError in extract(): 'missing'", details={"traceback": sent})
        except PluginError as exc:
            raise CheckFailedError(f"extract raised {exc}") from None
    except CheckFailedError as failure:
        frames = _plugin_frames(failure, PluginSession(crashy_reader, {}, None, 1.0))
    assert frames == ({"file": "crashy.py", "line": 14, "function": "extract", "code": 'lookup({"id": 2})'},)
