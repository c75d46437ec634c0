"""The Singer adapter: the bench's Singer tap run through ``dativo-run`` against the tap on its own.

Issue 14's target: "the adapter adds less than 25 % to the tap's own time", i.e. Dativo is
never the bottleneck of a Singer pipeline. Three candidates run interleaved, as fresh
processes, each over N records of the workload from the same singer-sdk tap
(``singer/tap.py``), the same installation of it: the plugin environment ``dativo-run``
builds from its wheel, started the way the adapter starts it (the launcher, ``-I -S -B``),
so the singer-sdk version and interpreter flags are the same in all three:

* ``adapter-tap-devnull``: the tap ``> /dev/null``, the tap's own time (the reference);
* ``adapter-tap-target-csv``: the tap ``| target-csv``, the tap piped into a Singer SDK
  target (``meltanolabs-target-csv``, from ``bench/requirements.txt``): what a Singer
  pipeline costs;
* ``adapter-dativo-process``: ``dativo-run run`` of a job with ``source.plugin: singer``
  whose ``package`` is the wheel of ``bench/singer`` (built once per bench run with
  ``uv build``, kept by content hash so its plugin environment is reused while the tap
  does not change; a missing environment is built by the preflight run, not timed), stream
  ``records``, into snappy Parquet, under the ``process`` sandbox.

Overhead = median time of ``adapter-dativo-process`` / median time of
``adapter-tap-devnull`` - 1. The Parquet output is read back (exactly N rows, ids 0..N-1);
the target-csv run counts its CSV's lines.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dativo_job
from .candidates import BENCH_DIR, Candidate, RunContext
from .runner import OK, CandidateResult

__all__ = ["ADAPTER_TARGET", "HEADER", "SingerAdapter", "adapter_candidates"]

ADAPTER_TARGET = 0.25
"""Issue 14: the adapter adds less than this share to the tap's own time."""

TAP_ALONE, TAP_TARGET, DATIVO = "adapter-tap-devnull", "adapter-tap-target-csv", "adapter-dativo-process"
TAP_DIR = BENCH_DIR / "singer"
TAP_SCRIPT = "tap-dativo-bench"
"""The console script of the tap's package (``singer/pyproject.toml``)."""


def _tap_config(ctx: RunContext) -> Path:
    path = ctx.run_dir / "tap.json"
    path.write_text(json.dumps({"n": ctx.n, "seed": ctx.seed, "batch_size": ctx.batch_size}))
    return path


@functools.lru_cache(maxsize=1)
def _tap_package() -> str:
    """The ``package:`` requirement of the tap: its wheel, built once per bench run."""
    return f"tap-dativo-bench @ {_tap_wheel().as_uri()}"


@functools.lru_cache(maxsize=1)
def _tap_environment() -> Path:
    """The plugin environment ``dativo-run`` runs the tap from (built here first when missing)."""
    from dativo_runtime._plugins._environments import ensure_environment, environment_spec_for
    from dativo_runtime._plugins._ref import PluginRef

    spec = environment_spec_for(PluginRef.parse("singer"), {"package": _tap_package()})
    assert spec is not None
    return ensure_environment(spec).path


def _tap_command(ctx: RunContext) -> str:
    # The very tap dativo-run starts: same environment (same singer-sdk), same interpreter and flags.
    from dativo_runtime.connectors import _tap_launcher

    launcher = [sys.executable, "-I", "-S", "-B", str(_tap_launcher.__file__), str(_tap_environment())]
    return shlex.join([*launcher, TAP_SCRIPT, "--config", str(_tap_config(ctx))])


def _tap_alone(ctx: RunContext) -> list[str]:
    # The tap trusted for its count: /dev/null reads nothing back.
    script = f"{_tap_command(ctx)} > /dev/null 2> tap.err && echo '{{\"rows\": {ctx.n}}}'"
    return ["bash", "-o", "pipefail", "-c", script]


def _target_csv() -> Path:
    script = Path(sys.executable).parent / "target-csv"
    if not script.exists():
        raise FileNotFoundError(
            f"{script} is missing: pip install meltanolabs-target-csv==0.5.0 (bench/requirements.txt)"
        )
    return script


def _tap_into_target(ctx: RunContext) -> list[str]:
    config = ctx.run_dir / "target.json"
    config.write_text(json.dumps({"output_path": str(ctx.out_dir)}))
    target = shlex.join([str(_target_csv()), "--config", str(config)])
    csv_file = shlex.quote(str(ctx.out_dir / "records.csv"))
    # The CSV has a header line and no newline inside a value: lines - 1 records.
    count = f'echo "{{\\"rows\\": $(( $(wc -l < {csv_file}) - 1 ))}}"'
    script = f"{_tap_command(ctx)} 2> tap.err | {target} > target.out 2> target.err && {count}"
    return ["bash", "-o", "pipefail", "-c", script]


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    try:
        from uv import find_uv_bin
    except ImportError:
        raise FileNotFoundError("uv is not installed: it builds the tap's wheel for `package:`") from None
    return str(find_uv_bin())


