"""Everything the bench assumes about ``dativo-run``, in one place to adjust.

The job file shape, the command line and the sandbox probe are the runtime's interface
as the bench uses it; when the runtime changes them, this module is what changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "DATIVO_OUTPUT_PATTERN",
    "dativo_run_command",
    "dativo_run_dir_command",
    "dativo_run_executable",
    "failure_reason",
    "job_document",
    "last_json_object",
    "reported_duration",
    "sandbox_doctor",
    "write_job",
]

DATIVO_OUTPUT_PATTERN = "**/*.parquet"
"""Where the parquet target's committed files are, below its ``path`` (``_``-folders excluded)."""


def job_document(
    *,
    name: str,
    plugin_ref: str,
    n: int,
    seed: int,
    batch_size: int,
    out_dir: Path,
    backend: str,
) -> dict[str, Any]:
    """Return the job (as data) that reads the bench plugin into snappy Parquet in ``out_dir``.

    Args:
        name: The job's name.
        plugin_ref: ``/abs/path/file.py:ClassName`` of the bench reader.
        n: Rows to read.
        seed: The workload's seed.
        batch_size: Rows per batch the plugin yields.
        out_dir: The parquet target's folder.
        backend: ``none``, ``process`` or ``docker``.
    """
    return {
        "tenant": "bench",
        "name": name,
        "mode": "self_hosted",
        "source": {"plugin": plugin_ref, "config": {"n": n, "seed": seed, "batch_size": batch_size}},
        "target": {"plugin": "parquet", "config": {"path": str(out_dir), "compression": "snappy"}},
        "validation": "strict",
        "sandbox": {"backend": backend},
    }


def write_job(path: Path, document: dict[str, Any]) -> Path:
    """Write a job document as YAML and return its path."""
    import yaml

    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def dativo_run_executable() -> str | None:
    """Return the ``dativo-run`` beside this Python (a nox session's), else the one on PATH."""
    beside = Path(sys.executable).parent / "dativo-run"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("dativo-run")


def dativo_run_command(executable: str, job: Path) -> list[str]:
    """Return the command line that runs ``job`` and prints its result as JSON."""
    return [executable, "run", "--config", str(job), "--json"]


def dativo_run_dir_command(executable: str, job_dir: Path, parallel: int) -> list[str]:
    """Return the command line that runs every job of ``job_dir``, ``parallel`` at once, as JSON."""
    return [executable, "run", "--job-dir", str(job_dir), "--parallel", str(parallel), "--json"]


def last_json_object(text: str) -> dict[str, Any] | None:
    """Return the last line of ``text`` that parses as a JSON object, or the whole text if it does."""
    candidates = [text, *reversed(text.strip().splitlines())]
    for candidate in candidates:
        text_candidate = candidate.strip()
        if text_candidate.startswith("{"):
            try:
                value = json.loads(text_candidate)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def reported_duration(stdout: str) -> float | None:
    """Return ``duration_s`` from a ``dativo-run --json`` result, if it has one (only for context).

    For a ``--job-dir`` result (``{"jobs": [...]}``), the longest of its jobs' durations.
    """
    result = last_json_object(stdout)
    if result is None:
        return None
    jobs = result.get("jobs")
    if isinstance(jobs, list):
        durations = [
            float(job["duration_s"])
            for job in jobs
            if isinstance(job, dict) and isinstance(job.get("duration_s"), (int, float))
        ]
        return max(durations) if durations and len(durations) == len(jobs) else None
    value = result.get("duration_s")
    return float(value) if isinstance(value, (int, float)) else None


def failure_reason(returncode: int, stdout: str, stderr: str, *, limit: int = 600) -> str:
    """Summarise why a ``dativo-run`` (or any candidate) run failed, in one line.

    Prefers an error message from the JSON result (``error.message``, ``message`` or
    ``error``), then the last line of standard error.
    """
    reason = ""
    result = last_json_object(stdout)
    if result is not None:
        error = result.get("error")
        if isinstance(error, dict):
            reason = str(error.get("message") or error.get("error_code") or "")
        elif error:
            reason = str(error)
        reason = reason or str(result.get("message") or "")
    if not reason:
        lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else ""
    reason = " ".join(reason.split())
    if len(reason) > limit:
        reason = reason[: limit - 1] + "…"
    return f"exit {returncode}: {reason}" if reason else f"exit {returncode}"


def sandbox_doctor(executable: str, *, timeout_s: float = 60.0) -> dict[str, Any] | None:
    """Return ``dativo-run sandbox doctor --json`` output as data, or ``None`` when it fails.

    Only recorded in the results for context: availability is decided by trying each
    backend, not by parsing this report.
    """
    try:
        completed = subprocess.run(
            [executable, "sandbox", "doctor", "--json"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return last_json_object(completed.stdout)
