"""The ``iceberg`` section (issue 16): N workload rows into an Iceberg table, Dativo against pyiceberg.

Every candidate makes a fresh table ``bench.records`` on a local sql catalog (sqlite) with a
local warehouse in its run folder, as a fresh process, interleaved with the others:

* ``iceberg-pyiceberg``: ``iceberg_baseline.py``, pyiceberg's own ``table.append`` of the
  workload built as one Arrow table (``create_namespace``, ``create_table``, ``append``);
* ``iceberg-dativo-none``: ``dativo-run run`` of the bench's Arrow plugin
  (``plugins/arrow_reader.py``) into the ``iceberg`` writer, ``sandbox: none``: the plugin
  draws the same Arrow batches as the baseline in the runtime's process, so both pay the same
  source cost and the difference is the writer (and the runtime around it);
* ``iceberg-dativo-process``: the same under the ``process`` sandbox (for information; the
  writer always runs in the runtime's own process).

Both write zstd Parquet (pyiceberg's and the writer's default codec). The output check reads
the table's data files back (every run has its own warehouse, and a successful run leaves
only committed files there; ``_dativo/`` is bookkeeping): exactly N rows, ids 0..N-1 once.
Goal: the Dativo run's median time within 15 % of pyiceberg's (printed as PASS/MISS).
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dativo_job
from .candidates import Candidate, RunContext, dativo_plugin_ref
from .runner import SKIPPED, CandidateResult, Runner

__all__ = ["HEADER", "IcebergTarget", "measure_iceberg_target"]

PYICEBERG, DATIVO, DATIVO_PROCESS = "iceberg-pyiceberg", "iceberg-dativo-none", "iceberg-dativo-process"
TOLERANCE = 0.15
"""Issue 16: the Dativo run takes at most 15 % longer than pyiceberg's append."""

DATA_FILES = "warehouse/bench/records/data/*.parquet"
"""The table's data files below a run's output folder (the sql catalog's default layout)."""

GOAL_KEYS = ("target", "measured", "verdict", "note")

BASELINE = Path(__file__).with_name("iceberg_baseline.py")


def _pyiceberg(ctx: RunContext) -> list[str]:
    argv = [sys.executable, str(BASELINE), "--n", str(ctx.n), "--seed", str(ctx.seed)]
    return [*argv, "--batch-size", str(ctx.batch_size), "--out", str(ctx.out_dir)]


def _dativo(executable: str | None, backend: str) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        if executable is None:
            raise FileNotFoundError("dativo-run is not installed in this environment")
        document = dativo_job.job_document(
            name=f"bench-iceberg-{backend}",
            plugin_ref=dativo_plugin_ref("arrow"),
            n=ctx.n,
            seed=ctx.seed,
            batch_size=ctx.batch_size,
            out_dir=ctx.out_dir,
            backend=backend,
        )
        document["target"] = {
            "plugin": "iceberg",
            "config": {"warehouse": str(ctx.out_dir / "warehouse"), "table": "bench.records"},
        }
        job = dativo_job.write_job(ctx.run_dir / "job.yaml", document)
        return dativo_job.dativo_run_command(executable, job)

    return command


def iceberg_candidates(dativo_run: str | None) -> list[tuple[Candidate, str | None]]:
    """Return the section's candidates in report order, each with why it cannot run (or ``None``)."""
    missing = [name for name in ("pyiceberg", "sqlalchemy") if importlib.util.find_spec(name) is None]
    why = f"not installed: {', '.join(missing)} (dativo-runtime[iceberg])" if missing else None
    dativo_why = why or ("dativo-run is not installed" if dativo_run is None else None)
    return [
        (
            Candidate(PYICEBERG, "pyiceberg: one Arrow table, create_table, append", _pyiceberg, DATA_FILES),
            why,
        ),
        (
            Candidate(
                DATIVO,
                "dativo-run, Arrow plugin in-process, iceberg writer",
                _dativo(dativo_run, "none"),
                DATA_FILES,
                is_dativo=True,
                backend="none",
            ),
            dativo_why,
        ),
        (
            Candidate(
                DATIVO_PROCESS,
                "the same, Arrow plugin under the process sandbox",
                _dativo(dativo_run, "process"),
                DATA_FILES,
                is_dativo=True,
                backend="process",
            ),
            dativo_why,
        ),
    ]