WHEELS = BENCH_DIR / "results" / "wheels"
"""Where the tap's wheels are kept (git-ignored), one folder per content hash."""


def _tap_wheel() -> Path:
    """Build the tap's wheel and keep it at ``results/wheels/<hash of its bytes>/``.

    hatchling builds reproducibly, so the same sources give the same path, hence the same
    ``package:`` requirement and the same cached plugin environment across bench runs; a
    changed tap gets a new path, so a stale environment is never reused.
    """
    with tempfile.TemporaryDirectory() as scratch:
        built = subprocess.run(
            [_uv(), "build", "--wheel", "--out-dir", scratch, str(TAP_DIR)],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(Path(scratch).glob("tap_dativo_bench-*.whl"))
        if built.returncode != 0 or not wheels:
            raise ValueError(f"uv build of {TAP_DIR} failed: {built.stderr.strip()[-500:]}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()[:16]
        kept = WHEELS / digest / wheels[0].name
        if not kept.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(wheels[0], kept)
    return kept


def singer_job_document(*, package: str, n: int, seed: int, batch_size: int, out_dir: Path) -> dict[str, Any]:
    """The job that reads the tap through the Singer adapter into snappy Parquet in ``out_dir``."""
    return {
        "tenant": "bench",
        "name": "bench-singer-adapter",
        "mode": "self_hosted",
        "source": {
            "plugin": "singer",
            "config": {
                "package": package,
                "executable": TAP_SCRIPT,
                "config": {"n": n, "seed": seed, "batch_size": batch_size},
            },
            "stream": "records",
        },
        "target": {"plugin": "parquet", "config": {"path": str(out_dir), "compression": "snappy"}},
        "validation": "strict",
        "sandbox": {"backend": "process"},
    }


def _through_dativo(executable: str | None) -> Callable[[RunContext], list[str]]:
    def command(ctx: RunContext) -> list[str]:
        if executable is None:
            raise FileNotFoundError("dativo-run is not installed in this environment")
        document = singer_job_document(
            package=_tap_package(),
            n=ctx.n,
            seed=ctx.seed,
            batch_size=ctx.batch_size,
            out_dir=ctx.out_dir,
        )
        job = dativo_job.write_job(ctx.run_dir / "job.yaml", document)
        return dativo_job.dativo_run_command(executable, job)

    return command


def adapter_candidates(dativo_run: str | None) -> list[Candidate]:
    """Return the candidates of the ``adapter`` section, in report order.

    Args:
        dativo_run: Path of the ``dativo-run`` executable, ``None`` when not installed.
    """
    return [
        Candidate(TAP_ALONE, "the singer-sdk tap alone, stdout to /dev/null (reference)", _tap_alone, None),
        Candidate(
            TAP_TARGET,
            "the tap piped into target-csv (meltanolabs-target-csv 0.5.0, a Singer SDK target)",
            _tap_into_target,
            None,
        ),
        Candidate(
            DATIVO,
            "dativo-run, source.plugin: singer (the tap's wheel as package), Parquet, process sandbox",
            _through_dativo(dativo_run),
            dativo_job.DATIVO_OUTPUT_PATTERN,
            is_dativo=True,
            backend="process",
        ),
    ]


@dataclass(frozen=True)
class SingerAdapter:
    """The ``adapter`` section's results and the adapter's overhead over the tap alone.

    Args:
        n: Records per run.
        results: The three candidates' results, in report order.
    """

    n: int
    results: list[CandidateResult]

    def _median_s(self, name: str) -> float | None:
        for result in self.results:
            if result.name == name:
                return result.median("seconds")
        return None

    def overhead(self, name: str = DATIVO) -> float | None:
        """Median time of ``name`` / median time of the tap alone - 1 (0.2 = 20 % more)."""
        alone, other = self._median_s(TAP_ALONE), self._median_s(name)
        if alone is None or other is None or alone <= 0:
            return None
        return other / alone - 1

    def why_missing(self) -> str:
        """Why the overhead is not known."""
        for name in (TAP_ALONE, DATIVO):
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
                rows.append([result.name, result.status, "—", "—", "—", "—"])
                continue
            overhead = self.overhead(result.name) if result.name != TAP_ALONE else None
            rows.append(
                [
                    result.name,
                    f"{result.status} x{len(seconds)}",
                    f"{statistics.median(seconds):.2f}",
                    f"{min(seconds):.2f}-{max(seconds):.2f}",
                    f"{statistics.median(run.rows_per_s for run in result.runs):,.0f}",
                    "—" if overhead is None else f"{overhead:+.1%}",
                ]
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Return the figures as JSON data."""
        return {
            "n": self.n,
            "overhead": _round(self.overhead(DATIVO)),
            "overhead_singer_target": _round(self.overhead(TAP_TARGET)),
            "target": ADAPTER_TARGET,
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


HEADER = ["candidate", "status", "s (median)", "min-max s", "records/s", "vs tap alone"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
