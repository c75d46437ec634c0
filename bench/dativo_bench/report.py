"""Turn measurements into ratios, target verdicts, a printed table and the JSON results."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .candidates import CEILING, FLOOR
from .parallel_jobs import PARALLEL, PARALLEL_TARGET, ParallelScaling
from .runner import OK, CandidateResult, RunRecord
from .sandbox_startup import ColdStart
from .singer_adapter import ADAPTER_TARGET, SingerAdapter

__all__ = [
    "RssScaling",
    "TargetCheck",
    "check_targets",
    "print_report",
    "results_document",
]

MIB = 2**20


@dataclass(frozen=True)
class RssScaling:
    """Peak RSS of one candidate at a small and a large N (one run each).

    Args:
        name: The candidate.
        small: The run at the small N, or ``None`` when it failed.
        large: The run at the large N, or ``None`` when it failed.
        problem: Why a run is missing.
    """

    name: str
    small_n: int
    large_n: int
    small: RunRecord | None
    large: RunRecord | None
    problem: str | None = None

    @property
    def ratio(self) -> float | None:
        """Peak RSS at the large N over peak RSS at the small N."""
        if self.small is None or self.large is None or not self.small.peak_rss_bytes:
            return None
        return self.large.peak_rss_bytes / self.small.peak_rss_bytes

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON data."""
        return {
            "candidate": self.name,
            "small_n": self.small_n,
            "large_n": self.large_n,
            "small": self.small.to_dict() if self.small else None,
            "large": self.large.to_dict() if self.large else None,
            "peak_rss_ratio": None if self.ratio is None else round(self.ratio, 3),
            "problem": self.problem,
        }


@dataclass(frozen=True)
class TargetCheck:
    """One target of issue 6 and how this run did against it.

    Args:
        target: The target, as the issue states it.
        measured: The measured value, formatted.
        verdict: ``PASS``, ``MISS`` or ``N/A`` (not measured in this run).
        note: Why it is ``N/A``, or how the value was obtained.
    """

    target: str
    measured: str
    verdict: str
    note: str = ""

    def line(self, limit: int = 160) -> str:
        """Return the check as one printed line (the note cut at ``limit`` characters)."""
        note = self.note if len(self.note) <= limit else self.note[: limit - 1] + "…"
        note = f"  ({note})" if note else ""
        return f"{self.verdict:<4}  {self.target}: {self.measured}{note}"


def _median_rate(results: Mapping[str, CandidateResult], name: str) -> float | None:
    result = results.get(name)
    rates = result.rows_per_s() if result is not None else None
    return rates[0] if rates else None


def _why_missing(results: Mapping[str, CandidateResult], *names: str) -> str:
    for name in names:
        result = results.get(name)
        if result is None:
            return f"{name} not run"
        if result.status != OK:
            return f"{name} {result.status}"
    return "not measured"


def _ratio_check(
    results: Mapping[str, CandidateResult], target: str, name: str, reference: str, minimum: float
) -> TargetCheck:
    value, base = _median_rate(results, name), _median_rate(results, reference)
    if value is None or base is None:
        return TargetCheck(target, "—", "N/A", _why_missing(results, name, reference))
    ratio = value / base
    verdict = "PASS" if ratio >= minimum else "MISS"
    return TargetCheck(target, f"{ratio:.2f}x", verdict, f"{value:,.0f} vs {base:,.0f} rows/s")


