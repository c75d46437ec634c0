"""Run the candidates: a preflight, then interleaved timed rounds, each run a fresh process."""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dativo_job
from .candidates import Candidate, RunContext
from .measurement import Measurement, measure
from .verification import OutputChecker

__all__ = ["CandidateResult", "RunOutcome", "RunRecord", "Runner"]

OK, FAILED, SKIPPED = "OK", "FAILED", "SKIPPED"


@dataclass(frozen=True)
class RunRecord:
    """One timed run.

    Args:
        n: Rows moved.
        seconds: Wall time of the process, start to exit.
        peak_rss_bytes: Peak summed RSS of the process tree.
        max_rss_bytes: ``ru_maxrss`` of its largest single process.
        reported_seconds: The run's own duration as ``dativo-run --json`` reports it
            (``duration_s``: without interpreter start and imports), when it does.
    """

    n: int
    seconds: float
    peak_rss_bytes: int
    max_rss_bytes: int
    reported_seconds: float | None = None

    @property
    def rows_per_s(self) -> float:
        """Rows per second, end to end."""
        return self.n / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the run as JSON data."""
        return {
            "n": self.n,
            "seconds": round(self.seconds, 4),
            "rows_per_s": round(self.rows_per_s, 1),
            "peak_rss_mb": round(self.peak_rss_bytes / 2**20, 1),
            "max_rss_mb": round(self.max_rss_bytes / 2**20, 1),
            "reported_seconds": self.reported_seconds,
        }


@dataclass(frozen=True)
class RunOutcome:
    """What :meth:`Runner.run_once` did.

    Args:
        run_dir: The run's folder (kept when the run failed: logs and output are there).
        measurement: The measurement, ``None`` when the command could not be built.
        record: The timed run, ``None`` unless the run succeeded and its output is right.
        problem: Why the run does not count, ``None`` when it does.
        stdout: What the process printed on standard output.
    """

    run_dir: Path
    measurement: Measurement | None
    record: RunRecord | None
    problem: str | None
    stdout: str = ""


@dataclass
class CandidateResult:
    """Everything measured for one candidate.

    Args:
        candidate: The candidate.
        status: ``OK``, ``FAILED`` or ``SKIPPED``.
        reason: Why it failed or was skipped.
        runs: The timed runs (none when not ``OK``).
        details: Extra context (the ``dativo-run --json`` result of the preflight...).
    """

    candidate: Candidate
    status: str = OK
    reason: str | None = None
    runs: list[RunRecord] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The candidate's name."""
        return self.candidate.name

    def fail(self, status: str, outcome: RunOutcome) -> None:
        """Mark the candidate ``status`` (FAILED or SKIPPED) because of ``outcome``; drop its runs."""
        self.status, self.reason, self.runs = status, outcome.problem, []
        self.details["logs"] = str(outcome.run_dir)

    def rows_per_s(self) -> tuple[float, float, float] | None:
        """Return (median, min, max) rows/s, or ``None`` without a successful run."""
        if self.status != OK or not self.runs:
            return None
        rates = [run.rows_per_s for run in self.runs]
        return statistics.median(rates), min(rates), max(rates)

    def median(self, attribute: str) -> float | None:
        """Return the median of a :class:`RunRecord` attribute over the runs."""
        if self.status != OK or not self.runs:
            return None
        values: list[float] = [getattr(run, attribute) for run in self.runs]
        return statistics.median(values)


