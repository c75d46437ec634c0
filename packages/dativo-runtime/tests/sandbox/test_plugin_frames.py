"""Where a sandboxed plugin failed: frames read inside the worker, and checked by the host as untrusted."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dativo_plugin_sdk import PluginError
from dativo_plugin_sdk._frames import MAX_FILE_CHARS, MAX_FRAMES
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._inprocess import InProcessSandbox
from dativo_runtime._sandbox.host._worker_messages import bounded_error

PLUGIN = textwrap.dedent(
    """\
    from dativo_plugin_sdk import BaseReader, PluginError

    from helpers import explode

    HOSTILE = [{"file": "x\\x1b[2J\\n" * 100, "line": -5, "function": ["f"], "code": None}] * 1000


    class CrashyReader(BaseReader):
        def discover(self):
            return explode({"id": 1})

        def extract(self, state=None):
            yield []


    class ForgingReader(BaseReader):
        def discover(self):
            raise PluginError("forged", details={"traceback": HOSTILE, "full_traceback": "not frames"})

        def extract(self, state=None):
            yield []
    """
)
HELPERS = "def explode(row):\n    return row['missing']\n"


@pytest.fixture
def plugin_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "plugin"
    folder.mkdir()
    folder.chmod(0o755)
    (folder / "crashy.py").write_text(PLUGIN)
    (folder / "helpers.py").write_text(HELPERS)
    for file in folder.iterdir():
        file.chmod(0o644)
    return folder


def _raised(session: Any) -> PluginError:
    with pytest.raises(PluginError) as caught:
        session.discover()
    return caught.value


def test_the_worker_reads_the_plugins_frames_inside_the_sandbox(backend, plugin_folder):
    ref = PluginRef.parse(f"{plugin_folder / 'crashy.py'}:CrashyReader")
    with backend.open_reader(ref, {}) as session:
        error = _raised(session)
    assert error.details["traceback"] == [
        {"file": "helpers.py", "line": 2, "function": "explode", "code": "return row['missing']"},
        {"file": "crashy.py", "line": 10, "function": "discover", "code": 'return explode({"id": 1})'},
    ]
    internal = [f for f in error.details["full_traceback"] if not f["plugin"]]
    assert internal
    assert all(f["file"].startswith("dativo_runtime/_worker/") for f in internal)


def test_in_process_frames_match_the_workers(plugin_folder):
    ref = PluginRef.parse(f"{plugin_folder / 'crashy.py'}:CrashyReader")
    with InProcessSandbox().open_reader(ref, {}) as session:
        error = _raised(session)
    assert [(f["file"], f["function"]) for f in error.details["traceback"]] == [
        ("helpers.py", "explode"),
        ("crashy.py", "discover"),
    ]


def test_frames_a_worker_forges_reach_the_host_bounded(backend, plugin_folder):
    ref = PluginRef.parse(f"{plugin_folder / 'crashy.py'}:ForgingReader")
    with backend.open_reader(ref, {}) as session:
        error = _raised(session)
    frames = error.details["traceback"]
    assert len(frames) == MAX_FRAMES
    assert frames[0] == {"file": frames[0]["file"], "line": None, "function": "?", "code": ""}
    assert len(frames[0]["file"]) == MAX_FILE_CHARS
    assert frames[0]["file"].startswith("x\\x1b[2J\\nx")
    assert error.details["full_traceback"] == []


ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=100, deadline=None)
@given(
    traceback=st.lists(st.dictionaries(st.sampled_from(["file", "line", "function", "code"]), ANYTHING))
    | ANYTHING,
    full=ANYTHING,
)
def test_bounded_error_leaves_only_well_formed_frames(traceback: Any, full: Any) -> None:
    data = {
        "message": "m",
        "error_code": "PLUGIN_ERROR",
        "details": {"traceback": traceback, "full_traceback": full},
    }
    details = bounded_error(data)["details"]
    for key in ("traceback", "full_traceback"):
        assert isinstance(details[key], list)
        assert len(details[key]) <= MAX_FRAMES
        for frame in details[key]:
            assert set(frame) == {"file", "line", "function", "code"} | (
                {"plugin"} if key == "full_traceback" else set()
            )
            assert all(isinstance(frame[k], str) for k in ("file", "function", "code"))


def test_bounded_error_masks_credentials_at_any_depth() -> None:
    data = {
        "error_type": "PluginError",
        "message": "login failed: password=hunter2222",
        "details": {
            "password": "hunter2222",
            "nested": {"a": "password=hunter2222", "token": "abc123def", "deeper": [{"secret": 42}]},
            "items": ["https://u:hunter2222@db:5432/x"],
        },
    }
    bounded = bounded_error(data)
    assert "hunter2222" not in json.dumps(bounded)
    assert "abc123def" not in json.dumps(bounded)
    assert bounded["details"]["nested"]["deeper"][0]["secret"] == "***"
    assert bounded["message"] == "login failed: password=***"
