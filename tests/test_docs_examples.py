"""Every complete Python example in the documentation runs, so the docs cannot rot.

The rules a page follows (they are also stated in docs/index.md for authors):

* A block fenced ```python is a complete example and is executed; a fragment is fenced ```py and
  skipped. Blocks inside admonitions or tabs (indented fences) count too.
* A block may carry a file name: ```python title="calendar_reader.py"``` (also ```yaml```, ```json```,
  ```csv``` and ```text``` blocks). Before each example of a page runs, every such block of that
  page is written under its name into a fresh temporary folder, which is the working directory and
  is on ``sys.path``; so an example can import the plugin a previous block defined, or read the job
  file a later block shows. Examples never depend on one another's side effects.
* The ```bash``` blocks of the getting-started page are a walkthrough: their ``dativo-conformance``
  and ``dativo-run`` lines are run, in order, in such a folder (see
  ``test_getting_started_walkthrough``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOCUMENTS = sorted(
    [
        *DOCS.rglob("*.md"),
        ROOT / "README.md",
        *sorted((ROOT / "packages").glob("*/README.md")),
    ]
)
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<ticks>```+)(?P<lang>[\w+-]*)(?P<attrs>[^\n]*)\n(?P<body>.*?)^(?P=indent)(?P=ticks)[ \t]*$",
    re.S | re.M,
)
TITLE = re.compile(r"""title=["']([^"']+)["']""")
FILE_LANGUAGES = {"python", "yaml", "json", "csv", "text"}
KNOWN_LANGUAGES = {
    "",
    "bash",
    "c",
    "console",
    "csv",
    "ini",
    "json",
    "mermaid",
    "py",
    "python",
    "rust",
    "sql",
    "text",
    "toml",
    "yaml",
}
WALKTHROUGH_COMMANDS = ("dativo-conformance", "dativo-run")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    document: Path
    number: int
    language: str
    title: str | None
    code: str

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}#{self.number}"


def _blocks(document: Path) -> list[Block]:
    text = document.read_text(encoding="utf-8")
    found = []
    for number, match in enumerate(FENCE.finditer(text), start=1):
        title = TITLE.search(match.group("attrs"))
        found.append(
            Block(
                document=document,
                number=number,
                language=match.group("lang"),
                title=title.group(1) if title else None,
                code=textwrap.dedent(match.group("body")),
            )
        )
    return found


def _examples() -> list[Block]:
    return [block for document in DOCUMENTS for block in _blocks(document) if block.language == "python"]


def _write_page_files(document: Path, folder: Path) -> None:
    for block in _blocks(document):
        if block.title and block.language in FILE_LANGUAGES:
            target = folder / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")


@pytest.fixture
def page_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A working directory on sys.path; modules imported from it are forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file.startswith(str(tmp_path)) or name.startswith("docs_example_"):
            del sys.modules[name]


def test_documents_have_examples() -> None:
    # Guards the extraction itself: a broken pattern would otherwise skip everything silently.
    assert len(_examples()) >= 15, [b.where for b in _examples()]


@pytest.mark.parametrize("block", _examples(), ids=[b.where for b in _examples()])
def test_example_runs(block: Block, page_folder: Path) -> None:
    _write_page_files(block.document, page_folder)
    name = f"docs_example_{block.document.stem.replace('-', '_')}_{block.number}"
    module = types.ModuleType(name)
    module.__file__ = str(page_folder / f"{name}.py")
    # Registered so that dataclasses, pickling and typing can find the example's own classes.
    sys.modules[name] = module
    exec(compile(block.code, block.where, "exec"), module.__dict__)


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_code_fences_name_a_known_language(document: Path) -> None:
    # A typo such as ```pyhton would make an example silently stop running.
    unknown = [(b.where, b.language) for b in _blocks(document) if b.language not in KNOWN_LANGUAGES]
    assert not unknown, f"unknown fence languages (use python to run, py to skip): {unknown}"


def _console_script(name: str) -> str | None:
    """Return the path of an installed console script whose module exists, else ``None``."""
    found = entry_points(group="console_scripts", name=name)
    if not found:
        return None
    module = next(iter(found)).module
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except ModuleNotFoundError:
        return None
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return shutil.which(name, path=search)


def _walkthrough_commands() -> list[list[str]]:
    commands = []
    for block in _blocks(DOCS / "getting-started.md"):
        if block.language != "bash":
            continue
        for line in block.code.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] in WALKTHROUGH_COMMANDS:
                commands.append(words)
    return commands


@pytest.fixture
def readable_folder(monkeypatch: pytest.MonkeyPatch):
    """Like ``page_folder``, but readable by others, as a sandbox's unprivileged user needs."""
    folder = Path(tempfile.mkdtemp(prefix="dativo-docs-"))
    folder.chmod(0o755)
    monkeypatch.chdir(folder)
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(folder)):
            del sys.modules[name]
    shutil.rmtree(folder, ignore_errors=True)


def _require_a_sandbox() -> None:
    """Skip (fail under DATIVO_REQUIRE_SANDBOX=1) when no sandbox backend works: the page's job needs one."""
    from dativo_runtime._sandbox import BubblewrapSandbox, DockerSandbox

    reasons = []
    for backend in (BubblewrapSandbox, DockerSandbox):
        available, why = backend.availability()
        if available:
            return
        reasons.append(f"{backend.name}: {why}")
    message = (
        "the getting-started job runs its plugin in a sandbox, and none works here ("
        + "; ".join(reasons)
        + ")"
    )
    if os.environ.get("DATIVO_REQUIRE_SANDBOX") == "1":
        pytest.fail(f"DATIVO_REQUIRE_SANDBOX=1 but {message}")
    pytest.skip(message)


def test_getting_started_walkthrough(readable_folder: Path) -> None:
    """The getting-started commands work as written: the plugin passes conformance and its job runs."""
    commands = _walkthrough_commands()
    assert {c[0] for c in commands} == set(WALKTHROUGH_COMMANDS), commands
    executables = {name: _console_script(name) for name in WALKTHROUGH_COMMANDS}
    missing = sorted(name for name, path in executables.items() if path is None)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (or its module does not exist yet)")
    _require_a_sandbox()
    page_folder = readable_folder
    _write_page_files(DOCS / "getting-started.md", page_folder)
    for written in page_folder.rglob("*"):
        written.chmod(0o755 if written.is_dir() else 0o644)
    for command in commands:
        result = subprocess.run(
            [executables[command[0]], *command[1:]],
            cwd=page_folder,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, (
            f"{shlex.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )

    import pyarrow.dataset as ds
    import yaml

    spec = importlib.util.spec_from_file_location(
        "calendar_reader", page_folder / "plugins" / "calendar_reader.py"
    )
    assert spec is not None
    assert spec.loader is not None
    calendar_reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(calendar_reader)  # written by _write_page_files
    CalendarReader = calendar_reader.CalendarReader

    job = yaml.safe_load((page_folder / "job.yaml").read_text(encoding="utf-8"))
    expected = sum(len(batch) for batch in CalendarReader(job["source"]["config"]).extract())
    table = ds.dataset(page_folder / job["target"]["config"]["path"], format="parquet").to_table()
    # Run twice, as the page says: every day exactly once.
    assert table.num_rows == expected
    assert len(set(table.column("date").to_pylist())) == expected
