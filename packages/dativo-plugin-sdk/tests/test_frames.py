"""Where a plugin failed: its own frames picked out of a traceback, and frames from a worker checked."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import ConfigurationError, State
from dativo_plugin_sdk._frames import (
    FRAME_KEYS,
    MAX_CODE_CHARS,
    MAX_FILE_CHARS,
    MAX_FRAMES,
    MAX_FUNCTION_CHARS,
    PluginScope,
    check_frames,
    exception_chain,
    format_frames,
    frames_of,
    with_frames,
)
from dativo_plugin_sdk._loading import PluginRef, load_plugin_class

HELPERS = """\
def lookup(row):
    return pick(row)


def pick(row):
    return row["missing"]
"""

READER = """\
from dativo_plugin_sdk import BaseReader, State

from helpers import lookup


class Reader(BaseReader):
    def extract(self, state=None):
        yield [{"id": 1}]
        lookup({"id": 2})

    def discover(self):
        State().set("cursor", object())  # the SDK raises, called from here
"""


def _line(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def crashy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PluginRef, type[Any], Path]:
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "helpers.py").write_text(HELPERS)
    (folder / "reader.py").write_text(READER)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "helpers", raising=False)
    ref = PluginRef.parse("plugin/reader.py:Reader", base_dir=tmp_path)
    return ref, load_plugin_class(ref), folder


def _raised(call: Any) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("nothing raised")


def test_a_file_plugin_frames_are_relative_to_its_folder_innermost_first(crashy) -> None:
    ref, cls, folder = crashy
    exc = _raised(lambda: list(cls(config={}).extract()))
    plugin, every = frames_of(exc, PluginScope.of_ref(ref, cls))
    assert plugin == [
        {"file": "helpers.py", "line": 6, "function": "pick", "code": 'return row["missing"]'},
        {"file": "helpers.py", "line": 2, "function": "lookup", "code": "return pick(row)"},
        {
            "file": "reader.py",
            "line": _line(folder / "reader.py", 'lookup({"id": 2})'),
            "function": "extract",
            "code": 'lookup({"id": 2})',
        },
    ]
    assert [f for f in every if f["plugin"]] == [{**f, "plugin": True} for f in plugin]
    # The test's own frame (the caller) is there, but not as the plugin's.
    assert any(not f["plugin"] and f["function"] == "<lambda>" for f in every)


def test_sdk_frames_are_not_the_plugins(crashy) -> None:
    ref, cls, _ = crashy
    exc = _raised(lambda: cls(config={}).discover())
    plugin, every = frames_of(exc, PluginScope.of_ref(ref, cls))
    assert [f["function"] for f in plugin] == ["discover"]
    sdk = [f for f in every if f["file"].startswith("dativo_plugin_sdk/")]
    assert sdk
    assert not any(f["plugin"] for f in sdk)


def test_library_and_stdlib_frames_inside_the_plugin_folder_are_not_the_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A virtual environment beside the plugin: its site-packages lies inside the plugin's folder.
    site = tmp_path / "plugin" / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "somelib.py").write_text("def explode():\n    raise ValueError('inside a library')\n")
    (tmp_path / "plugin" / "reader.py").write_text("import somelib\n\ndef run():\n    somelib.explode()\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(tmp_path / "plugin"))
    monkeypatch.delitem(sys.modules, "somelib", raising=False)
    monkeypatch.delitem(sys.modules, "reader", raising=False)
    module = importlib.import_module("reader")
    exc = _raised(module.run)
    plugin, every = frames_of(exc, PluginScope.of_path(tmp_path / "plugin"))
    assert [(f["file"], f["function"]) for f in plugin] == [("reader.py", "run")]
    assert every[0]["file"] == "somelib.py"
    assert every[0]["plugin"] is False


def test_an_installed_package_frames_start_with_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site" / "acme_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "reader.py").write_text("import json\n\ndef run():\n    return json.loads('{')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in ("acme_plugin", "acme_plugin.reader"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("acme_plugin.reader")
    exc = _raised(module.run)
    ref = PluginRef.parse("acme_plugin.reader:Reader")
    plugin, every = frames_of(exc, PluginScope.of_ref(ref))
    assert plugin == [{"file": os.path.join("acme_plugin", "reader.py"), "line": 4, "function": "run",
                       "code": "return json.loads('{')"}]  # fmt: skip
    assert every[0]["file"] == os.path.join("json", "decoder.py")  # relative to the stdlib's folder
    assert every[0]["plugin"] is False


def test_with_frames_reads_the_cause_and_keeps_what_is_there(crashy) -> None:
    ref, cls, _ = crashy
    scope = PluginScope.of_ref(ref, cls)
    inner = _raised(lambda: list(cls(config={}).extract()))

    def wrap() -> None:
        raise ConfigurationError("wrapped") from inner

    outer = _raised(wrap)
    assert exception_chain(outer) == [outer, inner]
    details = with_frames({"ref": "x"}, outer, scope)
    assert details["ref"] == "x"
    assert [f["function"] for f in details["traceback"]] == ["pick", "lookup", "extract"]
    assert with_frames({"traceback": "mine"}, outer, scope) == {"traceback": "mine"}


def test_plugin_only_adds_nothing_without_a_plugin_frame(crashy) -> None:
    ref, cls, _ = crashy
    exc = _raised(lambda: State().set("cursor", object()))
    assert with_frames({}, exc, PluginScope.of_ref(ref, cls), plugin_only=True) == {}
    details = with_frames({}, exc, PluginScope.of_ref(ref, cls))
    assert details["traceback"] == []
    assert details["full_traceback"]


def test_a_deep_recursion_keeps_the_innermost_frames(crashy) -> None:
    _, _cls, folder = crashy
    (folder / "deep.py").write_text("def down(n):\n    return down(n + 1)\n")
    module = importlib.import_module("deep")
    exc = _raised(lambda: module.down(0))
    plugin, every = frames_of(exc, PluginScope.of_path(folder))
    assert len(plugin) == MAX_FRAMES
    assert len(every) == MAX_FRAMES
    assert plugin[0] == {"file": "deep.py", "line": 2, "function": "down", "code": "return down(n + 1)"}


def test_format_frames_reads_like_a_compact_traceback() -> None:
    frames = [
        {"file": "helpers.py", "line": 6, "function": "pick", "code": "return row['x']"},
        {
            "file": "dativo_runtime/_worker/_main.py",
            "line": 9,
            "function": "handle",
            "code": "",
            "plugin": False,
        },
    ]
    assert format_frames(frames) == [
        "  at helpers.py:6 in pick",
        "      return row['x']",
        "  at dativo_runtime/_worker/_main.py:9 in handle [internal]",
    ]


JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=600),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
FRAME_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "file": JSON_LIKE | st.text(max_size=2000),
        "line": JSON_LIKE,
        "function": JSON_LIKE | st.text(max_size=2000),
        "code": JSON_LIKE | st.text(max_size=2000),
        "plugin": JSON_LIKE,
        "extra": JSON_LIKE,
    },
)


@settings(max_examples=200, deadline=None)
@given(value=st.lists(FRAME_LIKE | JSON_LIKE, max_size=300) | JSON_LIKE, flagged=st.booleans())
def test_frames_from_a_worker_come_out_bounded_and_of_one_shape(value: Any, flagged: bool) -> None:
    frames = check_frames(value, flagged=flagged)
    assert len(frames) <= MAX_FRAMES
    for frame in frames:
        assert set(frame) == set(FRAME_KEYS) | ({"plugin"} if flagged else set())
        assert isinstance(frame["file"], str)
        assert len(frame["file"]) <= MAX_FILE_CHARS
        assert isinstance(frame["function"], str)
        assert len(frame["function"]) <= MAX_FUNCTION_CHARS
        assert isinstance(frame["code"], str)
        assert len(frame["code"]) <= MAX_CODE_CHARS
        assert all(text.isprintable() for text in (frame["file"], frame["function"], frame["code"]))
        line = frame["line"]
        assert line is None or (type(line) is int and 0 <= line <= 10**9)
        assert not flagged or type(frame["plugin"]) is bool
    for line in format_frames(frames):
        assert "\n" not in line
        assert "\x1b" not in line


def test_hostile_frames_are_escaped_and_cut() -> None:
    hostile = [{"file": "a\nb\x1b[2J" + "x" * 5000, "line": True, "function": 7, "code": "\u202eevil"}] * 500
    frames = check_frames(hostile)
    assert len(frames) == MAX_FRAMES
    assert frames[0]["file"].startswith("a\\nb\\x1b[2J")
    assert len(frames[0]["file"]) == MAX_FILE_CHARS
    assert frames[0]["line"] is None
    assert frames[0]["function"] == "?"
    assert frames[0]["code"] == "\\u202eevil"


def test_a_builtin_connector_has_no_plugin_frames() -> None:
    ref = PluginRef.parse("csv", builtins={"csv": "json.decoder:JSONDecoder"})
    assert PluginScope.of_ref(ref) is None
    exc = _raised(lambda: importlib.import_module("json").loads("{"))
    assert with_frames({}, exc, PluginScope.of_ref(ref), plugin_only=True) == {}


def test_a_native_library_has_no_python_frames_of_its_own(tmp_path: Path) -> None:
    from dativo_plugin_sdk._native import NativeLibraryReader

    ref = PluginRef.parse(str(tmp_path / "libitems.so") + ":create_reader")
    assert PluginScope.of_ref(ref, NativeLibraryReader) is None  # its reader class is the SDK's