def check_targets(
    results: Mapping[str, CandidateResult],
    cold_start: Mapping[str, ColdStart],
    rss: Sequence[RssScaling],
    parallel: ParallelScaling | None = None,
    adapter: SingerAdapter | None = None,
) -> list[TargetCheck]:
    """Check the issue's targets against this run's numbers (reported, never asserted).

    Args:
        results: Candidate name to its throughput result.
        cold_start: Backend to its cold start figures.
        rss: The peak RSS scaling runs.
        parallel: The ``parallel`` section, ``None`` when it was not run.
        adapter: The ``adapter`` section (issue 14), ``None`` when it was not run.

    Returns:
        One :class:`TargetCheck` per target.
    """
    checks = [
        _ratio_check(
            results, "dict plugin under process ≥ 1.3x the floor", "dativo-dict-process", FLOOR, 1.3
        ),
        _ratio_check(
            results, "Arrow plugin under process ≥ 0.8x the ceiling", "dativo-arrow-process", CEILING, 0.8
        ),
        _ratio_check(
            results,
            "Arrow plugin under process, every batch fully validated, ≥ 0.9x the ceiling",
            "dativo-arrow-process",
            CEILING,
            0.9,
        ),
    ]
    for backend, limit in (("process", 0.15), ("docker", 1.0)):
        target = f"sandbox cold start {backend} ≤ {limit:g} s"
        figures = cold_start.get(backend)
        if figures is None:
            checks.append(TargetCheck(target, "—", "N/A", "not measured"))
            continue
        value, how = figures.direct(), "open_reader+close, fresh process"
        if value is None:
            value, how = figures.cli_minus(cold_start.get("none")), "dativo-run one-row job minus in-process"
        if value is None:
            problems = "; ".join(f"{k}: {v}" for k, v in figures.problems.items())
            checks.append(TargetCheck(target, "—", "N/A", problems or "not measured"))
            continue
        checks.append(TargetCheck(target, f"{value:.3f} s", "PASS" if value <= limit else "MISS", how))
    for scaling in rss:
        if not scaling.name.startswith("dativo-"):
            continue  # the floor is measured for reference only
        target = f"peak RSS of {scaling.name} at {scaling.large_n:,} within 10 % of {scaling.small_n:,} rows"
        if scaling.ratio is None:
            checks.append(TargetCheck(target, "—", "N/A", scaling.problem or "not measured"))
            continue
        assert scaling.small is not None
        assert scaling.large is not None
        checks.append(
            TargetCheck(
                target,
                f"{scaling.ratio:.2f}x",
                "PASS" if scaling.ratio <= 1.10 else "MISS",
                f"{scaling.small.peak_rss_bytes / MIB:,.0f} → {scaling.large.peak_rss_bytes / MIB:,.0f} MiB",
            )
        )
    target = f"2 jobs on 2 cores ≥ {PARALLEL_TARGET:g}x one job"
    if parallel is None:
        checks.append(TargetCheck(target, "—", "N/A", "not measured"))
    else:
        speed_up = parallel.speed_up(PARALLEL)
        if speed_up is None:
            checks.append(TargetCheck(target, "—", "N/A", parallel.why_missing()))
        else:
            control = parallel.speed_up("par-floor-x2")
            note = f"--job-dir --parallel 2 vs --config, {parallel.n:,} rows per job" + (
                "" if control is None else f"; this machine's two-process ceiling (floor x2): {control:.2f}x"
            )
            verdict = "PASS" if speed_up >= PARALLEL_TARGET else "MISS"
            checks.append(TargetCheck(target, f"{speed_up:.2f}x", verdict, note))
    checks.append(_adapter_check(adapter))
    return checks


def _adapter_check(adapter: SingerAdapter | None) -> TargetCheck:
    target = f"Singer adapter adds < {ADAPTER_TARGET:.0%} to the tap's own time (issue 14)"
    if adapter is None:
        return TargetCheck(target, "—", "N/A", "not measured")
    overhead = adapter.overhead()
    if overhead is None:
        return TargetCheck(target, "—", "N/A", adapter.why_missing())
    piped = adapter.overhead("adapter-tap-target-csv")
    note = f"dativo-run (singer → Parquet, process) vs tap > /dev/null, {adapter.n:,} records" + (
        "" if piped is None else f"; tap | target-csv: {piped:+.0%}"
    )
    return TargetCheck(target, f"{overhead:+.1%}", "PASS" if overhead < ADAPTER_TARGET else "MISS", note)


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def throughput_rows(results: Sequence[CandidateResult]) -> list[list[str]]:
    """Return the throughput table's rows (as text), one per candidate."""
    by_name = {r.name: r for r in results}
    floor, ceiling = _median_rate(by_name, FLOOR), _median_rate(by_name, CEILING)
    rows = []
    for result in results:
        rates = result.rows_per_s()
        if rates is None:
            rows.append([result.name, result.status, "—", "—", "—", "—", "—", "—", "—"])
            continue
        median, low, high = rates
        seconds = result.median("seconds")
        peak, single = result.median("peak_rss_bytes"), result.median("max_rss_bytes")
        rows.append(
            [
                result.name,
                f"{result.status} x{len(result.runs)}",
                _rate(median),
                f"{low:,.0f}-{high:,.0f}",
                f"{median / floor:.2f}" if floor else "—",
                f"{median / ceiling:.2f}" if ceiling else "—",
                f"{seconds:.2f}" if seconds is not None else "—",
                f"{peak / MIB:,.0f}" if peak is not None else "—",
                f"{single / MIB:,.0f}" if single is not None else "—",
            ]
        )
    return rows


THROUGHPUT_HEADER = [
    "candidate",
    "status",
    "rows/s (median)",
    "min-max",
    "x floor",
    "x ceiling",
    "s (median)",
    "peak RSS tree MiB",
    "max RSS 1 proc MiB",
]


