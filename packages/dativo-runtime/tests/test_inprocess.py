"""The in-process backend: loading, keyword calls, Arrow conversion, state snapshots, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dativo_plugin_sdk import (
    BaseReader,
    BaseWriter,
    ConfigurationError,
    PluginError,
    PluginVersionError,
    State,
    TransientError,
)
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox import choose_sandbox
from dativo_runtime._sandbox._inprocess import InProcessSandbox

PLUGINS = Path(__file__).parent / "data" / "plugins.py"


def ref(name: str) -> PluginRef:
    return PluginRef.parse(f"{PLUGINS}:{name}")


def test_choose_sandbox_gives_in_process_for_trusted_self_hosted_runs() -> None:
    sandbox = choose_sandbox("self_hosted", "none", ref("RecordsReader"))
    assert sandbox.name == "none"
    assert not sandbox.isolated
    assert InProcessSandbox.availability()[0]


def test_reader_batches_arrive_as_arrow_with_state_snapshots() -> None:
    records = [{"id": i} for i in range(5)]
    session = InProcessSandbox().open_reader(ref("RecordsReader"), {"records": records, "batch_size": 2})
    assert session.info.role == "reader"
    assert "incremental" in session.info.capabilities
    batches = list(session.extract(stream="s", state={}, schema=None))
    session.close()
    session.close()
    assert [b.data.num_rows for b in batches] == [2, 2, 1, 0]
    assert all(isinstance(b.data, pa.RecordBatch) for b in batches)
    # A snapshot is taken as each batch arrives, so it never runs ahead of the data.
    assert [b.state for b in batches] == [{}, {"offset": 2}, {"offset": 4}, {"offset": 5}]


def test_resume_from_state() -> None:
    records = [{"id": i} for i in range(5)]
    session = InProcessSandbox().open_reader(ref("RecordsReader"), {"records": records, "batch_size": 2})
    rows = [r for b in session.extract(state={"offset": 4}) for r in b.data.to_pylist()]
    assert rows == [{"id": 4}]


def test_unexpected_exceptions_become_plugin_errors() -> None:
    session = InProcessSandbox().open_reader(ref("CrashingReader"), {})
    iterator = session.extract()
    next(iterator)
    with pytest.raises(PluginError) as caught:
        next(iterator)
    assert caught.value.details["exception_type"] == "RuntimeError"
    assert "boom in the plugin" in caught.value.message
    assert not caught.value.retryable


def test_dativo_errors_pass_through_unchanged(tmp_path: Path) -> None:
    config = {"counter_file": str(tmp_path / "n"), "failures": 5, "retry_after": 2}
    session = InProcessSandbox().open_reader(ref("FlakyReader"), config)
    with pytest.raises(TransientError) as caught:
        list(session.extract())
    assert caught.value.retry_after == 2


@pytest.mark.parametrize(
    ("name", "error", "fragment"),
    [
        ("IncompatibleReader", PluginVersionError, "requires dativo-plugin-sdk >=2.0,<3"),
        ("NotAPlugin", ConfigurationError, "not a subclass"),
        ("Missing", ConfigurationError, "has no class 'Missing'"),
        ("MemoryWriter", ConfigurationError, "cannot be used as a source"),
    ],
)
def test_loading_checks_happen_before_anything_runs(name: str, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        InProcessSandbox().open_reader(ref(name), {})


def test_writer_session_receives_tables_and_commits(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    session = InProcessSandbox().open_writer(ref("MemoryWriter"), {"path": str(out)})
    assert session.info.role == "writer"
    entries = session.write_batch(pa.record_batch({"id": [1, 2]}), 0)
    assert entries[0]["record_count"] == 2
    assert session.commit_files(entries)["record_count"] == 2
    session.abort()
    session.close()
    assert out.read_text().count("\n") == 2


def test_plugins_are_called_with_keyword_arguments(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    class Recorder(BaseReader):
        def extract(self, *, state: State | None = None) -> Any:  # keyword-only on purpose
            seen["state"] = state
            yield [{"a": 1}]

    class RecordingWriter(BaseWriter):
        def write_batch(self, *, records: Any, file_counter: int) -> list[dict[str, Any]]:
            seen["counter"] = file_counter
            return []

    from dativo_runtime._sandbox._inprocess import _InProcessReader, _InProcessWriter

    reader = _InProcessReader(ref("RecordsReader"), Recorder({}))
    assert [b.data.num_rows for b in reader.extract()] == [1, 0]
    assert isinstance(seen["state"], State)
    writer = _InProcessWriter(ref("MemoryWriter"), RecordingWriter({}))
    writer.write_batch(pa.record_batch({"a": [1]}), 7)
    assert seen["counter"] == 7


def test_an_arrow_batch_whose_offsets_lie_is_refused_in_process(tmp_path):
    # Run by a dativo-run subprocess (backend none), never in the test process.
    import json
    import subprocess
    import sys

    plugin = tmp_path / "plugins" / "lying.py"
    plugin.parent.mkdir()
    plugin.write_text(
        "import struct\n"
        "import pyarrow as pa\n"
        "from dativo_plugin_sdk import BaseReader\n\n"
        "class Lying(BaseReader):\n"
        "    def extract(self, state=None):\n"
        "        offsets = pa.py_buffer(struct.pack('<4i', 0, 1 << 20, 3, 6))\n"
        "        column = pa.Array.from_buffers(pa.string(), 3, [None, offsets, pa.py_buffer(b'abcdef')])\n"
        "        yield pa.RecordBatch.from_arrays([column], names=['s'])\n"
    )
    job = tmp_path / "job.yaml"
    job.write_text(
        json.dumps(
            {
                "tenant": "acme",
                "name": "lying",
                "source": {"plugin": f"{plugin}:Lying"},
                "target": {"plugin": "parquet", "config": {"path": "./out"}},
                "sandbox": {"backend": "none"},
            }
        )
    )
    command = [sys.executable, "-c", "from dativo_runtime._cli._app import main; main()", "run", "--config"]
    result = subprocess.run(
        [*command, str(job), "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["error_type"] == "PluginError"
    assert "invalid Arrow batch" in error["message"]
    assert not list((tmp_path / "out").glob("*.parquet"))
