"""The Docker image's worker digest covers every file of the runtime a sandbox worker runs."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import dativo_runtime
from dativo_runtime._worker._digest import worker_digest, worker_files

RUNTIME = Path(dativo_runtime.__file__).parent


def _runtime_imports_of_the_worker() -> set[str]:
    """Every ``dativo_runtime`` module the worker's code imports, at the top or inside functions."""
    names: set[str] = set()
    for path in (RUNTIME / "_worker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dativo_runtime"):
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names if a.name.startswith("dativo_runtime"))
    return names


def test_every_runtime_file_the_worker_loads_is_in_the_digest():
    modules = sorted(_runtime_imports_of_the_worker() | {"dativo_runtime._worker._main"})
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items()"
        " if n.startswith('dativo_runtime') and getattr(m, '__file__', None))))\n"
    )
    loaded = json.loads(
        subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, text=True).stdout
    )
    covered = {str(entry) for _, entry in worker_files()}
    missing = [path for path in loaded if path not in covered]
    assert not missing, f"the worker runs files its image digest does not cover: {missing}"


def test_the_digest_changes_with_any_worker_file(monkeypatch, tmp_path):
    before = worker_digest()
    assert len(before) == 16
    files = worker_files()
    assert any(name == "dativo_runtime/_worker/_protocol.py" for name, _ in files)
    assert any(name.startswith("dativo_plugin_sdk/") for name, _ in files)
    # The same digest twice; another after a worker file changes.
    assert worker_digest() == before
    changed = [(name, tmp_path / "x.py" if name.endswith("_protocol.py") else entry) for name, entry in files]
    (tmp_path / "x.py").write_text("# changed\n")
    monkeypatch.setattr("dativo_runtime._worker._digest.worker_files", lambda: changed)
    assert worker_digest() != before
