"""A private PostgreSQL server for the ``postgres`` section, loaded with the bench's workload.

It mirrors the fixture of the runtime's postgres tests
(``packages/dativo-runtime/tests/postgres/conftest.py``), which bench code must not import:
``initdb`` and ``pg_ctl`` from Debian's ``/usr/lib/postgresql/<version>/bin`` make a cluster in
a temporary folder, listening on a free port of 127.0.0.1 (password role, scram-sha-256) and
on a unix socket in a folder of its own, readable by anyone, so that a sandboxed reader can be
handed that folder and nothing else (``--auth-local=trust``: the socket needs no password).
``initdb`` refuses to run as root, so under root the cluster belongs to the system user
``dativo-pg`` (created when missing) and the server runs as that user. ``fsync`` is off:
the tables are scratch data rebuilt on every bench run.

The workload is loaded by this module run as a script (``load``) in a child process, because
the harness never imports pyarrow (see ``verification.py``): the Arrow batches of
``plugins/workload.py`` go through ADBC's ``adbc_ingest`` (binary COPY), then ``id`` becomes
the primary key and the table is analysed and vacuumed, so every candidate reads a table in
the same steady state (hint bits set, visibility map built).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "PostgresUnavailableError", "postgres_bin_dir", "running_postgres"]

PG_USER = "dativo"
PG_PASSWORD = "bench-pg-secret-7d2e"
SYSTEM_USER = "dativo-pg"


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL is not installed, or the server could not be started or loaded."""


@dataclass(frozen=True)
class PostgresServer:
    """A running bench server.

    Each loaded size N has a database of its own, ``bench_N``, holding one table,
    ``public.records``: every candidate reads "the" table of its database, and a Singer
    tap, which reads every table of the schemas it is given, sees only that one.

    Args:
        port: Its TCP port on 127.0.0.1.
        socket_dir: The folder of its unix socket.
        user, password: The role the candidates log in as (the password over TCP only).
    """

    port: int
    socket_dir: Path
    user: str = PG_USER
    password: str = PG_PASSWORD
    host: str = "127.0.0.1"

    @staticmethod
    def database(n: int) -> str:
        """The database holding the table of ``n`` rows."""
        return f"bench_{n}"

    def tcp_dsn(self, dbname: str) -> str:
        """A libpq URI over TCP, with the password."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def socket_dsn(self, dbname: str) -> str:
        """A libpq URI over the unix socket (trusted: no password).

        libpq's ``host`` parameter (the socket folder) overrides the URI's ``localhost``,
        which is there for clients that parse the URI themselves (connectorx refuses an
        empty host).
        """
        return f"postgresql://{self.user}@localhost:{self.port}/{dbname}?host={self.socket_dir}"

    def load(self, n: int, *, seed: int, batch_size: int) -> None:
        """Create the database of ``n`` and its ``records`` table of ``n`` workload rows.

        The load runs in a child process (the harness never imports pyarrow).

        Raises:
            PostgresUnavailableError: If the load fails (the ADBC driver is missing...).
        """
        command = [sys.executable, __file__, "load", self.tcp_dsn("postgres"), self.database(n)]
        done = subprocess.run(
            [*command, str(n), str(seed), str(batch_size)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise PostgresUnavailableError(
                f"loading {n:,} rows failed: {lines[-1] if lines else done.returncode}"
            )


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb``, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _system_user() -> str:
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


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a server for the duration of the ``with`` block, then stop it and remove its files.

    Raises:
        PostgresUnavailableError: If PostgreSQL is not installed or does not start.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise PostgresUnavailableError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; apt-get install postgresql)"
        )
    folder = Path(tempfile.mkdtemp(prefix="dativo-bench-pg-"))
    sockets = Path(tempfile.mkdtemp(prefix="dativo-bench-pg-socket-"))
    sockets.chmod(0o755)
    run_as: list[str] = []
    if os.geteuid() == 0:
        user = _system_user()
        run_as = ["runuser", "-u", user, "--"]
        for path in (folder, sockets):
            shutil.chown(path, user)
    (folder / "pw").write_text(PG_PASSWORD + "\n")
    if run_as:
        shutil.chown(folder / "pw", run_as[2])
    data, log = folder / "data", folder / "server.log"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*run_as, *args], check=False, capture_output=True, text=True, cwd=folder, timeout=120
        )

    try:
        made = run(
            str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={folder / 'pw'}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        if made.returncode != 0:
            raise PostgresUnavailableError(f"initdb failed: {made.stderr.strip() or made.stdout.strip()}")
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off -c shared_buffers=256MB"
        )
        started = run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"
        )
        if started.returncode != 0:
            text = log.read_text() if log.exists() else ""
            why = f"{started.stderr.strip()} {text[-500:]}"
            raise PostgresUnavailableError(f"pg_ctl could not start PostgreSQL: {why}")
        try:
            yield PostgresServer(port, sockets)
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(sockets, ignore_errors=True)


def _load(admin_dsn: str, dbname: str, n: int, seed: int, batch_size: int) -> None:
    """Create ``dbname`` with ``n`` workload rows in ``public.records`` through ADBC, keyed and analysed."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
    import pyarrow as pa
    import workload
    from adbc_driver_postgresql import dbapi

    with dbapi.connect(admin_dsn, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {dbname}")
        cursor.execute(f"CREATE DATABASE {dbname}")
    dsn = admin_dsn.rsplit("/", 1)[0] + f"/{dbname}"
    batches = pa.RecordBatchReader.from_batches(
        workload.arrow_schema(), workload.arrow_batches(n, seed, batch_size)
    )
    with dbapi.connect(dsn, autocommit=True) as conn, conn.cursor() as cursor:
        cursor.adbc_ingest("records", batches, mode="create")
        cursor.execute("ALTER TABLE records ADD PRIMARY KEY (id)")
        cursor.execute("VACUUM ANALYZE records")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Load the bench workload into PostgreSQL.")
    parser.add_argument("command", choices=["load"])
    parser.add_argument("admin_dsn")
    parser.add_argument("dbname")
    parser.add_argument("n", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("batch_size", type=int)
    args = parser.parse_args()
    _load(args.admin_dsn, args.dbname, args.n, args.seed, args.batch_size)
