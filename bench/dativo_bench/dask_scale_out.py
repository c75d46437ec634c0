"""Many machines: the 4-partition job on a 2-worker Dask cluster against one worker (issue 15).

Goal: "the 4-partition job on a 2-worker cluster against one worker, interleaved: ≥ 1.6x".
The job is the ``parallelism`` section's (see partition_parallelism.py): N rows in total in
4 CSV files, ``dativo_runtime.connectors:CsvReader`` named as a plugin under ``sandbox:
{backend: process}`` with the input folder in ``sandbox.read_only_paths``, snappy Parquet
out, here with ``source.parallelism: 4`` so that each partition (file) is a Dask task.

Three clusters of real ``dask scheduler`` and ``dask worker --nworkers 1 --nthreads 1``
processes on 127.0.0.1 (dask_cluster.py) are started once, before the preflight, and kept
for all the section's runs, so cluster start-up is never timed: ``two`` (2 workers),
``one`` and ``one-b`` (1 worker each). Three candidates run interleaved, each a fresh
``dativo-run run --config JOB --executor dask --scheduler ADDRESS --json``:

* ``dask-1w``: the job on ``one``, the reference;
* ``dask-2w``: the job on ``two``;
* ``dask-1w-x2``: the control, two ``dask-1w`` jobs at once from a shell, one on ``one``
  and one on ``one-b`` (on one worker they would only queue), each with its own output:
  how far this machine, as loaded as it is, lets two copies of the one-worker job scale.

Speed-up of ``dask-2w`` = median time of ``dask-1w`` / its median time (both move N rows);
of the control = 2 x median time of ``dask-1w`` / its median time (it moves 2 x N rows).
Each job's output is read back and must hold exactly N rows, ids 0..N-1 once each.

A run's time is the client's, spawn to exit: connecting, listing the partitions, waiting
for the tasks, the one commit. The workers are not the client's descendants, so the RSS
figures of this section are the client's alone (the JSON keeps them; the table does not).
"""

from __future__ import annotations

import shlex
import shutil
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import dativo_job
from .candidates import Candidate, RunContext
from .dask_cluster import ClusterError, LocalDaskClusters
from .partition_parallelism import FILES, job_document, shared_csv_input
from .runner import OK, SKIPPED, CandidateResult, Runner

__all__ = [
    "CLUSTERS",
    "DASK_TARGET",
    "HEADER",
    "DaskScaleOut",
    "dask_candidates",
    "measure_dask_scale_out",
]

DASK_TARGET = 1.6
"""Issue 15: the job on 2 workers at least this many times faster than on one."""

PARALLELISM = FILES
"""``source.parallelism`` of the job: every partition on the cluster at once."""

CLUSTERS = {"two": 2, "one": 1, "one-b": 1}
"""The clusters the section starts: name to single-thread workers."""

ONE, TWO, CONTROL = "dask-1w", "dask-2w", "dask-1w-x2"
COPIES = ("a", "b")
CONTROL_CLUSTERS = ("one", "one-b")
BACKEND = "process"

HEADER = ["candidate", "status", "s (median)", "min-max s", "job s (reported)", "rows/s", "speed-up"]
"""The printed table's columns."""


def _command(executable: str | None, address: str | None, ctx: RunContext, name: str, out: str) -> list[str]:
    if executable is None:
        raise FileNotFoundError("dativo-run is not installed in this environment")
    if address is None:
        raise FileNotFoundError("no Dask cluster for this candidate")
    document = job_document(
        name=name, input_dir=shared_csv_input(ctx), out_dir=ctx.out_dir / out, parallelism=PARALLELISM
    )
    job = dativo_job.write_job(ctx.run_dir / f"{name}.yaml", document)
    return [*dativo_job.dativo_run_command(executable, job), "--executor", "dask", "--scheduler", address]


def _one_job(executable: str | None, address: str | None, name: str) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        return _command(executable, address, ctx, name, "")

    return command


def _two_at_once(executable: str | None, addresses: Mapping[str, str]) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        runs = [
            shlex.join(_command(executable, addresses.get(cluster), ctx, f"bench-dask-1w-{copy}", copy))
            for copy, cluster in zip(COPIES, CONTROL_CLUSTERS, strict=True)
        ]
        # Start both, then fail when either failed.
        script = " ".join(
            f"{run} > {copy}.out & p{i}=$!;" for i, (run, copy) in enumerate(zip(runs, COPIES, strict=True))
        )
        script += " rc=0;" + "".join(f" wait $p{i} || rc=1;" for i in range(len(COPIES))) + " exit $rc"
        return ["bash", "-c", script]

    return command