class Runner:
    """Runs candidates in a work folder, one fresh process per run.

    Args:
        work_dir: Where each run gets its own folder (removed after a successful run).
        seed: The workload's seed.
        batch_size: Rows per batch.
        log: Called with one line of progress at a time.
        keep: Keep every run's folder (output included), not only failed ones.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        seed: int,
        batch_size: int,
        log: Callable[[str], None],
        keep: bool = False,
    ) -> None:
        self.work_dir = work_dir
        self.seed = seed
        self.batch_size = batch_size
        self.log = log
        self.keep = keep
        self._counter = 0
        self._checker = OutputChecker()

    def close(self) -> None:
        """Stop the output checker process."""
        self._checker.close()

    def run_once(self, candidate: Candidate, n: int, label: str) -> RunOutcome:
        """Run ``candidate`` once over ``n`` rows and check its output.

        The run's folder is removed when the run succeeds (unless ``keep``), kept for a
        post-mortem when it fails.
        """
        self._counter += 1
        run_dir = self.work_dir / f"{self._counter:04d}-{candidate.name}-{label}"
        run_dir.mkdir(parents=True)
        ctx = RunContext(n=n, seed=self.seed, batch_size=self.batch_size, run_dir=run_dir)
        try:
            command = candidate.command(ctx)
        except (OSError, ValueError) as exc:
            return RunOutcome(run_dir, None, None, str(exc))
        env = {**os.environ, **candidate.env}
        timeout_s = 120 + n / 1000
        try:
            measurement = measure(
                command, cwd=run_dir, env=env, timeout_s=timeout_s, log_prefix=run_dir / "run"
            )
        except OSError as exc:  # the program is missing or not executable
            return RunOutcome(run_dir, None, None, f"cannot start {command[0]}: {exc}")
        stdout = measurement.stdout()
        problem: str | None = None
        if measurement.timed_out:
            problem = f"timed out after {measurement.seconds:.0f} s"
        elif not measurement.ok:
            problem = dativo_job.failure_reason(measurement.returncode, stdout, measurement.stderr())
        elif candidate.output_pattern is None:
            reported_rows = (dativo_job.last_json_object(stdout) or {}).get("rows")
            if reported_rows != n:
                problem = f"reported {reported_rows!r} rows, expected {n:,}"
        else:
            for folder in candidate.output_subdirs or ("",):
                problem = self._checker.check(ctx.out_dir / folder, n, candidate.output_pattern).problem
                if problem is not None:
                    problem = f"{folder}: {problem}" if folder else problem
                    break
        if problem is not None:
            return RunOutcome(run_dir, measurement, None, problem, stdout)
        reported = dativo_job.reported_duration(stdout) if candidate.is_dativo else None
        record = RunRecord(
            n * candidate.copies,
            measurement.seconds,
            measurement.peak_rss_bytes,
            measurement.max_rss_bytes,
            reported,
        )
        if not self.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
        return RunOutcome(run_dir, measurement, record, None, stdout)

    def preflight(self, candidates: Sequence[Candidate], n: int) -> list[CandidateResult]:
        """Run each candidate once on ``n`` rows: warms caches, finds what cannot run.

        A ``dativo-run`` candidate that fails here is SKIPPED with the reason (the runtime
        is missing, or the backend is unavailable); a baseline that fails, or any
        candidate whose output is wrong, is FAILED.
        """
        results = []
        for candidate in candidates:
            result = CandidateResult(candidate)
            outcome = self.run_once(candidate, n, "preflight")
            if outcome.problem is not None:
                exited_badly = outcome.measurement is None or not outcome.measurement.ok
                result.fail(SKIPPED if candidate.is_dativo and exited_badly else FAILED, outcome)
                self.log(
                    f"  {candidate.name}: {result.status} - {outcome.problem} (logs in {outcome.run_dir})"
                )
            elif outcome.measurement is not None:
                self.log(f"  {candidate.name}: ok ({outcome.measurement.seconds:.2f} s for {n:,} rows)")
                if candidate.is_dativo:
                    result.details["preflight_result"] = dativo_job.last_json_object(outcome.stdout)
            results.append(result)
        return results

    def timed_rounds(self, results: Sequence[CandidateResult], n: int, runs: int) -> None:
        """Run every OK candidate ``runs`` times, round-robin, rotating the order each round.

        A run that fails or writes the wrong rows marks its candidate FAILED (its other
        runs are dropped).
        """
        active = [r for r in results if r.status == OK]
        for round_index in range(runs):
            if not active:
                return
            shift = round_index % len(active)
            for result in active[shift:] + active[:shift]:
                if result.status != OK:
                    continue
                outcome = self.run_once(result.candidate, n, f"r{round_index + 1}")
                record = outcome.record
                if record is None:
                    result.fail(FAILED, outcome)
                    self.log(f"  round {round_index + 1} {result.name}: FAILED - {result.reason}")
                    continue
                result.runs.append(record)
                self.log(
                    f"  round {round_index + 1}/{runs} {result.name}: {record.seconds:.2f} s, "
                    f"{record.rows_per_s:,.0f} rows/s, peak RSS {record.peak_rss_bytes / 2**20:,.0f} MiB"
                )
            active = [r for r in active if r.status == OK]
