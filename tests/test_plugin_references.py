"""``dativo-run`` and ``dativo-conformance`` read plugin references alike: one loader, one failure.

Both commands load plugins through the SDK's shared loader, so for the same bad reference
(a missing file, an unknown class, a ``SyntaxError``, an ``ImportError`` at import) each
gives a ``ConfigurationError`` with the same message, naming the file and line, and exits
with 2; a plugin folder whose plugin imports a module beside it works in both; and the
conformance command accepts built-in names, which the runtime publishes as entry points.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PYPROJECT = ROOT / "packages" / "dativo-runtime" / "pyproject.toml"
HIDDEN_MODULE = re.compile(r"dativo_plugin_[0-9a-f]{12}")

READER = """\
from dativo_plugin_sdk import BaseReader, Column, ConnectionTestResult, DiscoveredStream, DiscoveryResult
{imports}

class Reader(BaseReader):
    __version__ = "1.0.0"

    def check_connection(self):
        return ConnectionTestResult(success=True, message="ok")

    def discover(self):
        schema = [Column("id", "integer", nullable=False), Column("name", "string")]
        return DiscoveryResult(objects=[DiscoveredStream(name="rows", schema=schema)])

    def extract(self, state=None):
        yield [{{"id": i, "name": {name}}} for i in range(3)]
