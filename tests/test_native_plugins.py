"""Compiled plugins, built here and run the way authors run them.

Two kinds, each built on the fly from the sources in ``examples/native/``:

* the Arrow path (what docs/decision-tree.md recommends): ``squares_stream.c`` produces an
  ``ArrowArrayStream`` and ``squares_reader.py`` hands it to pyarrow through the PyCapsule
  interface; it passes the whole conformance suite and runs under every backend;
* the dativo-ingest ABI (what docs/migrating-from-dativo-ingest.md promises runs unchanged):
  ``ingest_abi/items.rs`` (Rust, standard library only) and ``ingest_abi/items.c``, named
  ``path/libitems.so:create_reader``. They pass conformance, run under every backend, and a
  sandboxed run never loads the library in the host.

Native code runs only in a ``dativo-run``/``dativo-conformance`` subprocess or a sandbox,
never in the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import require_backend

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "examples" / "native"
TEST_SOURCES = Path(__file__).resolve().parent / "native"
BACKENDS = ["none", "process", "docker"]
ITEMS_REF = "plugins/libitems.so:create_reader"


def _tool(name: str) -> str:
    found = shutil.which(name) or (shutil.which(name, path=str(Path.home() / ".cargo" / "bin")))
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def _cc(output: Path, *sources: Path, defines: tuple[str, ...] = ()) -> Path:
    flags = [f"-D{d}" for d in defines]
    subprocess.run(
        [
            _tool("cc"),
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Werror",
            *flags,
            "-o",
            str(output),
            *map(str, sources),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return output


def _rustc(output: Path, source: Path) -> Path:
    subprocess.run(
        [_tool("rustc"), "--edition", "2021", "--crate-type", "cdylib", "-O", "-o", str(output), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return output


def _build_items(folder: Path, language: str, *, marker: bool = False) -> Path:
    """Build the dativo-ingest ABI example into ``folder/libitems.so`` (optionally with the load marker)."""
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / "libitems.so"
    if language == "c":
        sources = [NATIVE / "ingest_abi" / "items.c"]
        if marker:
            sources.append(TEST_SOURCES / "load_marker.c")
        return _cc(library, *sources)
    assert not marker, "the marker is linked into the C build"
    return _rustc(library, NATIVE / "ingest_abi" / "items.rs")


def _make_readable(folder: Path) -> None:
    """Sandboxed plugins run as an unprivileged user: let it read the plugin folder."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o005)
    for parent in folder.parents:
        if parent == Path("/tmp") or parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o001)


def _job(
    folder: Path, name: str, plugin: str, config: dict[str, object], backend: str, **source: object
) -> Path:
    job = folder / f"{name}.yaml"
    extra = "".join(f"\n  {key}: {json.dumps(value)}" for key, value in source.items())
    job.write_text(
        textwrap.dedent(
            f"""\
            tenant: acme
            name: {name}
            source:
              plugin: {plugin}
              config: {json.dumps(config)}"""
        )
        + extra
        + textwrap.dedent(
            f"""
            target:
              plugin: parquet
              config: {{path: ./out-{name}}}
            sandbox:
              backend: {backend}
              memory: 512m
              timeout: 120
            """
        )
    )
    return job


