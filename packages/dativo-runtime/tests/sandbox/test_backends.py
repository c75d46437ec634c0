"""Both real backends behave like the in-process one: same records, states, results and errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from dativo_plugin_sdk import (
    Column,
    ConfigurationError,
    PluginError,
    PluginVersionError,
    RateLimitError,
    SandboxError,
)
from dativo_runtime._sandbox import SandboxLimits
from dativo_runtime._sandbox._inprocess import InProcessSandbox


def _extracted(sandbox, ref, config, **kwargs):
    with sandbox.open_reader(ref, config) as session:
        info = session.info
        check = session.check_connection()
        discovery = session.discover()
        batches = [(b.data.to_pylist(), b.data.schema, b.state) for b in session.extract(**kwargs)]
    return info, check, discovery, batches


def test_arrow_reader_runs_identically_everywhere(backend, example_ref):
    ref = example_ref("arrow_reader.py", "ArrowNumbersReader")
    config = {"count": 25, "batch_size": 10}
    expected = _extracted(InProcessSandbox(), ref, config, stream="numbers", state={"id": 4})
    assert _extracted(backend, ref, config, stream="numbers", state={"id": 4}) == expected
    assert expected[3][-1] == ([], expected[3][-2][1], {"id": 24})  # the final state rides on an empty batch


def test_dict_batches_are_converted_with_the_stream_schema(backend, plugin_ref):
    ref = plugin_ref("hostile.py", "FailingReader")
    schema = pa.schema([pa.field("n", pa.float64())])
    session = backend.open_reader(ref, {"raise": "none"})
    with session:
        batches = list(session.extract(schema=schema))
    assert [b.data.schema for b in batches[:2]] == [schema, schema]
    assert [b.data.to_pylist() for b in batches] == [[{"n": 1.0}], [{"n": 2.0}]]
    assert [b.state for b in batches] == [{}, {"n": 1}]


def test_jsonl_writer_writes_identically_everywhere(backend, example_ref, tmp_path):
    ref = example_ref("jsonl_writer.py", "JsonlWriter")
    schema = [Column("id", "integer", nullable=False), Column("name", "string")]
    batches = [
        pa.record_batch({"id": [1, 2], "name": ["a", None]}),
        pa.record_batch({"id": [3], "name": ["ü"]}),
    ]

    def write(sandbox, folder):
        with sandbox.open_writer(ref, {"path": str(folder)}, schema=schema, output_dir=folder) as session:
            assert session.check_connection().success
            metadata = [m for n, b in enumerate(batches) for m in session.write_batch(b, n)]
            summary = session.commit_files(metadata)
        files = sorted(folder.glob("*.jsonl"))
        return metadata, summary, [f.read_text() for f in files]

    expected = write(InProcessSandbox(), tmp_path / "in-process")
    metadata, summary, contents = write(backend, tmp_path / backend.name)
    assert contents == expected[2]
    assert summary["files_committed"] == expected[1]["files_committed"] == 2
    assert [m["record_count"] for m in metadata] == [2, 1]
    assert all(Path(m["path"]).parent.parent.parent == tmp_path / backend.name for m in metadata)


def test_writer_errors_and_abort(backend, example_ref, tmp_path):
    ref = example_ref("jsonl_writer.py", "JsonlWriter")
    schema = [Column("id", "integer", nullable=False)]
    folder = tmp_path / "out"
    with backend.open_writer(ref, {"path": str(folder)}, schema=schema, output_dir=folder) as session:
        session.write_batch(pa.table({"id": [1]}), 0)
        with pytest.raises(Exception) as raised:
            session.write_batch(pa.table({"id": pa.array([None], pa.int64())}), 1)
        assert raised.value.error_code == "VALIDATION_FAILED"
        session.abort()
    assert list(folder.rglob("*.jsonl")) == []


def test_plugin_errors_arrive_as_the_same_class(backend, plugin_ref):
    ref = plugin_ref("hostile.py", "FailingReader")
    expected = RateLimitError("slow down", retry_after=2, details={"endpoint": "/items", "attempt": 3})
    with backend.open_reader(ref, {"raise": "rate_limit"}) as session:
        batches = session.extract()
        assert next(batches).data.to_pylist() == [{"n": 1}]
        with pytest.raises(RateLimitError) as raised:
            next(batches)
        # Where the plugin raised it comes along (details.traceback, see test_plugin_frames.py).
        frames = raised.value.details.pop("traceback")
        assert [(f["file"], f["function"]) for f in frames] == [("hostile.py", "extract")]
        raised.value.details.pop("full_traceback")
        assert raised.value.to_dict() == expected.to_dict()
        assert raised.value.retry_after == 2
        assert session.check_connection().success  # the worker lives on after a plugin error

    def value_error(sandbox):
        with sandbox.open_reader(ref, {"raise": "value"}) as session, pytest.raises(PluginError) as raised:
            list(session.extract())
        # The runtime's own frames differ (a worker, or this process); the plugin's do not.
        raised.value.details.pop("full_traceback")
        return raised.value.to_dict()

    assert value_error(backend) == value_error(InProcessSandbox())


def test_loading_errors_come_from_the_worker(backend, plugin_ref):
    with pytest.raises(PluginVersionError) as raised:
        backend.open_reader(plugin_ref("import_marker.py", "FutureReader"), {})
    assert raised.value.details["requires_sdk"] == ">=2,<3"
    with pytest.raises(ConfigurationError, match="has no class 'Missing'"):
        backend.open_reader(plugin_ref("import_marker.py", "Missing"), {})
    with pytest.raises(ConfigurationError, match="does not exist"):
        backend.open_reader(plugin_ref("no_such_file.py", "Reader"), {})


def test_plugin_module_is_never_imported_in_the_host(backend, plugin_ref, tmp_path, monkeypatch):
    marker = tmp_path / "imported-in-host"
    monkeypatch.setenv("DATIVO_TEST_IMPORT_MARKER", str(marker))
    ref = plugin_ref("import_marker.py", "MarkerReader")
    modules_before = set(sys.modules)
    with backend.open_reader(ref, {}) as session:
        info = session.info
        records = [r for b in session.extract() for r in b.data.to_pylist()]
    assert not marker.exists()
    new_modules = set(sys.modules) - modules_before
    assert not [m for m in new_modules if getattr(sys.modules[m], "__file__", None) == ref.target]
    assert records[0]["imported_in_pid"] != os.getpid()
    # Version facts come from the worker's handshake.
    assert (info.plugin_version, info.requires_sdk, info.role) == ("2.3.4", ">=1.0,<2", "reader")


def test_import_marker_detects_a_host_import(plugin_ref, tmp_path, monkeypatch):
    # The control for the test above: in-process, the marker does appear.
    marker = tmp_path / "imported-in-host"
    monkeypatch.setenv("DATIVO_TEST_IMPORT_MARKER", str(marker))
    ref = plugin_ref("import_marker.py", "MarkerReader")
    sys.modules.pop("dativo_plugin_" + __import__("hashlib").sha1(ref.target.encode()).hexdigest()[:12], None)
    with InProcessSandbox().open_reader(ref, {}) as session:
        list(session.extract())
    assert marker.exists()


def test_secrets_stay_out_of_argv_environment_and_inspect(backend, plugin_ref):
    secret = "tok-" + os.urandom(8).hex()
    with backend.open_reader(
        plugin_ref("hostile.py", "FailingReader"), {"token": secret, "raise": "none"}
    ) as session:
        assert session.check_connection().message == f"token has {len(secret)} chars"
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                for name in ("cmdline", "environ"):
                    try:
                        data = (entry / name).read_bytes()
                    except OSError:
                        continue
                    assert secret.encode() not in data, f"secret visible in /proc/{entry.name}/{name}"
        if backend.name == "docker":
            details = backend.client.api.inspect_container(session.client.transport.container_id)
            assert secret not in json.dumps(details)
            assert not [e for e in details["Config"]["Env"] if "tok-" in e]
            host = details["HostConfig"]
            assert host["CapDrop"] == ["ALL"]
            assert host["ReadonlyRootfs"] is True
            assert host["NetworkMode"] == "none"
            assert "no-new-privileges:true" in host["SecurityOpt"]
            assert any(opt.startswith("seccomp=") for opt in host["SecurityOpt"])
            assert details["Config"]["User"]
            assert not details["Config"]["User"].startswith("0")
    assert session.client.sandbox_facts["seccomp"] == 2
    assert session.client.sandbox_facts["no_new_privs"] == 1


def test_plugin_output_cannot_corrupt_the_protocol(backend, plugin_ref, caplog):
    caplog.set_level(logging.WARNING, logger="dativo.plugin")
    with backend.open_reader(plugin_ref("hostile.py", "ChattyReader"), {"count": 4}) as session:
        records = [r for b in session.extract() for r in b.data.to_pylist()]
    assert records == [{"n": n, "stdin": ""} for n in range(4)]
    assert [r.getMessage().endswith(f"chatty: batch {n}") for n, r in enumerate(caplog.records)] == [True] * 4


def test_abandoned_extract_is_cancelled_and_the_session_goes_on(backend, example_ref):
    ref = example_ref("arrow_reader.py", "ArrowNumbersReader")
    with backend.open_reader(ref, {"count": 100_000, "batch_size": 10}) as session:
        batches = session.extract()
        first_ids = [next(batches).data.column("id").to_pylist()[0] for _ in range(3)]
        batches.close()  # what a consumer that stops early does (also on garbage collection)
        assert first_ids == [0, 10, 20]
        assert session.check_connection().success
        again = next(iter(session.extract(state={"id": 99_989})))
        assert again.data.column("id").to_pylist() == list(range(99_990, 100_000))


def test_closed_sessions(backend, example_ref):
    session = backend.open_reader(example_ref("arrow_reader.py", "ArrowNumbersReader"), {"count": 1})
    session.close()
    session.close()
    with pytest.raises(SandboxError, match="is closed"):
        session.check_connection()


def test_limits_above_the_operator_ceiling_are_refused(backend, example_ref):
    ref = example_ref("arrow_reader.py", "ArrowNumbersReader")
    backend.ceilings = SandboxLimits(memory_bytes=512 << 20, network=False)
    with pytest.raises(
        ConfigurationError, match=r"1073741824 bytes \(1 GiB\), above the ceiling of 536870912"
    ):
        backend.open_reader(ref, {}, limits=SandboxLimits(memory_bytes=1 << 30))
    with pytest.raises(ConfigurationError, match="network egress"):
        backend.open_reader(ref, {}, limits=SandboxLimits(network=True))


@pytest.mark.parametrize("docker_host", ["unix:///nonexistent/docker.sock", "tcp://127.0.0.1:1"])
def test_an_unreachable_docker_daemon_is_a_reason_not_a_resource_warning(docker_host):
    # A fresh machine with the docker command but no daemon: the backend says why it is not
    # available, and no socket is left for filterwarnings=error to turn into test errors.
    code = (
        "import gc\n"
        "from dativo_runtime._sandbox import DockerSandbox\n"
        "available, why = DockerSandbox.availability()\n"
        "gc.collect()\n"
        "print(available, why)\n"
    )
    environment = {**os.environ, "DOCKER_HOST": docker_host}
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ResourceWarning" not in result.stderr
    assert result.stdout.startswith("False the Docker daemon is unreachable"), result.stdout