"""

# name -> (files of the plugin folder, reference, the loader's message with {folder} for its path)
BAD_REFERENCES: dict[str, tuple[dict[str, str], str, str]] = {
    "missing file": (
        {},
        "plugin/nope.py:Reader",
        "plugin file '{folder}/nope.py' (from reference 'plugin/nope.py:Reader') does not exist; fix the "
        "path in the reference (a relative path starts at the job file's folder; for dativo-conformance, "
        "at the current folder)",
    ),
    "unknown class": (
        {"reader.py": READER.format(imports="", name="'x'")},
        "plugin/reader.py:Raeder",
        "plugin reference 'plugin/reader.py:Raeder': file '{folder}/reader.py' has no class 'Raeder'; "
        "plugin classes it defines: Reader; check the spelling",
    ),
    "syntax error": (
        {"reader.py": READER.format(imports="", name="'x'") + "def broken(:\n"},
        "plugin/reader.py:Reader",
        "plugin file '{folder}/reader.py' (from reference 'plugin/reader.py:Reader') cannot be imported: "
        "SyntaxError: invalid syntax at {folder}/reader.py, line {line}; fix the syntax error",
    ),
    "ImportError at import": (
        {"reader.py": READER.format(imports="import driver_of_the_plugin_xyz", name="'x'")},
        "plugin/reader.py:Reader",
        "plugin file '{folder}/reader.py' (from reference 'plugin/reader.py:Reader') cannot be imported: "
        "ModuleNotFoundError: No module named 'driver_of_the_plugin_xyz' at {folder}/reader.py, line 2; "
        "install what it imports or fix the code that raised",
    ),
}


def _require_process_backend() -> None:
    from dativo_runtime._sandbox import BubblewrapSandbox

    available, why = BubblewrapSandbox.availability()
    if available:
        return
    message = f"the process sandbox backend is not available here: {why}"
    if os.environ.get("DATIVO_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"DATIVO_REQUIRE_SANDBOX=1 but {message}")
    pytest.skip(message)


@pytest.fixture
def folder() -> Iterator[Path]:
    """A job folder readable by others, as a sandbox's unprivileged user needs (pytest's is not)."""
    path = Path(tempfile.mkdtemp(prefix="dativo-refs-")).resolve()
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _write_plugin(folder: Path, files: dict[str, str]) -> Path:
    plugin = folder / "plugin"
    plugin.mkdir()
    plugin.chmod(0o755)
    for name, text in files.items():
        (plugin / name).write_text(text)
        (plugin / name).chmod(0o644)
    return plugin


def _write_job(folder: Path, ref: str, backend: str) -> Path:
    job = folder / "job.yaml"
    job.write_text(
        f"name: refs\nsource: {{plugin: '{ref}', config: {{}}}}\n"
        "target: {plugin: parquet, config: {path: out}}\nstate: {uri: state}\n"
        f"sandbox: {{backend: {backend}}}\n"
    )
    (folder / "config.json").write_text("{}")
    return job


def _conformance_command() -> list[str]:
    beside = Path(sys.executable).parent / "dativo-conformance"
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-m", "dativo_testkit._cli"]


def _dativo_run(run_cli: Any, folder: Path, *args: str) -> tuple[int, Any]:
    done = run_cli(*args, "--config", str(folder / "job.yaml"), "--json", cwd=folder, timeout=300)
    assert not HIDDEN_MODULE.search(done.stdout + done.stderr)
    return done.returncode, json.loads(done.stdout)


def _conformance(
    folder: Path, ref: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*_conformance_command(), ref, "--config", "config.json"],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
    assert not HIDDEN_MODULE.search(done.stdout + done.stderr)
    return done


@pytest.mark.parametrize("backend", ["none", "process"])
@pytest.mark.parametrize("case", list(BAD_REFERENCES))
def test_a_bad_reference_fails_alike_in_both_tools(
    run_cli: Any, folder: Path, case: str, backend: str
) -> None:
    if backend == "process":
        _require_process_backend()
    files, ref, message = BAD_REFERENCES[case]
    plugin = _write_plugin(folder, files)
    _write_job(folder, ref, backend)
    line = len(files.get("reader.py", "").splitlines())  # A syntax error sits on the last line.
    expected = message.format(folder=plugin, line=line)

    conformance = _conformance(folder, ref)
    assert (conformance.returncode, conformance.stdout) == (2, "")
    assert conformance.stderr == f"dativo-conformance: error: {expected}\n"
    if backend == "process" and case == "ImportError at import":
        # In a sandbox, a missing module also says how to make it available there.
        from dativo_runtime._plugins._ref import PluginRef
        from dativo_runtime._sandbox.host._import_hints import import_hint

        plugin_ref = PluginRef.parse(ref, base_dir=folder)
        expected = f"{expected}. {import_hint('driver_of_the_plugin_xyz', backend, ref=plugin_ref)}"

    code, plan = _dativo_run(run_cli, folder, "validate")
    (step,) = [s for s in plan["steps"] if s["step"] == "source plugin"]
    assert (code, step["ok"], step["error_code"]) == (2, False, "CONFIGURATION_ERROR")
    assert step["message"].endswith(f"source (plugin/{ref.split('/', 1)[1]}): {expected}")

    code, result = _dativo_run(run_cli, folder, "run")
    assert (code, result["exit_code"]) == (2, 2)
    assert result["error"]["error_type"] == "ConfigurationError"
    assert result["error"]["message"].endswith(expected)


@pytest.mark.parametrize("backend", ["none", "process"])
def test_a_plugin_folder_with_a_sibling_module_works_in_both_tools(
    run_cli: Any, folder: Path, backend: str
) -> None:
    if backend == "process":
        _require_process_backend()
    _write_plugin(
        folder,
        {
            "helpers.py": "def name_of(i):\n    return f'row {i}'\n",
            "reader.py": READER.format(imports="from helpers import name_of", name="name_of(i)"),
        },
    )
    _write_job(folder, "plugin/reader.py:Reader", backend)

    conformance = _conformance(folder, "plugin/reader.py:Reader")
    assert conformance.returncode == 0, conformance.stdout + conformance.stderr

    code, result = _dativo_run(run_cli, folder, "run")
    assert (code, result["status"], result["records_written"]) == (0, "succeeded", 3), result


def _published_builtins_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH for a subprocess that sees the runtime's ``dativo.builtins`` entry points.

    They come from the installed runtime's metadata; an editable install made before the
    table existed lacks them until it is refreshed, so the table is then published from a
    stand-in distribution built from the same ``pyproject.toml``.
    """
    from dativo_plugin_sdk._loading import BUILTIN_ENTRY_POINT_GROUP, published_builtins

    table = tomllib.loads(RUNTIME_PYPROJECT.read_text())["project"]["entry-points"][BUILTIN_ENTRY_POINT_GROUP]
    if published_builtins() == table:
        return {}
    site = tmp_path / "site"
    dist = site / "dativo_runtime_builtins_stand_in-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: dativo-runtime-builtins-stand-in\nVersion: 0\n"
    )
    lines = [f"[{BUILTIN_ENTRY_POINT_GROUP}]", *(f"{name} = {target}" for name, target in table.items())]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_the_published_built_ins_are_the_registry() -> None:
    from dativo_plugin_sdk._loading import BUILTIN_ENTRY_POINT_GROUP
    from dativo_runtime.connectors._registry import BUILTIN_CONNECTORS

    table = tomllib.loads(RUNTIME_PYPROJECT.read_text())["project"]["entry-points"][BUILTIN_ENTRY_POINT_GROUP]
    assert table == {name: spec.target for name, spec in BUILTIN_CONNECTORS.items()}


def test_conformance_accepts_a_built_in_name(folder: Path, tmp_path: Path) -> None:
    (folder / "orders.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    (folder / "config.json").write_text(json.dumps({"path": str(folder / "orders.csv")}))
    done = _conformance(folder, "csv", env=_published_builtins_env(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "dativo_runtime.connectors._csv.CsvReader (reader): PASSED" in done.stdout


def test_conformance_accepts_an_entry_point_name_and_a_module_reference(folder: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    package = site / "acme_refs_xyz"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "reader.py").write_text(READER.format(imports="", name="'x'"))
    dist = site / "acme_refs_xyz-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-refs-xyz\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[dativo.plugins]\nacme-refs = acme_refs_xyz.reader:Reader\n")
    (folder / "config.json").write_text("{}")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    for ref in ("acme-refs", "acme_refs_xyz.reader:Reader"):
        done = _conformance(folder, ref, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
