"""HTTP sources (issue 17): the ``http`` reader against a plain httpx loop and a Singer ``RESTStream`` pair.

Goal: "200k records served by a local HTTP server in pages of 1,000, read by the ``http``
reader to Parquet, against a Singer SDK ``RESTStream`` tap into a Singer target and
against a plain ``httpx`` loop writing Parquet (the ceiling for this server): ≥ 0.8x the
ceiling and ≥ 3x the Singer pair".

One server process (``bench/http_api.py serve``) renders the workload's records into JSON
pages once and serves them from memory for the whole section, on every address (so the
``process`` sandbox, whose network cannot reach loopback, reaches it at the host's own
address). Candidates, interleaved, each a fresh process writing snappy Parquet that is read
back (exactly N rows, ids 0..N-1):

* ``http-httpx``: the ceiling, ``bench/http_api.py fetch``: httpx, ``json.loads``, pyarrow;
* ``http-dativo-none``: ``dativo-run run`` of a job with ``plugin: http`` (the declared
  schema, cursor paging), ``sandbox: {backend: none}``;
* ``http-dativo-process``: the same job under the ``process`` sandbox with ``network: true``,
  against the host's non-loopback address (skipped when the sandbox cannot reach it);
* ``http-singer``: ``bench/singer/rest_tap.py`` (a singer-sdk ``RESTStream``) piped into the
  bench's singer-sdk Parquet target (``bench/singer/target.py``).
"""

from __future__ import annotations

import json
import shlex
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dativo_job
from .candidates import BENCH_DIR, Candidate, RunContext
from .runner import OK, CandidateResult

__all__ = ["HEADER", "HTTP_N", "HttpApiServer", "HttpSource", "http_candidates"]

HTTP_N = 200_000
"""Records the server holds (the issue's 200k); ``--quick`` serves 50,000."""

PAGE_SIZE = 1000
CEILING_SHARE = 0.8
SINGER_FACTOR = 3.0
CEILING, NONE, PROCESS, SINGER = "http-httpx", "http-dativo-none", "http-dativo-process", "http-singer"
HEADER = ["candidate", "status", "s (median)", "min-max s", "rows/s", "vs ceiling", "run s (runtime's own)"]


def _host_address() -> str:
    """The host's own non-loopback address (what a sandbox with a network reaches)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class HttpApiServer:
    """The section's API server process (``bench/http_api.py serve``).

    Args:
        n: Records served.
        seed: The workload's seed.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        command = [
            sys.executable,
            str(BENCH_DIR / "http_api.py"),
            "serve",
            "--n",
            str(n),
            "--seed",
            str(seed),
        ]
        command += ["--page-size", str(PAGE_SIZE), "--host", "0.0.0.0"]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("bench/http_api.py serve exited before printing its port")
        self.port = int(json.loads(line)["port"])

    def url(self, host: str = "127.0.0.1") -> str:
        """The server's root URL on ``host``."""
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop the server."""
        self._process.terminate()
        self._process.wait(timeout=10)


def job_document(*, api_url: str, out_dir: Path, backend: str) -> dict[str, Any]:
    """The ``http`` job: every page of ``/records`` into snappy Parquet in ``out_dir``."""
    sys.path.insert(0, str(BENCH_DIR / "plugins"))
    try:
        import workload
    finally:
        sys.path.remove(str(BENCH_DIR / "plugins"))
    schema = [
        {"name": name, "type": kind, "nullable": nullable}
        for name, (kind, nullable) in workload.COLUMN_TYPES.items()
    ]
    sandbox: dict[str, Any] = {"backend": backend}
    if backend != "none":
        sandbox["network"] = True
    return {
        "tenant": "bench",
        "name": f"bench-http-{backend}",
        "mode": "self_hosted",
        "source": {
            "plugin": "http",
            "config": {
                "base_url": api_url,
                "timeout": 60,
                "streams": [
                    {
                        "name": "records",
                        "path": "/records",
                        "params": {"limit": PAGE_SIZE},
                        "primary_key": ["id"],
                        "paginator": {"type": "cursor", "next": "next_cursor", "param": "cursor"},
                        "schema": schema,
                        "batch_size": 10_000,
                    }
                ],
            },
            "stream": "records",
        },
        "target": {"plugin": "parquet", "config": {"path": str(out_dir), "compression": "snappy"}},
        "validation": "strict",
        "sandbox": sandbox,
    }


def http_candidates(server: HttpApiServer, dativo_run: str | None) -> list[Candidate]:
    """The section's four candidates against ``server``."""

    def ceiling(ctx: RunContext) -> list[str]:
        url = f"{server.url()}/records"
        return [
            sys.executable,
            str(BENCH_DIR / "http_api.py"),
            "fetch",
            "--url",
            url,
            "--out",
            str(ctx.out_dir),
        ]

    def dativo(backend: str, host: str) -> Any:
        def command(ctx: RunContext) -> list[str]:
            if dativo_run is None:
                raise FileNotFoundError("dativo-run is not installed in this environment")
            document = job_document(api_url=server.url(host), out_dir=ctx.out_dir, backend=backend)
            job = dativo_job.write_job(ctx.run_dir / "job.yaml", document)
            return dativo_job.dativo_run_command(dativo_run, job)

        return command

    def singer(ctx: RunContext) -> list[str]:
        tap_config = ctx.run_dir / "tap.json"
        target_config = ctx.run_dir / "target.json"
        tap_config.write_text(json.dumps({"api_url": server.url()}))
        target_config.write_text(json.dumps({"path": str(ctx.out_dir)}))
        tap = shlex.join(
            [sys.executable, str(BENCH_DIR / "singer" / "rest_tap.py"), "--config", str(tap_config)]
        )
        target = shlex.join(
            [sys.executable, str(BENCH_DIR / "singer" / "target.py"), "--config", str(target_config)]
        )
        tap_log = shlex.quote(str(ctx.run_dir / "tap.err"))
        return ["bash", "-o", "pipefail", "-c", f"{tap} 2> {tap_log} | {target}"]

    return [
        Candidate(CEILING, "ceiling: httpx loop, json.loads, pyarrow, ParquetWriter", ceiling),
        Candidate(
            NONE,
            "dativo-run, plugin: http, in-process (sandbox none)",
            dativo("none", "127.0.0.1"),
            dativo_job.DATIVO_OUTPUT_PATTERN,
            is_dativo=True,
            backend="none",
        ),
        Candidate(
            PROCESS,
            "dativo-run, plugin: http, process sandbox with network",
            dativo("process", _host_address()),
            dativo_job.DATIVO_OUTPUT_PATTERN,
            is_dativo=True,
            backend="process",
        ),
        Candidate(SINGER, "singer-sdk RESTStream tap | singer-sdk Parquet target", singer),
    ]


