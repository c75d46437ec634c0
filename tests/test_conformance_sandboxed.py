"""``dativo-conformance --sandbox``: the checks run against the plugin living in a sandbox worker.

A plugin that passes in-process passes in each sandbox too; a plugin that imports what only
the host can see passes in-process and fails in the sandbox, with the missing module named
and the way to make it available to that backend, and ``dativo-run`` says the same. A
backend that does not work here, or a testkit without the runtime, is a clear exit 2. No
worker outlives a sandboxed run, even after a check timed out.

Every plugin here runs in a ``dativo-conformance`` or ``dativo-run`` subprocess, or in a
sandbox worker: never in the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from dativo_testkit import run_conformance
from tests.conftest import require_backend

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "plugins"
BACKENDS = ("process", "docker")


def _conformance(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dativo_testkit._cli", *args]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATIVO_")}
    environment.update(env or {})
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=cwd, env=environment
    )


def _json_file(folder: Path, name: str, data: Any) -> str:
    path = folder / name
    path.write_text(json.dumps(data))
    return str(path)


def _host_only_reader(folder: Path) -> tuple[Path, Path]:
    """A copy of the Arrow example reader importing a module only the host's PYTHONPATH holds."""
    library = folder / "host_only"
    library.mkdir()
    (library / "host_only_helpers.py").write_text("def double(x):\n    return 2 * x\n")
    plugins = folder / "plugins"
    plugins.mkdir()
    source = (EXAMPLES / "arrow_reader.py").read_text()
    source = source.replace(
        "from dativo_plugin_sdk import (", "import host_only_helpers\nfrom dativo_plugin_sdk import (", 1
    )
    (plugins / "numbers.py").write_text(source)
    return plugins / "numbers.py", library


def _testkit_writer(folder: Path) -> Path:
    """A copy of the JSON-lines example writer that calls the testkit at run time (the mistake)."""
    source = (EXAMPLES / "jsonl_writer.py").read_text()
    marker = "    def _validate(self, records: list[dict[str, Any]]) -> None:\n        if not self.schema:\n            return\n"
    assert marker in source
    source = source.replace(
        marker,
        marker
        + "        from dativo_testkit import find_schema_violations\n\n"
        + "        find_schema_violations(records, self.schema)\n",
    )
    plugins = folder / "writers"
    plugins.mkdir()
    (plugins / "jsonl_target.py").write_text(source)
    return plugins / "jsonl_target.py"