@dataclass
class IcebergTarget:
    """The section's results.

    Args:
        n: Rows per run.
        results: Every candidate's result, in report order.
    """

    n: int
    results: list[CandidateResult] = field(default_factory=list)

    def _seconds(self, name: str) -> float | None:
        for result in self.results:
            if result.name == name:
                return result.median("seconds")
        return None

    def checks(self) -> list[tuple[str, str, str, str]]:
        """Return the goal as ``(target, measured, verdict, note)`` (a report ``TargetCheck``)."""
        checks = []
        for name in (DATIVO, DATIVO_PROCESS):
            target = f"{name} within 15 % of pyiceberg's append (time)"
            ours, theirs = self._seconds(name), self._seconds(PYICEBERG)
            if ours is None or theirs is None:
                checks.append((target, "—", "N/A", f"{name} or {PYICEBERG} did not run"))
                continue
            extra = ours / theirs - 1
            verdict = "PASS" if extra <= TOLERANCE else "MISS"
            checks.append((target, f"{extra:+.1%}", verdict, f"{ours:.2f} s vs {theirs:.2f} s"))
        return checks

    def rows(self) -> list[list[str]]:
        """Return the printed table's rows."""
        reference = self._seconds(PYICEBERG)
        rows = []
        for result in self.results:
            if result.status != "OK" or not result.runs:
                rows.append([result.name, result.status, "—", "—", "—", "—", "—", (result.reason or "")[:60]])
                continue
            seconds = [run.seconds for run in result.runs]
            reported = [run.reported_seconds for run in result.runs if run.reported_seconds is not None]
            median = statistics.median(seconds)
            rows.append(
                [
                    result.name,
                    f"{result.status} x{len(seconds)}",
                    f"{median:.2f}",
                    f"{min(seconds):.2f}-{max(seconds):.2f}",
                    f"{self.n / median:,.0f}",
                    f"{median / reference - 1:+.1%}" if reference else "—",
                    f"{(result.median('peak_rss_bytes') or 0) / 2**20:,.0f}",
                    f"run {statistics.median(reported):.2f} s" if reported else "",
                ]
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON data."""
        return {
            "n": self.n,
            "goals": [dict(zip(GOAL_KEYS, check, strict=True)) for check in self.checks()],
            "candidates": [
                {
                    "name": r.name,
                    "description": r.candidate.description,
                    "status": r.status,
                    "reason": r.reason,
                    "seconds_median": r.median("seconds"),
                    "runs": [run.to_dict() for run in r.runs],
                    "details": r.details,
                }
                for r in self.results
            ],
        }


HEADER = ["candidate", "status", "s (median)", "min-max s", "rows/s", "vs pyiceberg", "peak RSS MiB", "note"]


def measure_iceberg_target(
    runner: Runner, dativo_run: str | None, *, n: int, runs: int, preflight_n: int, log: Callable[[str], None]
) -> IcebergTarget:
    """Preflight and time the section's candidates, interleaved."""
    section = IcebergTarget(n)
    available, reasons = [], {}
    for candidate, missing in iceberg_candidates(dativo_run):
        if missing is None:
            available.append(candidate)
        else:
            reasons[candidate.name] = missing
            log(f"  {candidate.name}: SKIPPED - {missing}")
    results = {r.name: r for r in runner.preflight(available, preflight_n)}
    runner.timed_rounds(list(results.values()), n, runs)
    for candidate, _ in iceberg_candidates(dativo_run):
        result = results.get(candidate.name)
        section.results.append(result or CandidateResult(candidate, SKIPPED, reasons[candidate.name]))
    return section
