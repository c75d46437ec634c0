"""Several jobs at once: ``dativo-run run --job-dir DIR --parallel 2`` against one job alone.

Issue 6's target: "2 jobs on 2 cores ≥ 1.7x one job". Five candidates run interleaved, as
fresh processes, each over N rows per job (the dict plugin in-process, ``sandbox: none``,
each job writing Parquet to its own folder):

* ``par-one-job``: ``dativo-run run --config JOB --json``, the reference;
* ``par-2-jobs-seq``: ``dativo-run run --job-dir DIR --parallel 1 --json`` (one after
  another, in one process);
* ``par-2-jobs``: ``dativo-run run --job-dir DIR --parallel 2 --json`` (two child processes);
* ``par-floor-one`` and ``par-floor-x2``: the floor (``baselines.py pyarrow-dicts``) once,
  and twice at once from a shell: how far this machine, as loaded as it is, lets two
  processes of this workload scale (the ceiling any runner can reach here).

Speed-up of a candidate moving 2 x N rows = 2 x median time of the one-job (or one-floor)
run / its median time. Each job's output is read back and must hold exactly N rows.
"""

from __future__ import annotations

import shlex
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dativo_job
from .candidates import BENCH_DIR, Candidate, RunContext, dativo_plugin_ref
from .runner import OK, CandidateResult

__all__ = [
    "JOB_FOLDERS",
    "PARALLEL_TARGET",
    "ParallelScaling",
    "parallel_candidates",
]

JOB_FOLDERS = ("a", "b")
"""The two jobs' names and their output folders below the run's ``out`` folder."""

PARALLEL_TARGET = 1.7
"""Issue 6: two jobs on two cores at least this many times one job's throughput."""

ONE_JOB, SEQUENTIAL, PARALLEL = "par-one-job", "par-2-jobs-seq", "par-2-jobs"
FLOOR_ONE, FLOOR_TWO = "par-floor-one", "par-floor-x2"


def _write_jobs(ctx: RunContext, folders: tuple[str, ...]) -> Path:
    job_dir = ctx.run_dir / "jobs"
    job_dir.mkdir()
    for folder in folders:
        document = dativo_job.job_document(
            name=f"bench-parallel-{folder}",
            plugin_ref=dativo_plugin_ref("dict"),
            n=ctx.n,
            seed=ctx.seed,
            batch_size=ctx.batch_size,
            out_dir=ctx.out_dir / folder,
            backend="none",
        )
        dativo_job.write_job(job_dir / f"{folder}.yaml", document)
    return job_dir


def _one_job(executable: str | None) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        if executable is None:
            raise FileNotFoundError("dativo-run is not installed in this environment")
        job_dir = _write_jobs(ctx, JOB_FOLDERS[:1])
        return dativo_job.dativo_run_command(executable, job_dir / f"{JOB_FOLDERS[0]}.yaml")

    return command


def _job_dir(executable: str | None, parallel: int) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        if executable is None:
            raise FileNotFoundError("dativo-run is not installed in this environment")
        return dativo_job.dativo_run_dir_command(executable, _write_jobs(ctx, JOB_FOLDERS), parallel)

    return command


def _floor(copies: int) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        runs = [
            shlex.join(
                [
                    sys.executable,
                    str(BENCH_DIR / "baselines.py"),
                    "pyarrow-dicts",
                    *("--n", str(ctx.n), "--seed", str(ctx.seed), "--batch-size", str(ctx.batch_size)),
                    *("--out", str(ctx.out_dir / folder)),
                ]
            )
            for folder in JOB_FOLDERS[:copies]
        ]
        # Start them all, then fail when any of them failed.
        script = " ".join(
            f"{run} > {folder}.out & p{i}=$!;"
            for i, (run, folder) in enumerate(zip(runs, JOB_FOLDERS[:copies], strict=True))
        )
        script += " rc=0;" + "".join(f" wait $p{i} || rc=1;" for i in range(copies)) + " exit $rc"
        return ["bash", "-c", script]

    return command