@pytest.mark.parametrize("backend", BACKENDS)
def test_example_reader_and_writer_pass_in_process_and_in_the_sandbox(backend: str, tmp_path: Path) -> None:
    require_backend(backend)
    reader = f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader"
    reader_args = [
        "--config",
        _json_file(tmp_path, "reader.json", {"count": 250, "batch_size": 40}),
        "--bad-config",
        _json_file(tmp_path, "reader-bad.json", {"count": "many"}),
        "--json",
    ]
    writer = f"{EXAMPLES / 'jsonl_writer.py'}:JsonlWriter"
    for where in ("none", backend):
        out = tmp_path / f"out-{where}"
        writer_args = [
            "--config",
            _json_file(tmp_path, "writer.json", {"path": str(out)}),
            "--bad-config",
            _json_file(tmp_path, "writer-bad.json", {}),
            "--output-folder",
            str(out),
            "--hypothesis-examples",
            "5",
            "--json",
        ]
        for ref, args in ((reader, reader_args), (writer, writer_args)):
            result = _conformance(ref, *args, "--sandbox", where, cwd=tmp_path)
            assert result.returncode == 0, result.stdout + result.stderr
            report = json.loads(result.stdout)
            assert report["passed"] is True
            assert report["sandbox"] == (None if where == "none" else backend)
            skipped = {
                c["name"]: c["reason"]
                for c in report["checks"]
                if c["status"] == "skipped" and not c["name"].startswith("reader.mock_api_")  # not HTTP
            }
            # The example reader does not split its stream, in process or in a sandbox.
            unsplit = skipped.pop("reader.partitions", None)
            assert (unsplit is not None) == (report["kind"] == "reader")
            if where == "none":
                assert skipped == {}, skipped
                assert unsplit is None or unsplit.endswith("does not split its stream")
            else:
                # Only the checks that measure the test process are skipped, saying why.
                assert set(skipped) <= {
                    "reader.extract_streams",
                    f"{report['kind']}.close_releases_resources",
                }
                assert all("measured in-process only" in reason for reason in skipped.values())
                assert unsplit is None or unsplit.endswith("does not split its stream")
        assert list(out.glob("part-*.jsonl")), "the writer's round trips were read back on the host"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_host_only_import_passes_in_process_and_fails_in_the_sandbox_naming_the_fix(
    backend: str, tmp_path: Path
) -> None:
    require_backend(backend)
    plugin, library = _host_only_reader(tmp_path)
    args = [f"{plugin}:ArrowNumbersReader", "--config", _json_file(tmp_path, "c.json", {"count": 50})]
    env = {"PYTHONPATH": str(library)}
    assert _conformance(*args, cwd=tmp_path, env=env).returncode == 0
    result = _conformance(*args, "--sandbox", backend, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    message = result.stderr
    assert "Traceback" not in message
    assert "No module named 'host_only_helpers'" in message
    assert f"Module 'host_only_helpers' is not available in the {backend} sandbox" in message
    assert "vendor it: copy host_only_helpers into the plugin's own folder" in message
    # Either backend: declare it beside the plugin, so that it lands in the plugin's environment.
    assert f"to {plugin.parent / 'requirements.txt'}" in message
    assert "build-image" not in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_writer_using_the_testkit_at_run_time_fails_its_checks_in_the_sandbox(
    backend: str, tmp_path: Path
) -> None:
    require_backend(backend)
    plugin = _testkit_writer(tmp_path)
    out = tmp_path / "out"
    args = [
        f"{plugin}:JsonlWriter",
        "--config",
        _json_file(tmp_path, "c.json", {"path": str(out)}),
        "--output-folder",
        str(out),
        "--hypothesis-examples",
        "3",
        "--json",
    ]
    assert _conformance(*args, cwd=tmp_path).returncode == 0  # the testkit is right here
    result = _conformance(*args, "--sandbox", backend, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    round_trip = next(c for c in report["checks"] if c["name"] == "writer.round_trip")
    assert round_trip["status"] == "failed"
    reason = round_trip["reason"]
    # Reported as in-process (the plugin's own exception type), with the module and the fix.
    assert reason.startswith("write_batch raised ModuleNotFoundError: No module named 'dativo_testkit'")
    assert "dativo_testkit is a test-time package, which a plugin must not depend on at run time" in reason
    assert "Copy the code you use into the plugin's own folder" in reason


@pytest.mark.parametrize("backend", BACKENDS)
def test_dativo_run_names_the_missing_module_and_the_fix(backend: str, tmp_path: Path) -> None:
    require_backend(backend)
    plugin, library = _host_only_reader(tmp_path)
    job = tmp_path / "job.yaml"
    job.write_text(
        textwrap.dedent(
            f"""\
            tenant: acme
            name: host_only
            source:
              plugin: {plugin.relative_to(tmp_path)}:ArrowNumbersReader
              config: {{count: 50}}
            target:
              plugin: parquet
              config: {{path: ./out}}
            sandbox:
              backend: {backend}
            """
        )
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATIVO_")}
    environment["PYTHONPATH"] = str(library)
    command = [sys.executable, "-c", "from dativo_runtime._cli._app import main; main()", "run"]
    result = subprocess.run(
        [*command, "--config", str(job), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=environment,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["details"]["missing_module"] == "host_only_helpers"
    assert f"Module 'host_only_helpers' is not available in the {backend} sandbox" in error["message"]
    assert error["details"]["hint"] in error["message"]


def test_errors_the_plugin_raises_read_the_same_in_the_sandbox(tmp_path: Path) -> None:
    require_backend("process")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text(
        textwrap.dedent(
            """\
            from dativo_plugin_sdk import (
                BaseReader, Column, ConnectionTestResult, DiscoveredStream, DiscoveryResult
            )


            class BrokenReader(BaseReader):
                __version__ = "1.0.0"

                def check_connection(self):
                    return ConnectionTestResult(True, "ok")

                def discover(self):
                    return DiscoveryResult([DiscoveredStream("items", (Column("id", "integer"),))])

                def extract(self, state=None):
                    yield [{"id": 1}]
                    raise KeyError("missing")
            """
        )
    )
    args = [f"{plugins / 'broken.py'}:BrokenReader", "--config", _json_file(tmp_path, "c.json", {}), "--json"]
    reasons = {}
    for where in ("none", "process"):
        result = _conformance(*args, "--sandbox", where, cwd=tmp_path)
        assert result.returncode == 1, result.stdout + result.stderr
        checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        reasons[where] = checks["reader.extract_yields_batches"]["reason"]
    assert reasons["none"] == "extract raised KeyError: 'missing' (not a DativoError) after 1 batches"
    assert reasons["process"] == reasons["none"]


@pytest.mark.parametrize(
    ("backend", "env", "why"),
    [
        ("process", {"PATH": "/nonexistent"}, "bwrap is not installed"),
        ("docker", {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}, "docker"),
    ],
)
def test_a_backend_that_does_not_work_here_is_exit_2_saying_why(
    backend: str, env: dict[str, str], why: str, tmp_path: Path
) -> None:
    ref = f"{EXAMPLES / 'arrow_reader.py'}:ArrowNumbersReader"
    result = _conformance(
        ref, "--config", _json_file(tmp_path, "c.json", {}), "--sandbox", backend, cwd=tmp_path, env=env
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    message = result.stderr
    assert message.startswith("dativo-conformance: error: ")
    assert f"sandbox backend {backend!r}" in message
    assert "does not work on this machine" in message
    assert why in message.lower()
    assert "dativo-run sandbox doctor" in message
    assert "Traceback" not in message


def _leftovers(marker: str, backend: str) -> list[str]:
    """Workers (processes, containers) still around for a plugin folder holding ``marker``."""
    if backend == "docker":
        import docker

        client = docker.from_env()
        return [
            c.name
            for c in client.containers.list(all=True)
            if any(marker in str(m.get("Source", "")) for m in c.attrs.get("Mounts", []))
        ]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_worker_outlives_a_sandboxed_run_even_after_a_check_timed_out(
    backend: str, tmp_path: Path
) -> None:
    require_backend(backend)
    plugins = tmp_path / "stuck_plugins"
    plugins.mkdir()
    (plugins / "stuck.py").write_text(
        textwrap.dedent(
            """\
            import time

            from dativo_plugin_sdk import (
                BaseReader, Column, ConnectionTestResult, DiscoveredStream, DiscoveryResult
            )


            class StuckReader(BaseReader):
                __version__ = "1.0.0"

                def check_connection(self):
                    return ConnectionTestResult(True, "ok")

                def discover(self):
                    return DiscoveryResult([DiscoveredStream("items", (Column("id", "integer"),))])

                def extract(self, state=None):
                    time.sleep(3600)
                    yield [{"id": 1}]
            """
        )
    )
    # The plugin runs only in sandbox workers; this process drives them.
    report = run_conformance(f"{plugins / 'stuck.py'}:StuckReader", config={}, timeout=5, sandbox=backend)
    extract = report.check("reader.extract_yields_batches")
    assert extract.failed, report.to_text()
    assert extract.reason.startswith("timed out after 5s"), report.to_text()
    assert report.check("reader.discover").passed
    deadline = time.monotonic() + 15
    while (left := _leftovers(str(plugins), backend)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []


def test_the_runtime_registers_its_sandboxes_for_the_testkit() -> None:
    from importlib.metadata import entry_points

    from dativo_runtime._sandbox._conformance import sandboxed_plugin_class

    (entry,) = [ep for ep in entry_points(group="dativo.conformance") if ep.name == "sandbox"]
    assert entry.load() is sandboxed_plugin_class


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_partitioned_reader_passes_the_partition_check_in_the_sandbox(backend: str, tmp_path: Path) -> None:
    """The sandboxed class forwards partitions() and each partition to its worker, as a run does."""
    require_backend(backend)
    ref = f"{ROOT / 'packages/dativo-runtime/tests/data/partitioned_plugins.py'}:RangesReader"
    config = _json_file(tmp_path, "ranges.json", {"ranges": 3, "size": 20})
    result = _conformance(ref, "--config", config, "--sandbox", backend, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    (check,) = [c for c in report["checks"] if c["name"] == "reader.partitions"]
    assert check["status"] == "passed", check
    assert report["sandbox"] == backend
