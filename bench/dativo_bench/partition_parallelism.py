"""One job faster: a 4-file CSV job at ``source.parallelism: 2`` against ``parallelism: 1`` (issue 15).

Goal: "a 4-file (or 4-partition) job of 1M rows in total at ``parallelism: 2`` against
``parallelism: 1``, both under the ``process`` sandbox, interleaved: ≥ 1.7x on 2 cores".
Three candidates run interleaved, as fresh ``dativo-run run --config JOB --json`` processes,
over N rows in total split evenly into 4 CSV files (the bench workload, written once per
N and seed into the work folder), each job writing snappy Parquet, under ``sandbox:
{backend: process}`` as the bench's other process-sandbox jobs:

* ``para-p1``: ``source.parallelism`` left at its default, 1;
* ``para-p2``: ``source.parallelism: 2`` (``--parallelism-level`` changes the 2, e.g. to 1 to
  check the plumbing before the key exists);
* ``para-p1-x2``: the control, two ``para-p1`` jobs at once from a shell, each with its own
  output: how far this machine, as loaded as it is, lets two copies of the p=1 job scale.

Speed-up of ``para-p2`` = median time of ``para-p1`` / its median time (both move N rows);
of the control = 2 x median time of ``para-p1`` / its median time (it moves 2 x N rows).
Each job's output is read back and must hold exactly N rows.

The built-in ``csv`` reader (``plugin: csv``) is a trusted built-in that ``dativo-run`` runs in
its own process whatever ``sandbox.backend`` says. To put the same reader under the ``process``
sandbox, as the goal asks, the jobs name its class as a module plugin
(``dativo_runtime.connectors:CsvReader``), which is sandboxed like any plugin, and mount the
input folder read-only (``sandbox.read_only_paths``): each partition then runs in a
bubblewrap worker of its own.
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
from .candidates import PLUGIN_DIR, Candidate, RunContext
from .runner import OK, CandidateResult

__all__ = [
    "FILES",
    "HEADER",
    "PARALLELISM_TARGET",
    "PartitionParallelism",
    "parallelism_candidates",
    "shared_csv_input",
    "write_csv_input",
]

FILES = 4
"""CSV files (the csv reader's partitions) the N rows are split into."""

PARALLELISM_TARGET = 1.7
"""Issue 15: ``parallelism: 2`` at least this many times ``parallelism: 1`` on 2 cores."""

P1, P2, CONTROL = "para-p1", "para-p2", "para-p1-x2"
COPIES = ("a", "b")
BACKEND = "process"
READER = "dativo_runtime.connectors:CsvReader"
"""The built-in csv reader's class, named as a plugin so that it runs in the sandbox."""

HEADER = ["candidate", "status", "s (median)", "min-max s", "rows/s", "speed-up"]
"""The printed table's columns."""


def write_csv_input(folder: Path, n: int, seed: int, batch_size: int) -> Path:
    """Write the workload's ``n`` rows into :data:`FILES` CSV files in ``folder`` (once) and return it.

    Rows are split evenly (the first files take the remainder); the folder is reused when
    it already holds the files, so every run of one N reads the same input.
    """
    done = folder / ".complete"
    if done.exists():
        return folder
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import workload
    finally:
        sys.path.remove(str(PLUGIN_DIR))
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_batches(
        list(workload.arrow_batches(n, seed, batch_size)), schema=workload.arrow_schema()
    )
    start = 0
    for index in range(FILES):
        rows = n // FILES + (1 if index < n % FILES else 0)
        pa_csv.write_csv(table.slice(start, rows), folder / f"part-{index}.csv")
        start += rows
    done.touch()
    return folder


def job_document(*, name: str, input_dir: Path, out_dir: Path, parallelism: int) -> dict[str, Any]:
    """Return the CSV job: the 4 files of ``input_dir`` into snappy Parquet in ``out_dir``.

    ``source.parallelism`` is written only when it is not the default 1, so the p=1 job is
    also a job any runtime without the key accepts.
    """
    source: dict[str, Any] = {"plugin": READER, "config": {"path": f"{input_dir}/"}}
    if parallelism != 1:
        source["parallelism"] = parallelism
    return {
        "tenant": "bench",
        "name": name,
        "mode": "self_hosted",
        "source": source,
        "target": {"plugin": "parquet", "config": {"path": str(out_dir), "compression": "snappy"}},
        "validation": "strict",
        "sandbox": {"backend": BACKEND, "read_only_paths": [str(input_dir)]},
    }


def shared_csv_input(ctx: RunContext) -> Path:
    """Return the folder of the 4 CSV files of ``ctx``'s N and seed, written on first use.

    The work folder holds every run's folder; the input beside them
    (``parallelism-input-N-SEED``) is shared by all runs of one N, in any section.
    """
    return write_csv_input(
        ctx.run_dir.parent / f"parallelism-input-{ctx.n}-{ctx.seed}", ctx.n, ctx.seed, ctx.batch_size
    )


def _job(executable: str | None, parallelism: int) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        if executable is None:
            raise FileNotFoundError("dativo-run is not installed in this environment")
        document = job_document(
            name=f"bench-parallelism-{parallelism}",
            input_dir=shared_csv_input(ctx),
            out_dir=ctx.out_dir,
            parallelism=parallelism,
        )
        job = dativo_job.write_job(ctx.run_dir / "job.yaml", document)
        return dativo_job.dativo_run_command(executable, job)

    return command


def _two_at_once(executable: str | None) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        if executable is None:
            raise FileNotFoundError("dativo-run is not installed in this environment")
        input_dir = shared_csv_input(ctx)
        runs = []
        for copy in COPIES:
            document = job_document(
                name=f"bench-parallelism-1-{copy}",
                input_dir=input_dir,
                out_dir=ctx.out_dir / copy,
                parallelism=1,
            )
            job = dativo_job.write_job(ctx.run_dir / f"job-{copy}.yaml", document)
            runs.append(shlex.join(dativo_job.dativo_run_command(executable, job)))
        # Start both, then fail when either failed.
        script = " ".join(
            f"{run} > {copy}.out & p{i}=$!;" for i, (run, copy) in enumerate(zip(runs, COPIES, strict=True))
        )
        script += " rc=0;" + "".join(f" wait $p{i} || rc=1;" for i in range(len(COPIES))) + " exit $rc"
        return ["bash", "-c", script]

    return command


def parallelism_candidates(dativo_run: str | None, level: int = 2) -> list[Candidate]:
    """Return the candidates of the ``parallelism`` section, in report order.

    Args:
        dativo_run: Path of the ``dativo-run`` executable, ``None`` when not installed.
        level: The ``source.parallelism`` of ``para-p2`` (2; 1 checks the plumbing).
    """
    pattern = dativo_job.DATIVO_OUTPUT_PATTERN
    return [
        Candidate(
            P1,
            f"4-file CSV job, source.parallelism 1 (default), sandbox {BACKEND}",
            _job(dativo_run, 1),
            pattern,
            is_dativo=True,
            backend=BACKEND,
        ),
        Candidate(
            P2,
            f"4-file CSV job, source.parallelism {level}, sandbox {BACKEND}",
            _job(dativo_run, level),
            pattern,
            is_dativo=True,
            backend=BACKEND,
        ),
        Candidate(
            CONTROL,
            "control: two p=1 jobs at once (the machine's own two-process scaling)",
            _two_at_once(dativo_run),
            pattern,
            is_dativo=True,
            backend=BACKEND,
            output_subdirs=COPIES,
        ),
    ]


@dataclass(frozen=True)
class PartitionParallelism:
    """The ``parallelism`` section's results and speed-ups.

    Args:
        n: Rows of the job, over all files.
        level: The ``source.parallelism`` of ``para-p2``.
        results: The three candidates' results, in report order.
    """

    n: int
    level: int
    results: list[CandidateResult]

    def _median_s(self, name: str) -> float | None:
        result = next((r for r in self.results if r.name == name), None)
        return None if result is None else result.median("seconds")

    def speed_up(self, name: str) -> float | None:
        """Median time of ``para-p1`` x the copies ``name`` moves / the median time of ``name``."""
        one, other = self._median_s(P1), self._median_s(name)
        if one is None or other is None or other <= 0:
            return None
        return (2 if name == CONTROL else 1) * one / other

    def why_missing(self) -> str:
        """Why the speed-up of ``para-p2`` is not known."""
        for name in (P1, P2):
            result = next((r for r in self.results if r.name == name), None)
            if result is None:
                return f"{name} not run"
            if result.status != OK:
                return f"{name} {result.status}: {result.reason}"
        return "not measured"

    def target(self) -> tuple[str, str, str, str]:
        """The target line: (target, measured, verdict, note)."""
        target = f"one job at source.parallelism 2 ≥ {PARALLELISM_TARGET:g}x parallelism 1 (issue 15)"
        speed_up = self.speed_up(P2)
        if speed_up is None:
            return target, "—", "N/A", self.why_missing()
        control = self.speed_up(CONTROL)
        note = f"{FILES} CSV files, {self.n:,} rows, sandbox {BACKEND}, p2 at parallelism {self.level}" + (
            "" if control is None else f"; two p=1 jobs at once on this machine: {control:.2f}x"
        )
        if self.level != 2:
            return target, f"{speed_up:.2f}x", "N/A", f"plumbing only: {note}"
        return target, f"{speed_up:.2f}x", "PASS" if speed_up >= PARALLELISM_TARGET else "MISS", note

    def rows(self) -> list[list[str]]:
        """Return the printed table's rows (as text)."""
        rows = []
        for result in self.results:
            seconds = [run.seconds for run in result.runs] if result.status == OK else []
            if not seconds:
                rows.append([result.name, result.status, "—", "—", "—", "—"])
                continue
            speed_up = self.speed_up(result.name) if result.name != P1 else None
            rows.append(
                [
                    result.name,
                    f"{result.status} x{len(seconds)}",
                    f"{statistics.median(seconds):.2f}",
                    f"{min(seconds):.2f}-{max(seconds):.2f}",
                    f"{statistics.median(run.rows_per_s for run in result.runs):,.0f}",
                    "—" if speed_up is None else f"{speed_up:.2f}x",
                ]
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON data."""
        return {
            "n": self.n,
            "files": FILES,
            "level": self.level,
            "backend": BACKEND,
            "speed_up": _round(self.speed_up(P2)),
            "speed_up_two_jobs_control": _round(self.speed_up(CONTROL)),
            "target": PARALLELISM_TARGET,
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


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
