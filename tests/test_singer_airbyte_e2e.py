"""Singer taps and Airbyte sources through ``dativo-run run``, each in its plugin environment.

The environments are built from ``source.config.package`` by dativo-run itself and handed
to the worker (``DATIVO_PLUGIN_ENV``); the readers themselves are tested in-process in
``packages/dativo-runtime/tests/connectors/``.

Real packages from PyPI (pinned; transitive versions frozen with ``UV_EXCLUDE_NEWER``); the
environment store (``DATIVO_HOME``) is shared by the whole session, so each package is
installed once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunCli, require_backend

pytestmark = pytest.mark.timeout(1800)

FAKER = "airbyte-source-faker==7.2.1"
JSONFILE = "tap-jsonfile==0.1.2"
FAKE_TAPS = Path(__file__).parent.parent / "packages/dativo-runtime/tests/connectors/fake_taps"


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and ".egg-info" not in str(path):
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


# An environment is keyed by its requirement's text, so the fake taps are installed from a folder
# named by their content: a changed fake tap gets a new environment.
FAKE_TAPS_COPY = Path(tempfile.gettempdir()) / f"dativo-fake-taps-{_digest(FAKE_TAPS)}"


@pytest.fixture(scope="session", autouse=True)
def _fake_taps_copy() -> None:
    if not FAKE_TAPS_COPY.exists():
        staging = FAKE_TAPS_COPY.with_name(f"{FAKE_TAPS_COPY.name}.{os.getpid()}")
        shutil.copytree(
            FAKE_TAPS, staging, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        try:
            staging.rename(FAKE_TAPS_COPY)
        except OSError:  # Another session made it meanwhile.
            shutil.rmtree(staging, ignore_errors=True)


FAKER_CONFIG = {"count": 40, "seed": 1, "parallelism": 1, "always_updated": False}
BACKENDS = ["none", "process", "docker"]


@pytest.fixture(scope="session")
def dativo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dativo-home")


@pytest.fixture
def env(dativo_home: Path) -> dict[str, str]:
    return {"DATIVO_HOME": str(dativo_home), "UV_EXCLUDE_NEWER": "2026-12-01T00:00:00Z"}


def job_text(source: dict[str, Any], backend: str, **extra: Any) -> str:
    job = {
        "tenant": "acme",
        "name": "taps",
        "source": source,
        "target": {"plugin": "parquet", "config": {"path": "./out"}},
        "sandbox": {"backend": backend, "memory": "1g", "timeout": 600, **extra.pop("sandbox", {})},
        **extra,
    }
    return json.dumps(job)  # JSON is YAML.


def run(run_cli: RunCli, job: Path, env: dict[str, str]) -> dict[str, Any]:
    done = run_cli("run", "--config", str(job), "--json", env=env, timeout=1500)
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"dativo-run run printed no JSON (exit {done.returncode}): {done.stdout}\n{done.stderr}")
    return result


def parquet_rows(folder: Path) -> list[dict[str, Any]]:
    import duckdb

    files = sorted(str(p) for p in folder.rglob("*.parquet"))
    if not files:
        return []
    with duckdb.connect() as con:
        cursor = con.execute("SELECT * FROM read_parquet(?, union_by_name=true) ORDER BY id", [files])
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def faker_on_its_own(dativo_home: Path, folder: Path) -> list[dict[str, Any]]:
    """The users records airbyte-source-faker emits run by itself, from the environment dativo-run built."""
    from dativo_runtime.connectors._tap_process import LAUNCHER, TAP_ENV

    (environment,) = [
        p.parent for p in dativo_home.rglob("dativo-env.json") if "airbyte-source-faker" in p.read_text()
    ]
    config = folder / "faker.json"
    config.write_text(json.dumps(FAKER_CONFIG))

    def messages(*args: str) -> list[dict[str, Any]]:
        command = [sys.executable, "-I", "-S", "-B", LAUNCHER, str(environment), "source-faker", *args]
        done = subprocess.run(command, capture_output=True, text=True, env=dict(TAP_ENV), check=True)
        return [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"type":')]

    streams = next(
        m["catalog"]["streams"]
        for m in messages("discover", "--config", str(config))
        if m["type"] == "CATALOG"
    )
    users = next(s for s in streams if s["name"] == "users")
    catalog = folder / "catalog.json"
    catalog.write_text(
        json.dumps(
            {"streams": [{"stream": users, "sync_mode": "full_refresh", "destination_sync_mode": "append"}]}
        )
    )
    read = messages("read", "--config", str(config), "--catalog", str(catalog))
    return [m["record"]["data"] for m in read if m["type"] == "RECORD"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_faker_full_refresh_lands_what_the_source_emits(
    *, backend: str, run_cli: RunCli, write_job: Any, env: dict[str, str], dativo_home: Path, tmp_path: Path
) -> None:
    require_backend(backend)
    source = {"plugin": "airbyte", "config": {"package": FAKER, "config": FAKER_CONFIG}, "stream": "users"}
    result = run(run_cli, write_job(job_text(source, backend)), env)
    assert result["exit_code"] == 0, result["error"]
    assert result["records_written"] == 40
    ours = parquet_rows(tmp_path / "out")
    theirs = sorted(faker_on_its_own(dativo_home, tmp_path), key=lambda r: r["id"])
    assert [r["id"] for r in ours] == [r["id"] for r in theirs]
    for mine, expected in zip(ours, theirs, strict=True):
        assert mine["name"] == expected["name"]
        assert mine["email"] == expected["email"]
        assert mine["created_at"].isoformat() == expected["created_at"]
        assert json.loads(mine["address"]) == expected["address"]


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_faker_incremental_second_run_reads_nothing(
    *, backend: str, run_cli: RunCli, write_job: Any, env: dict[str, str]
) -> None:
    require_backend(backend)
    source = {
        "plugin": "airbyte",
        "config": {"package": FAKER, "config": FAKER_CONFIG},
        "stream": "users",
        "incremental": {},
    }
    job = write_job(job_text(source, backend))
    first = run(run_cli, job, env)
    assert first["exit_code"] == 0, first["error"]
    assert first["records_written"] == 40
    second = run(run_cli, job, env)
    assert second["exit_code"] == 0, second["error"]
    assert second["records_written"] == 0
    state = run_cli("state", "show", "--config", str(job), "--json", env=env)
    assert "airbyte_state" in state.stdout


@pytest.mark.parametrize("backend", ["process", "docker"])
def test_jsonfile_incremental_twice_reads_only_new_files(
    *, backend: str, run_cli: RunCli, write_job: Any, env: dict[str, str], tmp_path: Path
) -> None:
    require_backend(backend)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.json").write_text(json.dumps([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]))
    source = {
        "plugin": "singer",
        "config": {"package": JSONFILE, "config": {"paths": [f"{data}/*.json"], "stream_name": "orders"}},
        "stream": "orders",
        "incremental": {},
    }
    job = write_job(job_text(source, backend, sandbox={"read_only_paths": ["./data"]}))
    first = run(run_cli, job, env)
    assert first["exit_code"] == 0, first["error"]
    assert first["records_written"] == 2
    (data / "b.json").write_text(json.dumps([{"id": 3, "name": "c"}]))
    second = run(run_cli, job, env)
    assert second["exit_code"] == 0, second["error"]
    assert second["records_written"] == 1
    assert [r["id"] for r in parquet_rows(tmp_path / "out")] == [1, 2, 3]


def fake_tap(mode: str, **config: Any) -> dict[str, Any]:
    package = f"dativo-fake-taps @ {FAKE_TAPS_COPY.as_uri()}"
    tap = {"package": package, "executable": "tap-fake", "config": {"mode": mode, "count": 5, **config}}
    return {"plugin": "singer", "config": tap, "stream": "orders"}


@pytest.mark.parametrize(
    ("source", "exit_code", "message"),
    [
        (
            {"plugin": "singer", "config": {"package": "dativo-no-such-tap-xyz==1.0"}},
            2,
            "dativo-no-such-tap-xyz",
        ),
        (
            fake_tap("good") | {"config": fake_tap("good")["config"] | {"executable": "tap-nope"}},
            2,
            "tap-nope",
        ),
        (fake_tap("garbage"), 1, "not a JSON message"),
        (fake_tap("record_first"), 1, "before its SCHEMA"),
        (fake_tap("fail"), 1, "cannot reach the database"),
        (fake_tap("network"), 1, "sandbox.network: true"),
    ],
)
def test_bad_taps_fail_clearly_and_commit_nothing(
    *,
    source: dict[str, Any],
    exit_code: int,
    message: str,
    run_cli: RunCli,
    write_job: Any,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    require_backend("process")
    result = run(run_cli, write_job(job_text(source, "process")), env)
    assert result["exit_code"] == exit_code
    assert message in json.dumps(result["error"])
    assert parquet_rows(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("validation", "exit_code", "written"), [("strict", 65, 0), ("warn", 0, 5), ("quarantine", 0, 4)]
)
def test_a_record_that_does_not_match_its_schema_is_judged_by_validation(
    *, validation: str, exit_code: int, written: int, run_cli: RunCli, write_job: Any, env: dict[str, str]
) -> None:
    require_backend("process")
    result = run(run_cli, write_job(job_text(fake_tap("mismatch"), "process", validation=validation)), env)
    assert result["exit_code"] == exit_code
    assert result["records_written"] == written
    if validation == "quarantine":
        assert result["records_quarantined"] == 1


def test_a_run_killed_part_way_then_rerun_commits_every_record_once(
    *, run_cli: RunCli, start_cli: Any, write_job: Any, env: dict[str, str], tmp_path: Path
) -> None:
    """The tap's STATE is saved only with the data it covers: a kill -9 loses and repeats nothing."""
    require_backend("process")

    def job(count: int, delay: float, name: str) -> Path:
        source = fake_tap("good", count=count, delay=delay, state_every=5) | {"incremental": {}}
        source["config"]["batch_size"] = 5
        text = job_text(source, "process")
        document = json.loads(text)
        document["target"]["config"].update({"row_group_size": 5, "target_file_size": 1})
        return write_job(json.dumps(document), name=name)

    first = run(run_cli, job(20, 0, "first.yaml"), env)
    assert first["exit_code"] == 0, first["error"]
    slow = start_cli("run", "--config", str(job(40, 0.1, "slow.yaml")), env=env)
    staging = tmp_path / "out" / "_dativo" / "staging"
    deadline = time.monotonic() + 120
    try:
        while len(list(staging.rglob("*.staged"))) < 2:
            assert slow.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no staged files appeared"
            time.sleep(0.05)
        os.kill(slow.pid, signal.SIGKILL)
    finally:
        slow.wait(timeout=60)
    assert [r["id"] for r in parquet_rows(tmp_path / "out")] == list(range(1, 21))
    rerun = run(run_cli, job(40, 0, "slow.yaml"), env)
    assert rerun["exit_code"] == 0, rerun["error"]
    assert rerun["records_written"] == 40
    assert [r["id"] for r in parquet_rows(tmp_path / "out")] == list(range(1, 61))
