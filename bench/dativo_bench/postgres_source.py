"""The ``postgres`` section (issue 16): a PostgreSQL table of N workload rows to Parquet.

The section starts a private server (``postgres_server.py``), loads the workload into
``public.records`` of the database ``bench_N`` (and of ``bench_<preflight N>``), and runs
these candidates interleaved, as fresh processes, each writing snappy Parquet:

* ``pg-dativo-process``: ``dativo-run run``, ``plugin: dativo_runtime.connectors:PostgresReader``
  (the reader as a plugin class, so it runs in the ``process`` sandbox), ``network: false``,
  the server's unix socket folder as its only ``read_only_paths`` entry;
* ``pg-dativo-process-p2``: the same with ``partition_column: id`` and ``source.parallelism: 2``
  (four key ranges, two read at once, each in its own sandbox worker);
* ``pg-dativo-inprocess``: ``plugin: postgres``, the built-in name, which runs in the runtime's
  own process (for information);
* ``pg-connectorx``: connectorx's ``read_sql(..., return_type="arrow")`` and
  ``pyarrow.parquet.write_table``: the Arrow-native ceiling;
* ``pg-connectorx-p2``: the same with ``partition_on="id", partition_num=2``, the control of
  the partitioned read: what this machine (2 cores shared with the server) gives a two-way
  read of the table;
* ``pg-dlt``: dlt's ``sql_table`` source (``backend="pyarrow"``) into its ``filesystem``
  destination as Parquet, like the main section's ``dlt`` candidate;
* ``pg-singer``: ``tap-postgres`` (meltanolabs-tap-postgres) piped into the bench's singer-sdk
  Parquet target (``singer/target.py``, the main section's Singer target), with a catalog that
  selects the one stream (discovered once per size, not timed).

Every candidate but tap-postgres reads over the unix socket; tap-postgres builds its own
SQLAlchemy URL and cannot name a socket folder, so it reads over TCP on 127.0.0.1. Outputs
are read back like every other candidate's (N rows, ids 0..N-1 once each). The goals are
printed as PASS/MISS, never asserted. The connectorx and
dlt candidates are ``postgres_baselines.py``, a script (the harness never imports pyarrow).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dativo_job
from .candidates import BENCH_DIR, Candidate, RunContext
from .postgres_server import PostgresServer, PostgresUnavailableError, running_postgres
from .runner import SKIPPED, CandidateResult, Runner

__all__ = ["HEADER", "PostgresSource", "measure_postgres_source"]

SANDBOXED, PARTITIONED, IN_PROCESS = "pg-dativo-process", "pg-dativo-process-p2", "pg-dativo-inprocess"
CEILING, DLT, SINGER = "pg-connectorx", "pg-dlt", "pg-singer"
CONTROL = "pg-connectorx-p2"

BASELINES = Path(__file__).with_name("postgres_baselines.py")
"""The script that runs the connectorx and dlt candidates."""

GOALS: tuple[tuple[str, str, str, float], ...] = (
    ("postgres reader under process ≥ 0.8x connectorx + pyarrow (the ceiling)", SANDBOXED, CEILING, 0.8),
    ("postgres reader under process ≥ 3x dlt sql_database (pyarrow backend)", SANDBOXED, DLT, 3.0),
    ("postgres reader under process ≥ 20x tap-postgres | Singer target", SANDBOXED, SINGER, 20.0),
    ("parallelism 2 + partition_column ≥ 1.5x the unpartitioned read", PARTITIONED, SANDBOXED, 1.5),
)
"""Issue 16's goals: (text, candidate, reference, minimum ratio of rows/s)."""


def _dativo_job(
    server: PostgresServer, executable: str | None, *, sandboxed: bool, parallelism: int
) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        if executable is None:
            raise FileNotFoundError("dativo-run is not installed in this environment")
        config: dict[str, Any] = {
            "dsn": server.socket_dsn(server.database(ctx.n)),
            "table": "public.records",
        }
        source: dict[str, Any] = {
            "plugin": "dativo_runtime.connectors:PostgresReader" if sandboxed else "postgres",
            "config": config,
        }
        if parallelism > 1:
            config["partition_column"] = "id"
            source["parallelism"] = parallelism
        sandbox: dict[str, Any] = {"backend": "process" if sandboxed else "none"}
        if sandboxed:
            sandbox.update(network=False, read_only_paths=[str(server.socket_dir)])
        document = {
            "tenant": "bench",
            "name": f"bench-postgres-{'process' if sandboxed else 'inprocess'}-p{parallelism}",
            "mode": "self_hosted",
            "source": source,
            "target": {"plugin": "parquet", "config": {"path": str(ctx.out_dir), "compression": "snappy"}},
            "validation": "strict",
            "sandbox": sandbox,
        }
        job = dativo_job.write_job(ctx.run_dir / "job.yaml", document)
        return dativo_job.dativo_run_command(executable, job)

    return command


