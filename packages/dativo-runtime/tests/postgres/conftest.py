"""A real PostgreSQL server for the ``postgres`` reader's tests, started once per session.

Debian's ``postgresql`` package provides ``initdb`` and ``pg_ctl`` under
``/usr/lib/postgresql/<version>/bin``; the fixture makes a cluster in a temporary folder,
listening on a free port of 127.0.0.1 with a password-authenticated role (scram-sha-256),
and removes it after the session. ``initdb`` refuses to run as root, so under root the
cluster belongs to the system user ``dativo-pg`` (created when missing) and the server runs
as that user. Without PostgreSQL, or without the ADBC driver, the tests skip with the reason;
with ``DATIVO_REQUIRE_POSTGRES=1`` (CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_USER = "dativo"
PG_PASSWORD = "pg-test-secret-4f1c"
PG_DATABASE = "shop"
SYSTEM_USER = "dativo-pg"


def unavailable(why: str) -> None:
    """Skip, or fail under ``DATIVO_REQUIRE_POSTGRES=1``."""
    if os.environ.get("DATIVO_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"DATIVO_REQUIRE_POSTGRES=1 but {why}")
    pytest.skip(why)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _system_user() -> str:
    """The unprivileged user that owns the cluster when the tests run as root."""
    with contextlib.suppress(KeyError):
        import pwd

        pwd.getpwnam(SYSTEM_USER)
        return SYSTEM_USER
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        check=False,
        capture_output=True,
        text=True,
    )
    return SYSTEM_USER if made.returncode == 0 else "nobody"


@dataclass(frozen=True)
class PostgresServer:
    """A running test server: where it listens and the role the tests log in as."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    socket_dir: str = ""

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def execute(self, *statements: str) -> None:
        """Run SQL statements, each committed."""
        from adbc_driver_postgresql import dbapi

        with dbapi.connect(self.dsn, autocommit=True) as conn, conn.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def rows(self, query: str) -> list[dict[str, Any]]:
        """The rows of a query, as Python values."""
        from adbc_driver_postgresql import dbapi

        with dbapi.connect(self.dsn, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(query)
            rows: list[dict[str, Any]] = cursor.fetch_arrow_table().to_pylist()
            return rows


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the session, with the database ``shop``."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        unavailable(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)"
        )
    assert bin_dir is not None
    try:
        import adbc_driver_postgresql  # noqa: F401
    except ImportError:
        unavailable("the ADBC PostgreSQL driver is not installed (pip install 'dativo-runtime[postgres]')")
    folder = Path(tempfile.mkdtemp(prefix="dativo-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = _system_user()
        shutil.chown(folder, user)
        run_as = ["runuser", "-u", user, "--"]
    (folder / "pw").write_text(PG_PASSWORD + "\n")
    if run_as:
        shutil.chown(folder / "pw", run_as[2])
    data, log = folder / "data", folder / "server.log"
    port = free_port()
    # The unix socket lives in a folder of its own, readable by anyone (the sandboxed reader's
    # host uid too), so that a test can hand it to a sandbox without the cluster's files.
    sockets = Path(tempfile.mkdtemp(prefix="dativo-pg-socket-"))
    sockets.chmod(0o755)
    if run_as:
        shutil.chown(sockets, run_as[2])

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*run_as, *args], check=False, capture_output=True, text=True, cwd=folder, timeout=120
        )

    made = run(
        str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={folder / 'pw'}",
        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
    )  # fmt: skip
    if made.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)
        unavailable(f"initdb failed: {made.stderr.strip() or made.stdout.strip()}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c full_page_writes=off"
    started = run(
        str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"
    )
    if started.returncode != 0:
        text = log.read_text() if log.exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)
        unavailable(f"pg_ctl could not start PostgreSQL: {started.stderr.strip()} {text[-2000:]}")
    server = PostgresServer("127.0.0.1", port, PG_USER, PG_PASSWORD, "postgres")
    try:
        server.execute(f"CREATE DATABASE {PG_DATABASE}")
        yield PostgresServer("127.0.0.1", port, PG_USER, PG_PASSWORD, PG_DATABASE, str(sockets))
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


@dataclass(frozen=True)
class CliRun:
    """What one ``dativo-run`` process printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def document(self) -> dict[str, Any]:
        import json

        data: dict[str, Any] = json.loads(self.stdout)
        return data


@pytest.fixture
def dativo_run(postgres: PostgresServer) -> Any:
    """Run ``dativo-run ARGS`` in a child process (the real command), the password in the environment."""
    import sys

    def run(*args: str, timeout: float = 300) -> CliRun:
        env = {**os.environ, "PG_TEST_PASSWORD": postgres.password}
        done = subprocess.run(
            [sys.executable, "-m", "dativo_runtime", *args],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        return CliRun(done.returncode, done.stdout, done.stderr)

    return run


def write_job(
    folder: Path, name: str, source_config: str, *, extra: str = "", source_extra: str = ""
) -> Path:
    """A job file reading the postgres source into a parquet folder beside it."""
    job = folder / f"{name}.yaml"
    job.write_text(
        f"name: {name}\n"
        "source:\n"
        "  plugin: postgres\n"
        "  config:\n"
        + "".join(f"    {line}\n" for line in source_config.strip().splitlines())
        + "".join(f"  {line}\n" for line in source_extra.strip().splitlines())
        + "target:\n"
        "  plugin: parquet\n"
        f"  config: {{path: out/{name}}}\n" + extra
    )
    return job


def parquet_rows(files: list[str]) -> list[dict[str, Any]]:
    """Every row of the parquet files a run wrote."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for file in files:
        rows += pq.read_table(file).to_pylist()
    return rows
