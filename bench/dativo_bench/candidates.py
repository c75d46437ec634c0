"""The candidates the bench measures: how each is started and where its output lands."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import dativo_job

__all__ = [
    "BENCH_DIR",
    "CANDIDATE_NAMES",
    "CEILING",
    "FLOOR",
    "PLUGIN_DIR",
    "Candidate",
    "RunContext",
    "all_candidates",
    "dativo_plugin_ref",
]

BENCH_DIR = Path(__file__).resolve().parents[1]
"""The ``bench/`` folder."""

PLUGIN_DIR = BENCH_DIR / "plugins"
"""The folder of the bench plugins and ``workload.py`` (all a sandboxed plugin sees)."""

FLOOR = "pyarrow-dicts"
"""The candidate every ratio is taken against: dicts to Parquet with pyarrow in one process."""

CEILING = "pyarrow-columns"
"""The columnar ceiling: Arrow batches to Parquet in one process."""


@dataclass(frozen=True)
class RunContext:
    """One run of one candidate.

    Args:
        n: Rows to move.
        seed: The workload's seed.
        batch_size: Rows per batch.
        run_dir: A fresh folder for this run (job files, logs, output).
    """

    n: int
    seed: int
    batch_size: int
    run_dir: Path

    @property
    def out_dir(self) -> Path:
        """Where the candidate writes its Parquet."""
        return self.run_dir / "out"


@dataclass(frozen=True)
class Candidate:
    """One way of moving the workload to Parquet, run as a fresh process per measurement.

    Args:
        name: Short name (used by ``--only`` and in the results).
        description: What it measures, one line.
        command: Builds the command line for a run (may write files into ``run_dir``).
        output_pattern: Glob below ``out_dir`` of the files holding the records; ``None``
            when the candidate writes nothing and reports ``{"rows": N}`` on stdout.
        is_dativo: Whether it runs ``dativo-run`` (a failing preflight then means SKIPPED).
        backend: The sandbox backend of a ``dativo-run`` candidate.
        env: Variables added to the environment of its process.
        output_subdirs: Folders below ``out_dir`` that must each hold the N rows (a run of
            several jobs, each writing its own copy of the workload); empty: ``out_dir``
            itself holds them. The run's record counts N per folder.
    """

    name: str
    description: str
    command: Callable[[RunContext], list[str]]
    output_pattern: str | None = "*.parquet"
    is_dativo: bool = False
    backend: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    output_subdirs: tuple[str, ...] = ()

    @property
    def copies(self) -> int:
        """How many copies of the workload one run moves (one per output folder)."""
        return max(1, len(self.output_subdirs))


def dativo_plugin_ref(kind: str) -> str:
    """Return the absolute reference of the ``dict`` or ``arrow`` bench plugin."""
    file, cls = {
        "dict": ("dict_reader.py", "BenchDictReader"),
        "arrow": ("arrow_reader.py", "BenchArrowReader"),
    }[kind]
    return f"{PLUGIN_DIR / file}:{cls}"


def _baseline(name: str) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        argv = [sys.executable, str(BENCH_DIR / "baselines.py"), name, "--n", str(ctx.n)]
        argv += ["--seed", str(ctx.seed), "--batch-size", str(ctx.batch_size)]
        if name != "generator":
            argv += ["--out", str(ctx.out_dir)]
        return argv

    return command


def _singer(ctx: RunContext) -> list[str]:
    tap_config = ctx.run_dir / "tap.json"
    target_config = ctx.run_dir / "target.json"
    tap_config.write_text(json.dumps({"n": ctx.n, "seed": ctx.seed, "batch_size": ctx.batch_size}))
    target_config.write_text(json.dumps({"path": str(ctx.out_dir)}))
    tap = shlex.join([sys.executable, str(BENCH_DIR / "singer" / "tap.py"), "--config", str(tap_config)])
    target = shlex.join(
        [sys.executable, str(BENCH_DIR / "singer" / "target.py"), "--config", str(target_config)]
    )
    tap_log = shlex.quote(str(ctx.run_dir / "tap.err"))
    # pipefail: the pipeline fails when the tap fails, not only when the target does.
    return ["bash", "-o", "pipefail", "-c", f"{tap} 2> {tap_log} | {target}"]


def _dativo(plugin: str, backend: str, executable: str | None) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        if executable is None:
            raise FileNotFoundError("dativo-run is not installed in this environment")
        document = dativo_job.job_document(
            name=f"bench-{plugin}-{backend}",
            plugin_ref=dativo_plugin_ref(plugin),
            n=ctx.n,
            seed=ctx.seed,
            batch_size=ctx.batch_size,
            out_dir=ctx.out_dir,
            backend=backend,
        )
        job = dativo_job.write_job(ctx.run_dir / "job.yaml", document)
        return dativo_job.dativo_run_command(executable, job)

    return command


def all_candidates(dativo_run: str | None) -> list[Candidate]:
    """Return every candidate, in report order.

    Args:
        dativo_run: Path of the ``dativo-run`` executable, ``None`` when not installed.
    """
    return [
        Candidate(
            "generator", "the dict generator alone (source cost, no output)", _baseline("generator"), None
        ),
        Candidate(FLOOR, "floor: RecordBatch.from_pylist per batch + ParquetWriter", _baseline(FLOOR)),
        Candidate(CEILING, "ceiling: record batches from columns + ParquetWriter", _baseline(CEILING)),
        Candidate(
            "dlt",
            "dlt pipeline, dicts, filesystem destination, parquet",
            _baseline("dlt"),
            "data/bench/records/*.parquet",
            env={"RUNTIME__DLTHUB_TELEMETRY": "false"},
        ),
        Candidate("singer", "singer-sdk tap | singer-sdk target (BatchSink, pyarrow Parquet)", _singer),
        Candidate(
            "dativo-dict-none",
            "dativo-run, dict plugin, in-process (sandbox none)",
            _dativo("dict", "none", dativo_run),
            dativo_job.DATIVO_OUTPUT_PATTERN,
            is_dativo=True,
            backend="none",
        ),
        Candidate(
            "dativo-dict-process",
            "dativo-run, dict plugin, process sandbox",
            _dativo("dict", "process", dativo_run),
            dativo_job.DATIVO_OUTPUT_PATTERN,
            is_dativo=True,
            backend="process",
        ),
        Candidate(
            "dativo-dict-docker",
            "dativo-run, dict plugin, docker sandbox",
            _dativo("dict", "docker", dativo_run),
            dativo_job.DATIVO_OUTPUT_PATTERN,
            is_dativo=True,
            backend="docker",
        ),
        Candidate(
            "dativo-arrow-process",
            "dativo-run, Arrow plugin, process sandbox",
            _dativo("arrow", "process", dativo_run),
            dativo_job.DATIVO_OUTPUT_PATTERN,
            is_dativo=True,
            backend="process",
        ),
    ]


CANDIDATE_NAMES = tuple(c.name for c in all_candidates(None))
"""Every candidate's name, in report order."""