@dataclass
class HttpSource:
    """The section's results and its two targets."""

    n: int
    results: list[CandidateResult]

    def _median(self, name: str) -> float | None:
        result = next((r for r in self.results if r.name == name and r.status == OK), None)
        return result.median("seconds") if result is not None else None

    @staticmethod
    def _reported(result: CandidateResult) -> float | None:
        if not result.candidate.is_dativo or result.status != OK:
            return None
        values = [run.reported_seconds for run in result.runs if run.reported_seconds is not None]
        return statistics.median(values) if values else None

    def rows(self) -> list[list[str]]:
        """The printed table's rows."""
        ceiling = self._median(CEILING)
        rows = []
        for result in self.results:
            seconds = result.median("seconds") if result.status == OK else None
            runs = [r.seconds for r in result.runs]
            share = f"{ceiling / seconds:.2f}x" if seconds and ceiling else "-"
            rows.append(
                [
                    result.name,
                    result.status if result.status == OK else f"{result.status}: {result.reason}"[:60],
                    f"{seconds:.2f}" if seconds else "-",
                    f"{min(runs):.2f}-{max(runs):.2f}" if runs else "-",
                    f"{self.n / seconds:,.0f}" if seconds else "-",
                    share,
                    f"{reported:.2f}" if (reported := self._reported(result)) else "-",
                ]
            )
        return rows

    def targets(self) -> list[tuple[str, str, str, str]]:
        """The target lines: ``(target, measured, verdict, note)``, as ``TargetCheck`` takes them."""
        ceiling, dativo, singer = self._median(CEILING), self._median(NONE), self._median(SINGER)
        note = f"{self.n:,} records in pages of {PAGE_SIZE:,}, medians of wall time, sandbox none"
        lines = []
        goal = f"http: the http reader >= {CEILING_SHARE:g}x the httpx loop's throughput (issue 17)"
        if ceiling and dativo:
            share = ceiling / dativo
            lines.append((goal, f"{share:.2f}x", "PASS" if share >= CEILING_SHARE else "MISS", note))
        else:
            lines.append((goal, "-", "N/A", "a candidate did not run"))
        goal = f"http: the http reader >= {SINGER_FACTOR:g}x the Singer RESTStream pair (issue 17)"
        if singer and dativo:
            factor = singer / dativo
            lines.append((goal, f"{factor:.1f}x", "PASS" if factor >= SINGER_FACTOR else "MISS", note))
        else:
            lines.append((goal, "-", "N/A", "a candidate did not run"))
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The section as JSON data."""
        return {
            "n": self.n,
            "page_size": PAGE_SIZE,
            "medians_s": {r.name: (r.median("seconds") if r.status == OK else None) for r in self.results},
            # dativo-run's own duration_s (the run, without the command's start-up), where reported.
            "reported_medians_s": {r.name: self._reported(r) for r in self.results},
            "status": {r.name: r.status for r in self.results},
            "reasons": {r.name: r.reason for r in self.results if r.status != OK},
            "targets": [
                {"target": t, "measured": m, "verdict": v, "note": n} for t, m, v, n in self.targets()
            ],
        }


def measure_http_source(runner: Any, dativo_run: str | None, *, n: int, runs: int, seed: int) -> HttpSource:
    """Start the server, run the candidates' preflight and timed rounds, stop the server."""
    server = HttpApiServer(n, seed)
    try:
        candidates = http_candidates(server, dativo_run)
        results = runner.preflight(candidates, n)  # the server's N is fixed: preflight at full size
        runner.timed_rounds(results, n, runs)
    finally:
        server.close()
    return HttpSource(n, results)