def cold_start_rows(cold_start: Mapping[str, ColdStart]) -> list[list[str]]:
    """Return the cold start table's rows (as text), one per backend."""
    baseline = cold_start.get("none")

    def seconds(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    rows = []
    for backend, figures in cold_start.items():
        warm = sorted(figures.direct_repeat_s)
        cli = sorted(figures.cli_s)
        rows.append(
            [
                backend,
                seconds(figures.direct()),
                seconds(warm[len(warm) // 2] if warm else None),
                seconds(cli[len(cli) // 2] if cli else None),
                seconds(figures.cli_minus(baseline)) if backend != "none" else "(reference)",
            ]
        )
    return rows


COLD_START_HEADER = [
    "backend",
    "direct cold s",
    "direct warm s",
    "one-row job s",
    "job - in-process s",
]


def rss_rows(rss: Sequence[RssScaling]) -> list[list[str]]:
    """Return the RSS scaling table's rows (as text)."""

    def mib(run: RunRecord | None) -> str:
        return "—" if run is None else f"{run.peak_rss_bytes / MIB:,.0f} ({run.max_rss_bytes / MIB:,.0f})"

    return [
        [
            s.name,
            f"{s.small_n:,}",
            mib(s.small),
            f"{s.large_n:,}",
            mib(s.large),
            "—" if s.ratio is None else f"{s.ratio:.2f}",
        ]
        for s in rss
    ]


RSS_HEADER = ["candidate", "small N", "peak tree MiB (1 proc)", "large N", "peak tree MiB (1 proc)", "ratio"]


def print_report(
    title: str,
    results: Sequence[CandidateResult],
    cold_start: Mapping[str, ColdStart],
    rss: Sequence[RssScaling],
    checks: Sequence[TargetCheck],
    *,
    parallel: ParallelScaling | None = None,
    adapter: SingerAdapter | None = None,
) -> None:
    """Print the tables (with rich when it is installed) and the target lines."""
    table = table_printer()
    if results:
        table(f"Throughput — {title}", THROUGHPUT_HEADER, throughput_rows(results))
    if cold_start:
        table("Sandbox cold start (medians)", COLD_START_HEADER, cold_start_rows(cold_start))
        for backend, figures in cold_start.items():
            for method, problem in figures.problems.items():
                print(f"  {backend}, {method} method: {problem}")
    if rss:
        table("Peak RSS, small vs large N", RSS_HEADER, rss_rows(rss))
        for scaling in rss:
            if scaling.problem:
                print(f"  {scaling.name}: {scaling.problem}")
    if parallel is not None:
        from .parallel_jobs import HEADER

        table(f"Parallel jobs — {parallel.n:,} rows per job (medians)", HEADER, parallel.rows())
    if adapter is not None:
        from .singer_adapter import HEADER as ADAPTER_HEADER

        table(f"Singer adapter — {adapter.n:,} records (medians)", ADAPTER_HEADER, adapter.rows())
        for result in adapter.results:
            if result.status != OK:
                print(f"  {result.name}: {result.status} - {result.reason}")
    troubles = [r for r in results if r.status != OK]
    if troubles:
        print("\nNot timed:")
        for result in troubles:
            logs = result.details.get("logs")
            print(
                f"  {result.name}: {result.status} - {result.reason}" + (f" (logs in {logs})" if logs else "")
            )
    print("\nTargets (issues 6, 14 and 15; reported, not asserted):")
    for check in checks:
        print(f"  {check.line()}")


def table_printer() -> Callable[[str, list[str], list[list[str]]], None]:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return _plain_table
    console = Console()
    if not console.is_terminal:  # piped or under nox: do not squeeze the tables into 80 columns
        console = Console(width=160)

    def rich_table(title: str, header: list[str], rows: list[list[str]]) -> None:
        table = Table(title=title, title_justify="left")
        for index, column in enumerate(header):
            table.add_column(column, justify="left" if index == 0 else "right", overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)

    return rich_table


def _plain_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    for row in (header, *rows):
        print(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def results_document(
    meta: Mapping[str, Any],
    results: Sequence[CandidateResult],
    cold_start: Mapping[str, ColdStart],
    rss: Sequence[RssScaling],
    checks: Sequence[TargetCheck],
    *,
    parallel: ParallelScaling | None = None,
    adapter: SingerAdapter | None = None,
) -> dict[str, Any]:
    """Return everything measured as one JSON-serialisable document."""
    by_name = {r.name: r for r in results}
    floor, ceiling = _median_rate(by_name, FLOOR), _median_rate(by_name, CEILING)
    candidates = []
    for result in results:
        rates = result.rows_per_s()
        median = rates[0] if rates else None
        candidates.append(
            {
                "name": result.name,
                "description": result.candidate.description,
                "status": result.status,
                "reason": result.reason,
                "rows_per_s_median": None if rates is None else round(rates[0], 1),
                "rows_per_s_min": None if rates is None else round(rates[1], 1),
                "rows_per_s_max": None if rates is None else round(rates[2], 1),
                "ratio_to_floor": round(median / floor, 3) if median and floor else None,
                "ratio_to_ceiling": round(median / ceiling, 3) if median and ceiling else None,
                "peak_rss_mb_median": _mib(result.median("peak_rss_bytes")),
                "max_rss_mb_median": _mib(result.median("max_rss_bytes")),
                "runs": [run.to_dict() for run in result.runs],
                "details": result.details,
            }
        )
    baseline = cold_start.get("none")
    return {
        "meta": dict(meta),
        "candidates": candidates,
        "cold_start": [figures.to_dict(baseline) for figures in cold_start.values()],
        "rss_scaling": [s.to_dict() for s in rss],
        "parallel": None if parallel is None else parallel.to_dict(),
        "singer_adapter": None if adapter is None else adapter.to_dict(),
        "targets": [
            {"target": c.target, "measured": c.measured, "verdict": c.verdict, "note": c.note} for c in checks
        ],
    }


def _mib(value: float | None) -> float | None:
    return None if value is None else round(value / MIB, 1)