def _conformance(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``dativo-conformance ARGS`` in a subprocess (the library loads there, not in the test)."""
    command = [sys.executable, "-c", "import sys; from dativo_testkit._cli import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATIVO_")}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False, env=env
    )


def _rows(folder: Path) -> list[dict[str, object]]:
    files = sorted(folder.rglob("*.parquet"))
    assert files, f"no Parquet file under {folder}"
    return [row for file in files for row in pq.read_table(file).to_pylist()]


# The Arrow path: examples/native/squares_* -----------------------------------------------


@pytest.fixture
def squares(tmp_path: Path) -> Path:
    """A project whose plugins/ folder holds the example reader and its freshly built library."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    for name in ("squares_reader.py", "squares_stream.c"):
        shutil.copy(NATIVE / name, plugins / name)
    _cc(plugins / "libsquares.so", plugins / "squares_stream.c")
    _make_readable(tmp_path)
    return tmp_path


def test_the_arrow_stream_example_passes_every_conformance_check(squares: Path) -> None:
    (squares / "good.json").write_text(json.dumps({"count": 1000, "batch_size": 300}))
    (squares / "bad.json").write_text(json.dumps({"count": -1}))
    result = _conformance(
        "plugins/squares_reader.py:SquaresReader",
        "--config",
        "good.json",
        "--bad-config",
        "bad.json",
        "--json",
        cwd=squares,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    # Every check passes but the mock HTTP API's, which need an HTTP reader, and the partition
    # check, skipped because the example does not split its stream.
    not_passed = {c["name"]: c for c in report["checks"] if c["status"] != "passed"}
    unsplit = not_passed.pop("reader.partitions")
    assert unsplit["status"] == "skipped"
    assert unsplit["reason"].endswith("does not split its stream")
    assert {name for name in not_passed if not name.startswith("reader.mock_api_")} == set(), result.stdout
    shapes = next(c for c in report["checks"] if c["name"] == "reader.extract_yields_batches")
    assert "(Arrow)" in shapes["reason"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_arrow_stream_example_runs_under_each_backend(squares: Path, backend: str, run_cli) -> None:
    require_backend(backend)
    config = {"count": 100_000, "batch_size": 30_000}
    job = _job(
        squares,
        f"squares-{backend}",
        "plugins/squares_reader.py:SquaresReader",
        config,
        backend,
        incremental={},
    )
    result = run_cli("run", "--config", str(job), "--json", cwd=squares)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["records_written"] == 100_000
    table = pq.read_table(sorted((squares / f"out-squares-{backend}").rglob("*.parquet")))
    assert table.num_rows == 100_000
    assert sorted(table.column("id").to_pylist()) == list(range(100_000))
    assert sum(table.column("square").to_pylist()) == sum(i * i for i in range(100_000))

    # The cursor the Python class keeps: a second run reads only what was added.
    job.write_text(
        job.read_text()
        .replace("count: 100000", "count: 100010")
        .replace('"count": 100000', '"count": 100010')
    )
    again = run_cli("run", "--config", str(job), "--json", cwd=squares)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["records_written"] == 10


# The dativo-ingest ABI: examples/native/ingest_abi/items.{c,rs} ----------------------------


@pytest.mark.parametrize("language", ["c", "rust"])
def test_a_dativo_ingest_library_passes_conformance(tmp_path: Path, language: str) -> None:
    _build_items(tmp_path / "plugins", language)
    (tmp_path / "good.json").write_text(json.dumps({"count": 250, "batch_size": 100}))
    (tmp_path / "bad.json").write_text(json.dumps({"batch_size": 100}))
    result = _conformance(
        ITEMS_REF, "--config", "good.json", "--bad-config", "bad.json", "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert not [c for c in checks.values() if c["status"] == "failed"]
    assert checks["reader.extract_yields_batches"]["reason"].startswith("yielded 3 batches, 250 records")
    assert checks["reader.discover"]["status"] == "passed"
    assert "create_reader() of" in checks["reader.rejects_bad_config"]["reason"]
    assert "returned NULL" in checks["reader.rejects_bad_config"]["reason"]
    # What the library printed when it refused the config reaches the author, in the report too.
    assert "it printed: items: the config needs 'count'" in checks["reader.rejects_bad_config"]["reason"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("language", ["c", "rust"])
def test_a_dativo_ingest_library_runs_unchanged_under_each_backend(
    tmp_path: Path, language: str, backend: str, run_cli
) -> None:
    require_backend(backend)
    _build_items(tmp_path / "plugins", language)
    _make_readable(tmp_path)
    job = _job(tmp_path, "items", ITEMS_REF, {"count": 250, "batch_size": 100}, backend)
    result = run_cli("run", "--config", str(job), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["records_written"] == 250
    rows = sorted(_rows(tmp_path / "out-items"), key=lambda r: r["id"])
    assert rows[7] == {"id": 7, "name": "item 7", "price": 10.5, "active": False}
    assert [r["id"] for r in rows] == list(range(250))
    table = pq.read_table(sorted((tmp_path / "out-items").rglob("*.parquet"))[0])
    assert [str(t) for t in table.schema.types] == ["int64", "string", "double", "bool"]


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_a_sandboxed_run_never_loads_the_library_in_the_host(tmp_path: Path, backend: str, run_cli) -> None:
    require_backend(backend)
    _build_items(tmp_path / "plugins", "c", marker=True)
    _make_readable(tmp_path)
    marker = tmp_path / "loaded-by"
    env = {"DATIVO_TEST_NATIVE_MARKER": str(marker)}

    # The control: in process (backend none) the host loads it, and the marker says so.
    control = _job(tmp_path, "control", ITEMS_REF, {"count": 5}, "none")
    assert run_cli("run", "--config", str(control), cwd=tmp_path, env=env).returncode == 0
    assert marker.read_text().strip(), "the marker library did not record an in-process load"
    marker.unlink()

    job = _job(tmp_path, "items", ITEMS_REF, {"count": 250, "batch_size": 100}, backend)
    for args in (
        ["run", "--config", str(job)],
        ["validate", "--config", str(job)],
        ["discover", "--plugin", ITEMS_REF, "--set", "count=3", "--sandbox", backend],
        ["plugins", "inspect", ITEMS_REF, "--json"],
    ):
        result = run_cli(*args, cwd=tmp_path, env=env)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        assert not marker.exists(), f"dativo-run {args[0]} loaded the native library in the host"
    info = json.loads(run_cli("plugins", "inspect", ITEMS_REF, "--json", cwd=tmp_path).stdout)
    assert (info["kind"], info["role"], info["class_name"]) == ("native", "reader", ITEMS_REF)


@pytest.mark.parametrize("backend", ["none", "process"])
def test_a_library_that_breaks_the_abi_is_a_clear_error(tmp_path: Path, backend: str, run_cli) -> None:
    require_backend(backend)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    _cc(plugins / "libfaults.so", TEST_SOURCES / "faults.c")
    _cc(plugins / "libpartial.so", TEST_SOURCES / "faults.c", defines=("OMIT_FREE_READER",))
    _build_items(plugins, "c")
    _make_readable(tmp_path)
    cases = [
        (
            "plugins/libfaults.so:create_reader",
            {"fault": 1},
            1,
            "extract_batch() of",
            "returned text that is not JSON",
        ),
        (
            "plugins/libfaults.so:create_reader",
            {"fault": 2},
            1,
            "extract_batch() of",
            "not an array of record objects",
        ),
        ("plugins/libpartial.so:create_reader", {}, 2, "libpartial.so", "does not export 'free_reader'"),
        ("plugins/libitems.so:make_reader", {"count": 1}, 2, "libitems.so", "does not export 'make_reader'"),
        (
            "plugins/libitems.so:create_reader",
            {"count": -1},
            2,
            "create_reader() of",
            "returned NULL: the library refused source.config; it printed: items: the config needs 'count'",
        ),
        ("plugins/missing.so:create_reader", {}, 2, "missing.so", "does not exist"),
    ]
    for number, (plugin, config, code, library, what) in enumerate(cases):
        job = _job(tmp_path, f"fault{number}", plugin, config, backend)
        result = run_cli("run", "--config", str(job), "--json", cwd=tmp_path)
        assert result.returncode == code, (plugin, config, result.stdout, result.stderr)
        message = json.loads(result.stdout)["error"]["message"]
        assert library in message, message
        assert what in message, message
        assert plugin in message, message
        assert "Traceback" not in result.stderr