def parallel_candidates(dativo_run: str | None) -> list[Candidate]:
    """Return the candidates of the ``parallel`` section, in report order.

    Args:
        dativo_run: Path of the ``dativo-run`` executable, ``None`` when not installed.
    """
    pattern = dativo_job.DATIVO_OUTPUT_PATTERN
    return [
        Candidate(
            ONE_JOB,
            "one job alone: dativo-run run --config JOB (dict plugin, sandbox none)",
            _one_job(dativo_run),
            pattern,
            is_dativo=True,
            backend="none",
            output_subdirs=JOB_FOLDERS[:1],
        ),
        Candidate(
            SEQUENTIAL,
            "2 jobs: dativo-run run --job-dir DIR --parallel 1 (one after another, one process)",
            _job_dir(dativo_run, 1),
            pattern,
            is_dativo=True,
            backend="none",
            output_subdirs=JOB_FOLDERS,
        ),
        Candidate(
            PARALLEL,
            "2 jobs: dativo-run run --job-dir DIR --parallel 2 (a child process per job)",
            _job_dir(dativo_run, 2),
            pattern,
            is_dativo=True,
            backend="none",
            output_subdirs=JOB_FOLDERS,
        ),
        Candidate(
            FLOOR_ONE,
            "control: the floor (pyarrow-dicts) once",
            _floor(1),
            output_subdirs=JOB_FOLDERS[:1],
        ),
        Candidate(
            FLOOR_TWO,
            "control: the floor twice at once (the machine's own two-process scaling)",
            _floor(2),
            output_subdirs=JOB_FOLDERS,
        ),
    ]


@dataclass(frozen=True)
class ParallelScaling:
    """The ``parallel`` section's results and speed-ups.

    Args:
        n: Rows per job.
        results: The five candidates' results, in report order.
    """

    n: int
    results: list[CandidateResult]

    def _median_s(self, name: str) -> float | None:
        for result in self.results:
            if result.name == name:
                return result.median("seconds")
        return None

    def speed_up(self, name: str) -> float | None:
        """2 x the median time of one job (or one floor) / the median time of ``name`` (2 jobs)."""
        reference = FLOOR_ONE if name == FLOOR_TWO else ONE_JOB
        one, two = self._median_s(reference), self._median_s(name)
        if one is None or two is None or two <= 0:
            return None
        return 2 * one / two

    def why_missing(self) -> str:
        """Why the speed-up of ``par-2-jobs`` is not known."""
        for name in (ONE_JOB, PARALLEL):
            result = next((r for r in self.results if r.name == name), None)
            if result is None:
                return f"{name} not run"
            if result.status != OK:
                return f"{name} {result.status}: {result.reason}"
        return "not measured"

    def rows(self) -> list[list[str]]:
        """Return the printed table's rows (as text)."""
        rows = []
        for result in self.results:
            seconds = [run.seconds for run in result.runs] if result.status == OK else []
            if not seconds:
                rows.append([result.name, result.status, "—", "—", "—", "—", "—"])
                continue
            reported = (
                result.median("reported_seconds")
                if all(run.reported_seconds is not None for run in result.runs)
                else None
            )
            speed_up = self.speed_up(result.name) if result.candidate.copies == 2 else None
            rows.append(
                [
                    result.name,
                    f"{result.status} x{len(seconds)}",
                    f"{statistics.median(seconds):.2f}",
                    f"{min(seconds):.2f}-{max(seconds):.2f}",
                    "—" if reported is None else f"{reported:.2f}",
                    f"{statistics.median(run.rows_per_s for run in result.runs):,.0f}",
                    "—" if speed_up is None else f"{speed_up:.2f}x",
                ]
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON data."""
        speed_up = self.speed_up(PARALLEL)
        control = self.speed_up(FLOOR_TWO)
        return {
            "n_per_job": self.n,
            "speed_up": None if speed_up is None else round(speed_up, 3),
            "speed_up_sequential": _round(self.speed_up(SEQUENTIAL)),
            "speed_up_floor_control": _round(control),
            "target": PARALLEL_TARGET,
            "candidates": [
                {
                    "name": r.name,
                    "description": r.candidate.description,
                    "status": r.status,
                    "reason": r.reason,
                    "seconds_median": _round(r.median("seconds")),
                    "runs": [run.to_dict() for run in r.runs],
                }
                for r in self.results
            ],
        }


HEADER = ["candidate", "status", "s (median)", "min-max s", "slowest job s", "rows/s", "speed-up"]
"""The printed table's columns; "slowest job s" is the longest ``duration_s`` the runtime reports."""


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