def _script(server: PostgresServer, kind: str) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        dsn = server.socket_dsn(server.database(ctx.n))
        return [sys.executable, str(BASELINES), kind, dsn, str(ctx.out_dir)]

    return command


def _tap_postgres() -> Path:
    script = Path(sys.executable).parent / "tap-postgres"
    if not script.exists():
        raise FileNotFoundError(f"{script} is missing: pip install meltanolabs-tap-postgres")
    return script


def _singer(server: PostgresServer) -> Callable[[RunContext], list[str]]:
    @functools.cache
    def catalog(n: int, folder: Path) -> Path:
        """Discover the database's streams once per size and select ``public-records``."""
        config = folder / f"tap-{n}.json"
        config.write_text(
            json.dumps(
                {
                    "host": server.host,
                    "port": server.port,
                    "user": server.user,
                    "password": server.password,
                    "database": server.database(n),
                    "filter_schemas": ["public"],
                }
            )
        )
        found = subprocess.run(
            [str(_tap_postgres()), "--config", str(config), "--discover"],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode != 0:
            raise ValueError(f"tap-postgres --discover failed: {found.stderr.strip()[-300:]}")
        document = json.loads(found.stdout)
        streams = [s for s in document["streams"] if s["tap_stream_id"] == "public-records"]
        if len(streams) != 1:
            raise ValueError("tap-postgres did not discover the stream public-records")
        for entry in streams[0]["metadata"]:
            entry["metadata"]["selected"] = True
        document["streams"] = streams
        path = folder / f"catalog-{n}.json"
        path.write_text(json.dumps(document))
        return path

    def command(ctx: RunContext) -> list[str]:
        selected = catalog(ctx.n, ctx.run_dir.parent)
        target_config = ctx.run_dir / "target.json"
        target_config.write_text(json.dumps({"path": str(ctx.out_dir)}))
        tap_config = selected.parent / f"tap-{ctx.n}.json"
        tap = shlex.join([str(_tap_postgres()), "--config", str(tap_config), "--catalog", str(selected)])
        target = shlex.join(
            [sys.executable, str(BENCH_DIR / "singer" / "target.py"), "--config", str(target_config)]
        )
        # pipefail: the pipeline fails when the tap fails, not only when the target does.
        return ["bash", "-o", "pipefail", "-c", f"{tap} 2> tap.err | {target} > target.out 2> target.err"]

    return command


def _missing(*modules: str) -> str | None:
    absent = [name for name in modules if importlib.util.find_spec(name) is None]
    return f"not installed: {', '.join(absent)} (bench/requirements.txt)" if absent else None


def postgres_candidates(server: PostgresServer, dativo_run: str | None) -> list[tuple[Candidate, str | None]]:
    """Return the section's candidates in report order, each with why it cannot run (or ``None``)."""
    dativo_missing = "dativo-run is not installed" if dativo_run is None else None
    dativo_missing = dativo_missing or _missing("adbc_driver_postgresql")
    pattern = dativo_job.DATIVO_OUTPUT_PATTERN

    def dativo(name: str, description: str, *, sandboxed: bool, parallelism: int) -> Candidate:
        return Candidate(
            name,
            description,
            _dativo_job(server, dativo_run, sandboxed=sandboxed, parallelism=parallelism),
            pattern,
            is_dativo=True,
            backend="process" if sandboxed else "none",
        )

    dativo_runs = [
        (SANDBOXED, "dativo-run, postgres reader class, process sandbox, unix socket", True, 1),
        (PARTITIONED, "the same, partition_column id, parallelism 2", True, 2),
        (IN_PROCESS, "dativo-run, plugin: postgres (the runtime's own process)", False, 1),
    ]
    candidates = [
        (dativo(name, text, sandboxed=sandboxed, parallelism=level), dativo_missing)
        for name, text, sandboxed, level in dativo_runs
    ]
    tap_missing = _missing("singer_sdk")
    if not (Path(sys.executable).parent / "tap-postgres").exists():
        tap_missing = "not installed: tap-postgres (meltanolabs-tap-postgres, bench/requirements.txt)"
    return [
        *candidates,
        (
            Candidate(
                CEILING,
                "ceiling: connectorx read_sql -> Arrow, pq.write_table",
                _script(server, "connectorx"),
            ),
            _missing("connectorx", "pyarrow"),
        ),
        (
            Candidate(
                CONTROL,
                "control: the same, partition_on id, partition_num 2",
                _script(server, "connectorx-p2"),
            ),
            _missing("connectorx", "pyarrow"),
        ),
        (
            Candidate(
                DLT,
                "dlt sql_table, backend pyarrow, filesystem destination, parquet",
                _script(server, "dlt"),
                "data/bench/records/*.parquet",
                env={"RUNTIME__DLTHUB_TELEMETRY": "false"},
            ),
            _missing("dlt", "sqlalchemy", "psycopg2"),
        ),
        (
            Candidate(SINGER, "tap-postgres | singer-sdk Parquet target (singer/target.py)", _singer(server)),
            tap_missing,
        ),
    ]


@dataclass
class PostgresSource:
    """The section's results, or why it did not run.

    Args:
        n: Rows in the table.
        results: Every candidate's result, in report order.
        skipped: Why the whole section did not run (no PostgreSQL...), else ``None``.
        load_s: Seconds the load of the N-row table took.
    """

    n: int
    results: list[CandidateResult] = field(default_factory=list)
    skipped: str | None = None
    load_s: float | None = None

    def _rate(self, name: str) -> float | None:
        for result in self.results:
            if result.name == name:
                rates = result.rows_per_s()
                return rates[0] if rates else None
        return None

    def checks(self) -> list[tuple[str, str, str, str]]:
        """Return each goal as ``(target, measured, verdict, note)`` (a report ``TargetCheck``)."""
        checks = []
        for text, name, reference, minimum in GOALS:
            value, base = self._rate(name), self._rate(reference)
            if value is None or base is None:
                why = self.skipped or f"{name} or {reference} did not run"
                checks.append((text, "—", "N/A", why))
                continue
            ratio = value / base
            verdict = "PASS" if ratio >= minimum else "MISS"
            note = f"{value:,.0f} vs {base:,.0f} rows/s"
            control, ceiling = self._rate(CONTROL), self._rate(CEILING)
            if name == PARTITIONED and control and ceiling:
                note += f"; control: connectorx 2 partitions {control / ceiling:.2f}x 1"
            checks.append((text, f"{ratio:.2f}x", verdict, note))
        return checks

    def rows(self) -> list[list[str]]:
        """Return the printed table's rows."""
        ceiling = self._rate(CEILING)
        rows = []
        for result in self.results:
            rates = result.rows_per_s()
            if rates is None:
                rows.append([result.name, result.status, "—", "—", "—", "—", "—", (result.reason or "")[:60]])
                continue
            seconds = [run.seconds for run in result.runs]
            reported = [run.reported_seconds for run in result.runs if run.reported_seconds is not None]
            rows.append(
                [
                    result.name,
                    f"{result.status} x{len(seconds)}",
                    f"{statistics.median(seconds):.2f}",
                    f"{min(seconds):.2f}-{max(seconds):.2f}",
                    f"{rates[0]:,.0f}",
                    f"{rates[0] / ceiling:.2f}" if ceiling else "—",
                    f"{(result.median('peak_rss_bytes') or 0) / 2**20:,.0f}",
                    f"run {statistics.median(reported):.2f} s" if reported else "",
                ]
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON data."""
        return {
            "n": self.n,
            "skipped": self.skipped,
            "load_s": self.load_s,
            "goals": [
                dict(zip(("target", "measured", "verdict", "note"), c, strict=True)) for c in self.checks()
            ],
            "candidates": [
                {
                    "name": r.name,
                    "description": r.candidate.description,
                    "status": r.status,
                    "reason": r.reason,
                    "rows_per_s_median": _rounded(r.median("rows_per_s")),
                    "seconds_median": r.median("seconds"),
                    "runs": [run.to_dict() for run in r.runs],
                    "details": r.details,
                }
                for r in self.results
            ],
        }


HEADER = ["candidate", "status", "s (median)", "min-max s", "rows/s", "x ceiling", "peak RSS MiB", "note"]


def measure_postgres_source(
    runner: Runner, dativo_run: str | None, *, n: int, runs: int, preflight_n: int, log: Callable[[str], None]
) -> PostgresSource:
    """Start the server, load the table, preflight and time the candidates, stop the server."""
    import time

    section = PostgresSource(n)
    try:
        with running_postgres() as server:
            log(f"  PostgreSQL on 127.0.0.1:{server.port}, socket {server.socket_dir}; loading…")
            server.load(preflight_n, seed=runner.seed, batch_size=runner.batch_size)
            started = time.perf_counter()
            server.load(n, seed=runner.seed, batch_size=runner.batch_size)
            section.load_s = round(time.perf_counter() - started, 2)
            log(f"  {n:,} rows loaded in {section.load_s:.1f} s (adbc_ingest, primary key, VACUUM ANALYZE)")
            available, reasons = [], {}
            for candidate, missing in postgres_candidates(server, dativo_run):
                if missing is None:
                    available.append(candidate)
                else:
                    reasons[candidate.name] = missing
                    log(f"  {candidate.name}: SKIPPED - {missing}")
            results = {r.name: r for r in runner.preflight(available, preflight_n)}
            runner.timed_rounds(list(results.values()), n, runs)
            for candidate, _ in postgres_candidates(server, dativo_run):
                result = results.get(candidate.name)
                if result is None:
                    result = CandidateResult(candidate, SKIPPED, reasons[candidate.name])
                section.results.append(result)
    except PostgresUnavailableError as exc:
        section.skipped = str(exc)
        log(f"  section postgres SKIPPED: {exc}")
    return section


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
