"""The Dativo throughput benchmark: ``nox -s bench`` (``-- --quick`` for a one-minute run).

Measures, in one run, interleaved, each as a fresh process: the dict generator alone,
pyarrow from dicts (the floor), pyarrow from columns (the ceiling), dlt, a singer-sdk tap
piped into a singer-sdk target, and ``dativo-run`` with the bench plugins in-process and
in the ``process`` and ``docker`` sandboxes; then sandbox cold start per backend, two jobs
at once, the Singer adapter against its tap alone, and peak RSS at a small vs a large N.
Prints a table and the issues' targets as PASS/MISS, and writes everything to a JSON file.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from dativo_bench import dativo_job, iceberg_target, postgres_source  # issue 16's sections
from dativo_bench.candidates import BENCH_DIR, CANDIDATE_NAMES, CEILING, FLOOR, all_candidates
from dativo_bench.dask_scale_out import HEADER as DASK_HEADER
from dativo_bench.dask_scale_out import DaskScaleOut, measure_dask_scale_out
from dativo_bench.http_source import HEADER as HTTP_HEADER
from dativo_bench.http_source import HTTP_N, HttpSource, measure_http_source
from dativo_bench.ipc_validation import IpcValidation, measure_ipc_validation
from dativo_bench.measurement import SAMPLE_INTERVAL_S
from dativo_bench.parallel_jobs import ParallelScaling, parallel_candidates
from dativo_bench.partition_parallelism import HEADER as PARALLELISM_HEADER
from dativo_bench.partition_parallelism import PartitionParallelism, parallelism_candidates
from dativo_bench.report import (
    RssScaling,
    TargetCheck,
    check_targets,
    print_report,
    results_document,
    table_printer,
)
from dativo_bench.runner import OK, CandidateResult, Runner
from dativo_bench.sandbox_startup import ColdStart, measure_cold_start
from dativo_bench.singer_adapter import SingerAdapter, adapter_candidates

EXTRAS = ("cold-start", "rss", "parallel", "parallelism", "dask", "ipc-validation", "adapter")
EXTRAS += ("postgres", "iceberg", "http")
"""Sections that ``--only`` can name besides candidates."""

RSS_CANDIDATES = ("dativo-dict-none", "dativo-dict-process", FLOOR)
"""Candidates whose peak RSS is measured at a small and a large N (the floor for reference)."""

PREFLIGHT_ROWS = 2_000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="N=100,000, RSS at 100k vs 1M: about a minute")
    parser.add_argument("--n", type=int, help="rows per run (default 1,000,000; 100,000 with --quick)")
    parser.add_argument(
        "--runs", type=int, default=3, help="timed runs per candidate (at least 3 for a median)"
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated candidates and sections to run: {', '.join((*CANDIDATE_NAMES, *EXTRAS))}",
    )
    parser.add_argument("--seed", type=int, default=42, help="workload seed")
    parser.add_argument(
        "--http-n", type=int, help="records of the http section (default 200,000; 50,000 with --quick)"
    )
    parser.add_argument("--batch-size", type=int, default=10_000, help="rows per batch")
    parser.add_argument(
        "--rss-n",
        help="small,large N of the peak RSS runs (default 1000000,10000000; 100000,1000000 with --quick)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=BENCH_DIR / "results" / "latest.json",
        help="where to write the results (default bench/results/latest.json)",
    )
    parser.add_argument(
        "--work-dir", type=Path, help="folder for the runs' output (default: a new temp folder)"
    )
    parser.add_argument("--keep", action="store_true", help="keep every run's folder, output included")
    parser.add_argument(
        "--parallelism-level",
        type=int,
        default=2,
        help="source.parallelism of the parallelism section's para-p2 job (default 2; 1 checks the plumbing)",
    )
    args = parser.parse_args(argv)
    args.n = args.n if args.n is not None else (100_000 if args.quick else 1_000_000)
    if args.rss_n:
        small, _, large = args.rss_n.partition(",")
        args.rss_sizes = (int(small), int(large))
    else:
        args.rss_sizes = (100_000, 1_000_000) if args.quick else (1_000_000, 10_000_000)
    selected = [name.strip() for name in (args.only or "").split(",") if name.strip()]
    unknown = sorted(set(selected) - set(CANDIDATE_NAMES) - set(EXTRAS))
    if unknown:
        parser.error(
            f"unknown --only name(s): {', '.join(unknown)}; known: {', '.join((*CANDIDATE_NAMES, *EXTRAS))}"
        )
    args.selected = set(selected) or {*CANDIDATE_NAMES, *EXTRAS}
    if args.n <= 0 or args.runs <= 0 or args.batch_size <= 0 or min(args.rss_sizes) <= 0:
        parser.error("--n, --runs, --batch-size and --rss-n must be positive")
    if args.parallelism_level <= 0:
        parser.error("--parallelism-level must be positive")
    return args


def log(line: str) -> None:
    """Print one progress line now."""
    print(line, flush=True)


def package_versions() -> dict[str, str | None]:
    """Return the versions of the packages the candidates use."""
    versions: dict[str, str | None] = {}
    for name in (
        "pyarrow",
        "dlt",
        "singer-sdk",
        "meltanolabs-target-csv",
        "connectorx",  # the postgres and iceberg sections (issue 16)
        "meltanolabs-tap-postgres",
        "adbc-driver-postgresql",
        "pyiceberg",
        "psutil",
        "dativo-runtime",
        "dativo-plugin-sdk",
    ):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def measure_rss_scaling(
    runner: Runner, args: argparse.Namespace, results: dict[str, CandidateResult]
) -> list[RssScaling]:
    """Run the RSS candidates once at the small N, then once each at the large N."""
    small_n, large_n = args.rss_sizes
    todo = []
    scaling: dict[str, RssScaling] = {}
    for name in RSS_CANDIDATES:
        result = results.get(name)
        if result is None:
            continue
        if result.status != OK:
            scaling[name] = RssScaling(
                name, small_n, large_n, None, None, f"{result.status}: {result.reason}"
            )
        else:
            todo.append(result)
    records: dict[tuple[str, int], Any] = {}
    problems: dict[str, str] = {}
    for n in (small_n, large_n):
        for result in todo:
            if result.name in problems:
                continue
            log(f"  {result.name} at {n:,} rows…")
            outcome = runner.run_once(result.candidate, n, f"rss-{n}")
            if outcome.problem is not None:
                problems[result.name] = f"{outcome.problem} (logs in {outcome.run_dir})"
            records[(result.name, n)] = outcome.record
    for result in todo:
        scaling[result.name] = RssScaling(
            result.name,
            small_n,
            large_n,
            records.get((result.name, small_n)),
            records.get((result.name, large_n)),
            problems.get(result.name),
        )
    return [scaling[name] for name in RSS_CANDIDATES if name in scaling]


def log_ipc_validation(validation: IpcValidation, ceiling: CandidateResult | None) -> None:
    """Print the decode figures, and full validation's share of the ceiling's time."""
    log(
        f"  cheap decode {validation.cheap_s:.3f} s, untrusted decode (full validation) "
        f"{validation.full_s:.3f} s for {validation.megabytes:.0f} MB "
        f"({validation.megabytes / validation.full_s:,.0f} MB/s)"
    )
    seconds = ceiling.median("seconds") if ceiling is not None else None
    if seconds:
        share = (validation.full_s - validation.cheap_s) / seconds
        log(f"  full validation adds {share:.1%} of the columnar ceiling's time for the same rows")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return 0 unless the harness itself could not run."""
    args = parse_args(argv)
    # A terminated bench (nox interrupted, CI timeout) still stops the run in flight.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # Every candidate runs as an installed program would: with its bytecode cached. With
    # PYTHONDONTWRITEBYTECODE set (as some shells and CI images do), the preflight could
    # not warm that cache, and each timed run would recompile every module it imports
    # (about 0.25 s for dativo-run, 0.05 s for pyarrow alone on the reference machine).
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        log("PYTHONDONTWRITEBYTECODE unset for the candidates: the preflight warms their bytecode cache")
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="dativo-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    dativo_run = dativo_job.dativo_run_executable()
    mode = "quick" if args.quick else "full"
    log(f"Dativo bench ({mode}): N={args.n:,}, {args.runs} runs, seed {args.seed}, work folder {work_dir}")
    log(f"dativo-run: {dativo_run or 'not installed'}")
    doctor = dativo_job.sandbox_doctor(dativo_run) if dativo_run else None
    load_before = os.getloadavg()
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")

    runner = Runner(work_dir, seed=args.seed, batch_size=args.batch_size, log=log, keep=args.keep)
    try:
        candidates = [c for c in all_candidates(dativo_run) if c.name in args.selected]
        preflight_n = min(PREFLIGHT_ROWS, args.n)
        log(f"Preflight ({preflight_n:,} rows each):")
        results = runner.preflight(candidates, preflight_n)
        log(f"Timed rounds ({args.runs} x {args.n:,} rows, interleaved):")
        runner.timed_rounds(results, args.n, args.runs)
        by_name = {r.name: r for r in results}
        cold_start: dict[str, ColdStart] = {}
        if "cold-start" in args.selected:
            log("Sandbox cold start:")
            cold_start = measure_cold_start(runner, dativo_run, ("process", "docker"), args.runs)
        parallel: ParallelScaling | None = None
        if "parallel" in args.selected:
            log(f"Parallel jobs ({args.runs} x 2 jobs of {args.n:,} rows, interleaved):")
            parallel_results = runner.preflight(parallel_candidates(dativo_run), preflight_n)
            runner.timed_rounds(parallel_results, args.n, args.runs)
            parallel = ParallelScaling(args.n, parallel_results)
        parallelism: PartitionParallelism | None = None
        if "parallelism" in args.selected:
            level = args.parallelism_level
            log(f"4-file CSV job, parallelism {level} vs 1 ({args.runs} x {args.n:,} rows, interleaved):")
            parallelism_results = runner.preflight(parallelism_candidates(dativo_run, level), preflight_n)
            runner.timed_rounds(parallelism_results, args.n, args.runs)
            parallelism = PartitionParallelism(args.n, level, parallelism_results)
        dask: DaskScaleOut | None = None
        if "dask" in args.selected:
            log(
                f"4-partition CSV job on a Dask cluster, 2 workers vs 1 ({args.runs} x {args.n:,} rows, "
                "interleaved; the clusters start before the preflight):"
            )
            dask = measure_dask_scale_out(
                runner, dativo_run, n=args.n, runs=args.runs, preflight_n=preflight_n
            )
        if not args.keep:  # the CSV input the parallelism and dask sections' runs shared
            for folder in work_dir.glob("parallelism-input-*"):
                shutil.rmtree(folder, ignore_errors=True)
        adapter: SingerAdapter | None = None
        if "adapter" in args.selected:
            log(f"Singer adapter ({args.runs} x {args.n:,} records, interleaved; preflight builds its env):")
            adapter_results = runner.preflight(adapter_candidates(dativo_run), preflight_n)
            runner.timed_rounds(adapter_results, args.n, args.runs)
            adapter = SingerAdapter(args.n, adapter_results)
        issue16: dict[str, Any] = {}  # the postgres and iceberg sections
        for name, measure_section in (
            ("postgres", postgres_source.measure_postgres_source),
            ("iceberg", iceberg_target.measure_iceberg_target),
        ):
            if name in args.selected:
                log(f"Section {name} (issue 16; {args.runs} x {args.n:,} rows, interleaved):")
                issue16[name] = measure_section(
                    runner, dativo_run, n=args.n, runs=args.runs, preflight_n=preflight_n, log=log
                )
        validation: IpcValidation | None = None
        if "ipc-validation" in args.selected:
            log(f"Host decode of worker batches ({args.runs} x {args.n:,} rows, cheap vs full validation):")
            validation = measure_ipc_validation(
                args.n, seed=args.seed, batch_size=args.batch_size, runs=args.runs
            )
            log_ipc_validation(validation, by_name.get(CEILING))
        http: HttpSource | None = None
        if "http" in args.selected:  # issue 17: its own N (200k; 50k with --quick), pages of 1,000
            http_n = args.http_n or (50_000 if args.quick else HTTP_N)
            log(f"HTTP sources ({args.runs} x {http_n:,} records in pages of 1,000, interleaved):")
            http = measure_http_source(runner, dativo_run, n=http_n, runs=args.runs, seed=args.seed)
        rss: list[RssScaling] = []
        if "rss" in args.selected:
            log(f"Peak RSS at {args.rss_sizes[0]:,} vs {args.rss_sizes[1]:,} rows:")
            rss = measure_rss_scaling(runner, args, by_name)
    finally:
        runner.close()

    checks = check_targets(by_name, cold_start, rss, parallel, adapter)
    if parallelism is not None:
        checks.append(TargetCheck(*parallelism.target()))
    if dask is not None:
        checks.append(TargetCheck(*dask.target()))
    checks += [TargetCheck(*check) for section in issue16.values() for check in section.checks()]
    if http is not None:
        checks.extend(TargetCheck(*target) for target in http.targets())
    print_report(
        f"{mode}, N={args.n:,}, {args.runs} runs, {os.cpu_count()} CPUs",
        results,
        cold_start,
        rss,
        checks,
        parallel=parallel,
        adapter=adapter,
    )
    if parallelism is not None:
        table_printer()(
            f"One job, source.parallelism — {parallelism.n:,} rows in 4 CSV files (medians)",
            PARALLELISM_HEADER,
            parallelism.rows(),
        )
    if dask is not None:
        table_printer()(
            f"One job on Dask, 2 workers vs 1 — {dask.n:,} rows in 4 CSV files, parallelism 4 (medians)",
            DASK_HEADER,
            dask.rows(),
        )
        for problem in dask.problems():
            log(f"  {problem}")
    for name, section in issue16.items():
        module = postgres_source if name == "postgres" else iceberg_target
        title = f"Section {name} (issue 16) — {section.n:,} rows (medians)"
        table_printer()(title, module.HEADER, section.rows())
    if http is not None:
        table_printer()(
            f"HTTP sources - {http.n:,} records in pages of 1,000 (medians)", HTTP_HEADER, http.rows()
        )
    meta = {
        "started_at": started_at,
        "mode": mode,
        "n": args.n,
        "runs": args.runs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "rss_sizes": list(args.rss_sizes),
        "selected": sorted(args.selected),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        # Other work on the machine skews every figure: the 1-minute load average before and after.
        "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "packages": package_versions(),
        "dativo_run": dativo_run,
        "sandbox_doctor": doctor,
        "rss_method": (
            f"peak_rss: peak of the summed RSS of the process tree, sampled every {SAMPLE_INTERVAL_S} s "
            "with psutil; max_rss: ru_maxrss from wait4, the largest single process (floored by the "
            "harness's own RSS at spawn)"
        ),
    }
    document = results_document(meta, results, cold_start, rss, checks, parallel=parallel, adapter=adapter)
    if validation is not None:
        document["ipc_validation"] = validation.to_dict()
    document["partition_parallelism"] = None if parallelism is None else parallelism.to_dict()
    document["dask_scale_out"] = None if dask is None else dask.to_dict()
    document["postgres_source"] = issue16["postgres"].to_dict() if "postgres" in issue16 else None
    document["iceberg_target"] = issue16["iceberg"].to_dict() if "iceberg" in issue16 else None
    document["http_source"] = None if http is None else http.to_dict()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    log(f"\nResults written to {args.json}")
    if args.keep or any(path.is_dir() for path in work_dir.iterdir()):
        log(f"Run folders kept in {work_dir} (failed runs, or --keep)")
    elif args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
