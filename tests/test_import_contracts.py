"""The import contracts (.importlinter) hold, and an inverted import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = {
    "dativo-plugin-sdk": "dativo_plugin_sdk",
    "dativo-testkit": "dativo_testkit",
    "dativo-runtime": "dativo_runtime",
    "dativo-http": "dativo_http",
}


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (nox -s lint and nox -s tests install it)")
    paths = os.pathsep.join(str(tree / package / "src") for package in SOURCES)
    return subprocess.run(
        [lint, "--config", str(tree / ".importlinter"), "--no-cache"],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": paths},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    """A copy of the packages' sources and the contracts."""
    for package, module in SOURCES.items():
        shutil.copytree(
            ROOT / "packages" / package / "src" / module,
            tmp_path / package / "src" / module,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_contracts_hold(source_tree: Path) -> None:
    result = _lint_imports(source_tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        (
            "dativo-runtime/src/dativo_runtime/_worker/_main.py",
            "import dativo_runtime._engine._run",
            "inside a sandbox",
        ),
        (
            "dativo-testkit/src/dativo_testkit/_checks.py",
            "import dativo_runtime",
            "never imports the runtime",
        ),
        ("dativo-plugin-sdk/src/dativo_plugin_sdk/_errors.py", "import pydantic", "The SDK imports nothing"),
        (
            "dativo-http/src/dativo_http/_client.py",
            "import dativo_runtime",
            "dativo-http depends on the SDK",
        ),
        (
            "dativo-runtime/src/dativo_runtime/_storage/_backends.py",
            "import dativo_runtime._engine._run",
            "The runtime's layers",
        ),
        (
            "dativo-runtime/src/dativo_runtime/connectors/_csv.py",
            "import dativo_runtime._sandbox._policy",
            "The runtime's layers",
        ),
    ],
)
def test_an_inverted_import_breaks_a_contract(
    source_tree: Path, module: str, bad_import: str, contract: str
) -> None:
    path = source_tree / module
    path.write_text(path.read_text() + f"\n{bad_import}  # an inverted import\n")
    result = _lint_imports(source_tree)
    assert result.returncode != 0, result.stdout
    assert contract in result.stdout
    assert "BROKEN" in result.stdout
