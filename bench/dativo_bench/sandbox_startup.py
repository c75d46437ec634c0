"""Sandbox cold start per backend, measured two ways.

* **direct**: a fresh process imports the runtime, then times ``open_reader`` + ``close``
  of the dict plugin on the backend (:mod:`sandbox_probe`): the worker's start and its
  handshake, nothing else. The first open of each process is the cold start.
* **cli**: the median wall time of ``dativo-run`` on a one-row job under the backend,
  minus the same under ``none`` (in-process). It includes whatever else a sandboxed job
  costs (starting a writer worker, extra checks), so it is an upper bound.

The targets are checked on the direct figure when the probe works, else on the CLI one.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import dativo_job
from .candidates import Candidate, all_candidates, dativo_plugin_ref
from .runner import Runner

__all__ = ["ColdStart", "measure_cold_start"]

PROBE = str(Path(__file__).with_name("sandbox_probe.py"))
"""The probe script, run as a fresh process per measurement."""


@dataclass
class ColdStart:
    """Cold start figures of one backend.

    Args:
        backend: ``none``, ``process`` or ``docker``.
        direct_first_s: Per fresh process, the first ``open_reader`` + ``close``.
        direct_repeat_s: The later ones (warm).
        cli_s: Wall times of ``dativo-run`` on a one-row job.
        problems: Why a method did not work for this backend.
    """

    backend: str
    direct_first_s: list[float] = field(default_factory=list)
    direct_repeat_s: list[float] = field(default_factory=list)
    cli_s: list[float] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)

    def direct(self) -> float | None:
        """Median cold ``open_reader`` + ``close``, in seconds."""
        return statistics.median(self.direct_first_s) if self.direct_first_s else None

    def cli_minus(self, baseline: ColdStart | None) -> float | None:
        """Median ``dativo-run`` one-row wall time minus ``baseline``'s (the in-process one)."""
        if not self.cli_s or baseline is None or not baseline.cli_s:
            return None
        return statistics.median(self.cli_s) - statistics.median(baseline.cli_s)

    def to_dict(self, baseline: ColdStart | None) -> dict[str, Any]:
        """Return the figures as JSON data."""
        return {
            "backend": self.backend,
            "direct_cold_s": _round(self.direct()),
            "direct_cold_runs_s": [round(s, 4) for s in self.direct_first_s],
            "direct_warm_s": _round(
                statistics.median(self.direct_repeat_s) if self.direct_repeat_s else None
            ),
            "cli_one_row_job_s": [round(s, 4) for s in self.cli_s],
            "cli_minus_in_process_s": _round(self.cli_minus(baseline)),
            "problems": self.problems,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def measure_cold_start(
    runner: Runner, dativo_run: str | None, backends: tuple[str, ...], runs: int
) -> dict[str, ColdStart]:
    """Measure cold start on each backend, ``runs`` times, interleaved across backends.

    Args:
        runner: Runs the one-row ``dativo-run`` jobs.
        dativo_run: The ``dativo-run`` executable (``None``: the CLI method reports why not).
        backends: Backends to measure; ``none`` is always added as the reference.
        runs: Measurements per backend and method.

    Returns:
        Backend name to its :class:`ColdStart`.
    """
    names = ("none", *(b for b in backends if b != "none"))
    results = {name: ColdStart(name) for name in names}
    plugin = dativo_plugin_ref("dict")
    one_row_jobs = {c.backend: c for c in all_candidates(dativo_run) if c.name.startswith("dativo-dict-")}
    for _ in range(runs):
        for name in names:
            result = results[name]
            if "direct" not in result.problems:
                _probe(result, plugin)
            if "cli" not in result.problems:
                _cli(result, runner, one_row_jobs.get(name))
    return results


def _probe(result: ColdStart, plugin: str) -> None:
    command = [sys.executable, PROBE, "--backend", result.backend, "--plugin", plugin, "--repeat", "3"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        result.problems["direct"] = "the probe timed out after 300 s"
        return
    data = dativo_job.last_json_object(completed.stdout)
    if data is None:
        result.problems["direct"] = dativo_job.failure_reason(completed.returncode, "", completed.stderr)
    elif "error" in data:
        result.problems["direct"] = str(data["error"])
    else:
        seconds = [float(s) for s in data["seconds"]]
        result.direct_first_s.append(seconds[0])
        result.direct_repeat_s.extend(seconds[1:])


def _cli(result: ColdStart, runner: Runner, candidate: Candidate | None) -> None:
    if candidate is None:
        result.problems["cli"] = f"no dativo-run candidate runs the dict plugin on {result.backend!r}"
        return
    outcome = runner.run_once(candidate, 1, "cold-start")
    if outcome.record is None:
        result.problems["cli"] = f"{outcome.problem} (logs in {outcome.run_dir})"
        return
    result.cli_s.append(outcome.record.seconds)
