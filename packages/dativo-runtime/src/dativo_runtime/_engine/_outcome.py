"""How one run ended: :class:`RunStatus` and :class:`RunResult`, the one outcome type.

The engine returns a :class:`RunResult`; ``run --json`` prints its :meth:`RunResult.to_dict`;
a parent process (``run --job-dir --parallel``, ``serve``) reads a child's back with
:meth:`RunResult.from_dict`; the scheduler of ``serve`` and the CLI renderers show it. Its
counts travel in that document: nothing re-parses them from metrics text.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dativo_plugin_sdk import DativoError, from_dict
from dativo_runtime._exit_codes import ExitCode
from dativo_runtime._secrets import REDACTOR

__all__ = ["COUNT_KEYS", "RunResult", "RunStatus"]

COUNT_KEYS = ("records_read", "records_written", "records_quarantined", "bytes_written", "batches")
"""The counts of a run, in the order ``serve``'s status API shows them."""


class RunStatus(str, enum.Enum):
    """Where a run is, or how it ended (a string enum: ``RunStatus.FAILED == "failed"``).

    The value is the word ``run --json`` prints; :attr:`label` is the word of the
    ``status`` label of ``dativo_job_runs_total`` and of ``serve``'s status API.
    """

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        """``success``, ``failed``, ``aborted`` (or ``running``): the metrics' and status API's word."""
        return "success" if self is RunStatus.SUCCEEDED else self.value

    @classmethod
    def parse(cls, word: str) -> RunStatus:
        """Read a status word, either spelling (``succeeded`` or ``success``).

        Raises:
            ValueError: If ``word`` is no status.
        """
        if word == "success":
            return cls.SUCCEEDED
        return cls(word)


@dataclass
class RunResult:
    """The outcome of one run of one job (what ``dativo-run run --json`` prints).

    Attributes:
        run_id: The run's id.
        tenant: The job's tenant.
        job: The job's name.
        status: A :class:`RunStatus` (``succeeded``, ``failed`` or ``aborted`` once ended).
        exit_code: The process exit code this outcome maps to.
        error: The error that ended a failed run.
        batches: Non-empty batches that went through the run (a count, not printed by ``run --json``).
        partitions: Per partition of a partitioned stream, its counts and last state
            (``None`` when the stream was read whole).
        metrics_text: The run's own metrics in the Prometheus text format when it ran in
            another process (added to the caller's); never serialised.
    """

    run_id: str = ""
    tenant: str = ""
    job: str = ""
    job_file: str | None = None
    status: RunStatus = RunStatus.RUNNING
    exit_code: int = ExitCode.OK
    started_at: str = ""
    finished_at: str = ""
    duration_s: float = 0.0
    attempts: int = 0
    stream: str | None = None
    source: str = ""
    target: str = ""
    records_read: int = 0
    records_written: int = 0
    records_invalid: int = 0
    records_quarantined: int = 0
    files: list[str] = field(default_factory=list)
    bytes_written: int = 0
    output: str | None = None
    manifest: str | None = None
    quarantine_output: str | None = None
    state_uri: str | None = None
    state: dict[str, Any] | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    commit: dict[str, Any] = field(default_factory=dict)
    sandbox: dict[str, str] = field(default_factory=dict)
    partitions: list[dict[str, Any]] | None = None
    error: DativoError | None = None
    batches: int = 0
    metrics_text: str | None = field(default=None, repr=False, compare=False)

    @property
    def succeeded(self) -> bool:
        """Whether the run committed (or had nothing to commit) without error."""
        return self.status is RunStatus.SUCCEEDED

    @property
    def counts(self) -> dict[str, int]:
        """Records read, written and quarantined, bytes written and batches (:data:`COUNT_KEYS`)."""
        return {key: int(getattr(self, key)) for key in COUNT_KEYS}

    @property
    def error_message(self) -> str | None:
        """The error's message, secrets masked, when the run did not succeed."""
        return None if self.error is None else REDACTOR.redact_text(self.error.message)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON data, secrets masked: the document ``run --json`` prints."""
        data = {
            "run_id": self.run_id,
            "tenant": self.tenant,
            "job": self.job,
            "job_file": self.job_file,
            "status": self.status.value,
            "exit_code": int(self.exit_code),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "attempts": self.attempts,
            "stream": self.stream,
            "source": self.source,
            "target": self.target,
            "records_read": self.records_read,
            "records_written": self.records_written,
            "records_invalid": self.records_invalid,
            "records_quarantined": self.records_quarantined,
            "files": list(self.files),
            "bytes_written": self.bytes_written,
            "output": self.output,
            "manifest": self.manifest,
            "quarantine_output": self.quarantine_output,
            "state_uri": self.state_uri,
            "state": self.state,
            "validation": self.validation,
            "sandbox": dict(self.sandbox),
            "partitions": None if self.partitions is None else [dict(p) for p in self.partitions],
            "error": None if self.error is None else self.error.to_dict(),
        }
        redacted: dict[str, Any] = REDACTOR.redact(data)
        return redacted

    def to_record(self) -> dict[str, Any]:
        """Return :meth:`to_dict` plus what ``run --json`` leaves out (``batches``, ``commit``).

        This is the document a child run hands its parent process (``--result-file``).
        """
        data = self.to_dict()
        data["batches"] = self.batches
        data["commit"] = REDACTOR.redact(self.commit)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """Read a result back from :meth:`to_dict` or :meth:`to_record`.

        Raises:
            ValueError: If ``status`` is no status word.
        """
        error = data.get("error")
        result = cls(**{name: data[name] for name in _PLAIN_FIELDS if data.get(name) is not None})
        result.status = RunStatus.parse(str(data.get("status") or RunStatus.RUNNING.value))
        result.files = [str(f) for f in data.get("files") or []]
        result.validation = dict(data.get("validation") or {})
        result.commit = dict(data.get("commit") or {})
        result.sandbox = {str(k): str(v) for k, v in dict(data.get("sandbox") or {}).items()}
        result.error = from_dict(error) if isinstance(error, Mapping) else None
        return result


_PLAIN_FIELDS = (
    "run_id",
    "tenant",
    "job",
    "job_file",
    "exit_code",
    "started_at",
    "finished_at",
    "duration_s",
    "attempts",
    "stream",
    "source",
    "target",
    "records_read",
    "records_written",
    "records_invalid",
    "records_quarantined",
    "bytes_written",
    "output",
    "manifest",
    "quarantine_output",
    "state_uri",
    "state",
    "partitions",
    "batches",
)
