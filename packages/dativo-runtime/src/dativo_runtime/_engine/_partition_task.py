"""One partition extracted, validated and staged on another machine, committed by the run that planned it.

With an executor that spreads a job's partitions over a cluster (``--executor dask``), the
run that plans the job (the *client*) keeps the job's lock, the target's lease and the
commit; each partition becomes a :class:`PartitionRequest` that a cluster worker turns into
a :class:`PartitionStaged` with :func:`stage_partition`: the partition's records extracted
in the worker's sandbox, validated, and written as Parquet files staged **into the client's
writer run** (:meth:`ParquetWriter.join_run`). The client adopts the staged files and
commits them all in its one run manifest, with every partition's state; a partition staged
by a worker that died is never adopted, and its files go with the run's staging folder.

Only the built-in ``parquet`` target can be staged this way (its files are the commit's
unit); a job with another target, or with ``validation: quarantine``, reads its partitions on
the client's machine (:func:`can_stage_remotely`).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from dativo_plugin_sdk import Column, ConfigurationError, Partition
from dativo_plugin_sdk._arrow import arrow_schema_for
from dativo_runtime._engine._commit import run_context
from dativo_runtime._engine._sessions import close_quietly, open_reader_session, writer_columns
from dativo_runtime._engine._validation import BatchValidator, ValidationReport
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._sandbox._policy import OperatorPolicy
from dativo_runtime.connectors._parquet import ParquetWriter

__all__ = [
    "PartitionRequest",
    "PartitionRunner",
    "PartitionStaged",
    "can_stage_remotely",
    "stage_partition",
]


@dataclass(frozen=True)
class PartitionRequest:
    """What a cluster worker needs to stage one partition (picklable).

    Attributes:
        job: The job (secrets resolved: the worker needs them to read and write).
        run_id: The client's run id.
        writer_run_id: The client's target run the files are staged into.
        tag: Unique per partition of the run; starts the staged files' names (a random
            part is added per try).
        stream: The stream's name.
        columns: The stream's columns as :meth:`Column.to_dict` data (``None``: no schema).
        partition: The partition (:meth:`Partition.to_dict`).
        state: The state it resumes from (``None`` for a full read).
        ingest_date: The run's date, for targets partitioned by it.
    """

    job: JobConfig
    run_id: str
    writer_run_id: str
    tag: str
    stream: str | None
    columns: list[dict[str, Any]] | None
    partition: dict[str, Any]
    state: dict[str, Any] | None
    ingest_date: str

    @property
    def name(self) -> str:
        """The partition's name."""
        return str(self.partition["name"])


@dataclass
class PartitionStaged:
    """What a worker staged for one partition: its files, counts, validation and last state.

    Attributes:
        partition: The partition's name.
        files: The staged files (:meth:`ManifestFile.to_dict` entries), for the client to adopt.
        records_read: Records extracted.
        records_written: Records staged.
        batches: Batches with rows.
        state: The partition's last state snapshot (``None`` when it reported none).
        report: What validation found.
        sandbox: The backend the reader ran in.
    """

    partition: str
    files: list[dict[str, Any]] = field(default_factory=list)
    records_read: int = 0
    records_written: int = 0
    batches: int = 0
    state: dict[str, Any] | None = None
    report: ValidationReport = field(default_factory=ValidationReport)
    sandbox: str = ""


PartitionRunner = Callable[[Sequence[PartitionRequest]], Iterable[PartitionStaged]]
"""Runs partition requests somewhere (a cluster) and yields what each staged, as they finish.

It raises the first partition's error (after the retries its executor makes, for a worker
that died); the client then aborts the run.
"""


def can_stage_remotely(job: JobConfig) -> tuple[bool, str]:
    """Whether this job's partitions can be staged on other machines, and why not.

    Returns:
        ``(True, "")``, or ``(False, reason)``.
    """
    if job.target.plugin != "parquet":
        return False, f"target {job.target.plugin!r} is not the built-in parquet writer"
    if job.validation == "quarantine":
        return False, "validation: quarantine writes a second dataset"
    return True, ""


def stage_partition(request: PartitionRequest, *, policy: OperatorPolicy | None = None) -> PartitionStaged:
    """Extract, validate and stage one partition into the client's writer run (on a cluster worker).

    Args:
        request: The partition and where its files go.
        policy: This machine's operator policy (its own by default).

    Returns:
        What was staged, for the client to adopt and commit.

    Raises:
        DativoError: Whatever failed; this partition's staged files are deleted then.
    """
    job = request.job
    ok, why = can_stage_remotely(job)
    if not ok:
        raise ConfigurationError(f"partition {request.name!r} cannot be staged on a cluster worker: {why}")
    columns = None if request.columns is None else [Column.from_dict(c) for c in request.columns]
    schema = arrow_schema_for(columns) if columns is not None else None
    staged = PartitionStaged(request.name)
    reader, staged.sandbox = open_reader_session(job, policy=policy)
    with contextlib.ExitStack() as stack:
        stack.callback(close_quietly, reader, "source")
        config = job.target_config()
        for key, value in run_context(
            job, writer_run_id=request.writer_run_id, ingest_date=request.ingest_date
        ).items():
            config.setdefault(key, value)
        writer = ParquetWriter(config, schema=writer_columns(columns, job.validation))
        # A partition run again (its first worker presumed dead, maybe still writing) stages
        # files of other names: only the copy the client adopts is committed.
        writer.join_run(request.writer_run_id, f"{request.tag}-{secrets.token_hex(4)}")
        stack.callback(writer.close)
        validator = BatchValidator(schema, job.validation, run_id=request.run_id)
        try:
            for index, extracted in enumerate(_extract(reader, request, schema)):
                if extracted.state is not None:
                    staged.state = extracted.state
                rows = extracted.data.num_rows
                if not rows:
                    continue
                checked = validator.validate(extracted.data)
                if checked.valid.num_rows:
                    writer.write_batch(checked.valid, index)
                staged.records_read += rows
                staged.records_written += checked.valid.num_rows
                staged.batches += 1
            staged.files = writer.staged_files()
        except BaseException:
            writer.abort()
            raise
        staged.report = validator.report
    return staged


def _extract(reader: Any, request: PartitionRequest, schema: Any) -> Iterator[Any]:
    yield from reader.extract(
        stream=request.stream,
        state=request.state,
        schema=schema,
        partition=Partition.from_dict(request.partition),
    )
