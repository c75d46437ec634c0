"""The scheduled jobs of a folder: every job file with a ``schedule`` (cron syntax).

``schedule`` takes the five cron fields (``*/15 * * * *``), the ``@hourly``/``@daily``
shortcuts, or six fields where the sixth is seconds (croniter's convention:
``* * * * * */10`` runs every ten seconds). Job files without ``schedule`` are left out.
Only ``tenant``, ``name`` and ``schedule`` are read here; the run validates the whole
file each time it starts, so an edit takes effect at the next run.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from dativo_plugin_sdk import ConfigurationError

__all__ = ["ScheduledJob", "load_scheduled_jobs", "read_scheduled_job"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ScheduledJob:
    """A job file and when it runs.

    Args:
        path: The job file.
        tenant: The job's tenant.
        name: The job's name.
        schedule: Its cron expression.
    """

    path: Path
    tenant: str
    name: str
    schedule: str

    @property
    def job_id(self) -> str:
        """``tenant/name``."""
        return f"{self.tenant}/{self.name}"

    def next_after(self, when: datetime.datetime) -> datetime.datetime:
        """Return the first time strictly after ``when`` the schedule fires (same time zone)."""
        result: datetime.datetime = croniter(self.schedule, when).get_next(datetime.datetime)
        return result


def _problem(path: Path, message: str) -> ConfigurationError:
    return ConfigurationError(f"job file {str(path)!r}: {message}", details={"file": str(path)})


def read_scheduled_job(path: Path) -> ScheduledJob | None:
    """Read a job file's ``tenant``, ``name`` and ``schedule``.

    Args:
        path: The YAML job file.

    Returns:
        The scheduled job, or ``None`` when the file has no ``schedule``.

    Raises:
        ConfigurationError: If the file cannot be read, is not YAML, or its name or
            schedule is invalid; the message names the file and the fix.
    """
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise _problem(path, f"cannot be read ({reason})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _problem(path, f"is not valid YAML{where}; fix the syntax") from None
    if not isinstance(data, dict):
        raise _problem(path, "the top level must be a mapping of keys (name:, source:, target:, schedule:)")
    schedule = data.get("schedule")
    if schedule is None:
        return None
    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise _problem(
            path,
            f"schedule {schedule!r} is not a cron expression; write five fields such as '*/15 * * * *' "
            "(minute hour day month weekday), '@hourly', or add a sixth field for seconds",
        )
    name, tenant = data.get("name"), data.get("tenant", "default")
    for key, value in (("name", name), ("tenant", tenant)):
        if not isinstance(value, str) or not _NAME.match(value):
            raise _problem(
                path,
                f"{key} {value!r} is missing or invalid; use letters, digits, '_', '.' and '-', starting "
                "with a letter or digit",
            )
    return ScheduledJob(path=path.resolve(), tenant=str(tenant), name=str(name), schedule=schedule.strip())


def load_scheduled_jobs(job_dir: str | Path) -> list[ScheduledJob]:
    """Return the scheduled jobs of a folder (``*.yaml``/``*.yml``, not recursive), by file name.

    Args:
        job_dir: The folder.

    Returns:
        One :class:`ScheduledJob` per file with a ``schedule``.

    Raises:
        ConfigurationError: If the folder does not exist, a file is invalid, two files
            define the same ``tenant/name``, or no file has a ``schedule``.
    """
    folder = Path(job_dir).expanduser()
    if not folder.is_dir():
        raise ConfigurationError(
            f"--job-dir {str(folder)!r} is not a folder; pass the folder holding the job files",
            details={"job_dir": str(folder)},
        )
    jobs: list[ScheduledJob] = []
    seen: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix in _SUFFIXES and p.is_file()):
        job = read_scheduled_job(path)
        if job is None:
            continue
        if job.job_id in seen:
            raise _problem(
                path,
                f"job {job.job_id!r} is also defined in {str(seen[job.job_id])!r}; give each job its own "
                "name within a tenant",
            )
        seen[job.job_id] = path
        jobs.append(job)
    if not jobs:
        raise ConfigurationError(
            f"no job file in {str(folder)!r} has a schedule; add e.g. schedule: '*/15 * * * *' to the jobs "
            "serve should run",
            details={"job_dir": str(folder)},
        )
    return jobs