def dask_candidates(dativo_run: str | None, addresses: Mapping[str, str]) -> list[Candidate]:
    """Return the candidates of the ``dask`` section, in report order.

    Args:
        dativo_run: Path of the ``dativo-run`` executable, ``None`` when not installed.
        addresses: Cluster name (:data:`CLUSTERS`) to its scheduler's address.
    """
    pattern = dativo_job.DATIVO_OUTPUT_PATTERN
    where = f"{FILES} CSV files, source.parallelism {PARALLELISM}, sandbox {BACKEND}"
    return [
        Candidate(
            ONE,
            f"--executor dask on 1 worker: {where}",
            _one_job(dativo_run, addresses.get("one"), "bench-dask-1w"),
            pattern,
            is_dativo=True,
            backend=BACKEND,
        ),
        Candidate(
            TWO,
            f"--executor dask on 2 workers: {where}",
            _one_job(dativo_run, addresses.get("two"), "bench-dask-2w"),
            pattern,
            is_dativo=True,
            backend=BACKEND,
        ),
        Candidate(
            CONTROL,
            "control: two 1-worker jobs at once, each on its own 1-worker cluster",
            _two_at_once(dativo_run, addresses),
            pattern,
            is_dativo=True,
            backend=BACKEND,
            output_subdirs=COPIES,
        ),
    ]


def measure_dask_scale_out(
    runner: Runner, dativo_run: str | None, *, n: int, runs: int, preflight_n: int
) -> DaskScaleOut:
    """Start the clusters, preflight and time the candidates interleaved, stop the clusters.

    The clusters are stopped whatever happens. Their logs are kept (and named) when a
    candidate did not finish OK or ``runner.keep`` is set; without a cluster every
    candidate is SKIPPED with the reason.

    Args:
        runner: The bench's runner.
        dativo_run: Path of the ``dativo-run`` executable, ``None`` when not installed.
        n: Rows of the job, over all files.
        runs: Timed runs per candidate.
        preflight_n: Rows of the preflight runs.
    """
    folder = runner.work_dir / "dask-clusters"
    with LocalDaskClusters(folder) as clusters:
        try:
            started = clusters.start(CLUSTERS)
        except ClusterError as exc:
            runner.log(f"  no Dask cluster: {exc}")
            results = [CandidateResult(c, SKIPPED, str(exc)) for c in dask_candidates(dativo_run, {})]
            return DaskScaleOut(n, results)
        listed = ", ".join(f"{c.name} {c.address} ({c.workers} worker(s))" for c in started.values())
        runner.log(f"  clusters: {listed}")
        candidates = dask_candidates(dativo_run, {name: c.address for name, c in started.items()})
        results = runner.preflight(candidates, preflight_n)
        runner.timed_rounds(results, n, runs)
    if runner.keep or any(r.status != OK for r in results):
        runner.log(f"  Dask logs in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return DaskScaleOut(n, results)


@dataclass(frozen=True)
class DaskScaleOut:
    """The ``dask`` section's results and speed-ups.

    Args:
        n: Rows of the job, over all files.
        results: The three candidates' results, in report order.
    """

    n: int
    results: list[CandidateResult]

    def _result(self, name: str) -> CandidateResult | None:
        return next((r for r in self.results if r.name == name), None)

    def _median_s(self, name: str) -> float | None:
        result = self._result(name)
        return None if result is None else result.median("seconds")

    def speed_up(self, name: str) -> float | None:
        """Median time of ``dask-1w`` x the copies ``name`` moves / the median time of ``name``."""
        one, other = self._median_s(ONE), self._median_s(name)
        if one is None or other is None or other <= 0:
            return None
        return (2 if name == CONTROL else 1) * one / other

    def why_missing(self) -> str:
        """Why the speed-up of ``dask-2w`` is not known."""
        for name in (ONE, TWO):
            result = self._result(name)
            if result is None:
                return f"{name} not run"
            if result.status != OK:
                return f"{name} {result.status}: {result.reason}"
        return "not measured"

    def target(self) -> tuple[str, str, str, str]:
        """The target line: (target, measured, verdict, note)."""
        target = f"dask: the 4-partition job on 2 workers ≥ {DASK_TARGET:g}x on 1 worker (issue 15)"
        speed_up = self.speed_up(TWO)
        if speed_up is None:
            return target, "—", "N/A", self.why_missing()
        control = self.speed_up(CONTROL)
        note = f"{FILES} CSV files, {self.n:,} rows, parallelism {PARALLELISM}, sandbox {BACKEND}" + (
            "" if control is None else f"; two 1-worker jobs at once on this machine: {control:.2f}x"
        )
        return target, f"{speed_up:.2f}x", "PASS" if speed_up >= DASK_TARGET else "MISS", note

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
            speed_up = self.speed_up(result.name) if result.name != ONE else None
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

    def problems(self) -> list[str]:
        """One line per candidate that was not timed, with the reason."""
        return [f"{r.name}: {r.status} - {r.reason}" for r in self.results if r.status != OK]

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON data."""
        return {
            "n": self.n,
            "files": FILES,
            "parallelism": PARALLELISM,
            "backend": BACKEND,
            "clusters": dict(CLUSTERS),
            "speed_up": _round(self.speed_up(TWO)),
            "speed_up_two_jobs_control": _round(self.speed_up(CONTROL)),
            "target": DASK_TARGET,
            "candidates": [
                {
                    "name": r.name,
                    "description": r.candidate.description,
                    "status": r.status,
                    "reason": r.reason,
                    "seconds_median": _round(r.median("seconds")),
                    "runs": [run.to_dict() for run in r.runs],
                    "details": r.details,
                }
                for r in self.results
            ],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
