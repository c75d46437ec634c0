"""One attempt of a run: the preflight, the batch loop (extract, validate, write), then the commit.

Everything an attempt writes is staged until the commit (:mod:`._commit`); an attempt
that fails before it discards its staged files (``abort``), so the next attempt starts
again from the last committed state.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dativo_plugin_sdk import Column, ConfigurationError, DativoError, Partition
from dativo_plugin_sdk._arrow import arrow_schema_for
from dativo_runtime._engine._commit import (
    CommitProtocol,
    CommittedFiles,
    StagedRun,
    committed_files_of,
    run_context,
    target_storage_options,
)
from dativo_runtime._engine._observer import RunObserver, StageClock
from dativo_runtime._engine._partition_state_budget import PartitionStateBudget
from dativo_runtime._engine._partition_task import (
    PartitionRequest,
    PartitionRunner,
    can_stage_remotely,
)
from dativo_runtime._engine._partitioned import PartitionCounts, PartitionedExtraction
from dativo_runtime._engine._preflight import Preflight
from dativo_runtime._engine._sessions import (
    QUARANTINE_WRITER,
    abort_quietly,
    close_quietly,
    open_writer_session,
)
from dativo_runtime._engine._termination import commit_section
from dativo_runtime._engine._validation import BatchValidator, ValidationReport
from dativo_runtime._engine._write_behind import WriteBehind
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox import ExtractedBatch, ReaderSession, WriterSession
from dativo_runtime._storage._state_store import JobState
from dativo_runtime.connectors._parquet import ParquetWriter

__all__ = ["Attempt", "AttemptOutcome", "ProgressEvent"]

log = logging.getLogger("dativo.run")

DEFAULT_STREAM = "default"
"""The state key of a job that names no stream."""


@dataclass(frozen=True)
class ProgressEvent:
    """Progress of a run, reported after each batch.

    Attributes:
        records_read: Records extracted so far.
        records_written: Records handed to the writer so far.
        records_invalid: Invalid records so far.
        elapsed_s: Seconds since the run started.
        estimate: The reader's estimate of the total, if it gave one.
        partitions_done: Partitions extracted to their end (partitioned streams).
        partitions_total: The stream's partitions; 0 when it is read whole.
    """

    records_read: int
    records_written: int
    records_invalid: int
    elapsed_s: float
    estimate: int | None = None
    partitions_done: int = 0
    partitions_total: int = 0


@dataclass
class AttemptOutcome:
    """What one attempt got through (all of it committed when the attempt returns)."""

    attempts: int = 1
    records_read: int = 0
    records_written: int = 0
    records_quarantined: int = 0
    batches: int = 0
    state: dict[str, Any] | None = None
    commit: dict[str, Any] = field(default_factory=dict)
    files: CommittedFiles = field(default_factory=CommittedFiles)
    quarantine_commit: dict[str, Any] = field(default_factory=dict)
    report: ValidationReport | None = None
    stream: str | None = None
    sandbox: dict[str, str] = field(default_factory=dict)
    partitions: dict[str, PartitionCounts] | None = None


@dataclass
class _Writers:
    """The sessions an attempt writes through and what each returned per batch."""

    target: WriterSession
    quarantine: WriterSession | None = None
    metadata: list[dict[str, Any]] = field(default_factory=list)
    quarantine_metadata: list[dict[str, Any]] = field(default_factory=list)
    behind: WriteBehind | None = None


class Attempt:
    """Attempt ``number`` of run ``run_id``.

    Args:
        job: The job.
        run_id: The run's id.
        number: 1 for the first attempt.
        preflight: The checks before moving data, which also open the sessions.
        commits: Commits the attempt's data and state.
        observer: Where run events go (metrics, spans).
        ingest_date: The run's date, for writers that partition by it.
        on_progress: Called after each batch.
        partition_runner: Stages partitions on other machines (``--executor dask``); this
            machine extracts them when ``None`` or when the job's target cannot be shared.
    """

    def __init__(
        self,
        job: JobConfig,
        run_id: str,
        number: int,
        *,
        preflight: Preflight,
        commits: CommitProtocol,
        observer: RunObserver,
        ingest_date: str,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        partition_runner: PartitionRunner | None = None,
    ) -> None:
        self.job = job
        self.partition_runner = partition_runner
        self.run_id = run_id
        self.number = number
        self.preflight = preflight
        self.commits = commits
        self.observer = observer
        self.ingest_date = ingest_date
        self.on_progress = on_progress
        self.outcome = AttemptOutcome(attempts=number)
        self.state_budget: PartitionStateBudget | None = None

    def writer_run_id(self, suffix: str = "") -> str:
        """The id of this attempt's writer run (``-q`` for the quarantine's)."""
        base = self.run_id + suffix
        return base if self.number == 1 else f"{base}-a{self.number}"

    def run(self, saved: JobState) -> AttemptOutcome:
        """Go through the preflight, move the data, commit.

        Args:
            saved: The last committed state.

        Returns:
            What the attempt did; :attr:`outcome` holds it too, failed or not.

        Raises:
            DativoError: Whatever failed; nothing of the attempt is committed then.
        """
        job = self.job
        outcome = self.outcome
        with contextlib.ExitStack() as sessions:
            reader, outcome.sandbox["source"] = self.preflight.open_source()
            sessions.callback(close_quietly, reader, "source")
            stream = self.preflight.resolve_stream(reader)
            outcome.stream = stream.name
            config = job.target_config()
            for key, value in run_context(
                job,
                writer_run_id=self.writer_run_id(),
                ingest_date=self.ingest_date,
                primary_key=stream.discovered.primary_key if stream.discovered is not None else (),
            ).items():
                config.setdefault(key, value)
            target, outcome.sandbox["target"] = self.preflight.open_target(stream.columns, config=config)
            sessions.callback(close_quietly, target, "target")
            validator = BatchValidator(
                arrow_schema_for(stream.columns) if stream.columns is not None else None,
                job.validation,
                run_id=self.run_id,
            )
            outcome.report = validator.report
            # The target writes behind the reader on a thread of its own (see WriteBehind).
            # A traced run writes inline, so each batch's write span holds its write.
            writers = _Writers(target)
            if target.concurrent_writes and not self.observer.tracing_enabled:
                writers.behind = WriteBehind()
            # Keyed by what the job names, not by what discovery finds, so that adding or
            # removing a job schema (which skips discovery) never loses the state.
            state_key = job.source.stream or DEFAULT_STREAM
            state_in = saved.streams.get(state_key, {}) if job.source.incremental is not None else None
            clock = StageClock()
            committed = False

            def state_of(name: str) -> dict[str, Any] | None:
                """Where partition ``name`` resumes (``None``: a full read)."""
                return saved.state_of_partition(state_key, name) if state_in is not None else None

            try:
                partitions = self._partitions(reader, saved, state_key)
                if partitions is None:
                    self._move(
                        reader,
                        writers=writers,
                        validator=validator,
                        sessions=sessions,
                        clock=clock,
                        stream=stream.name,
                        state_in=state_in,
                    )
                elif self._stages_remotely():
                    self._stage_partitions(
                        partitions,
                        writers=writers,
                        validator=validator,
                        stream=stream.name,
                        columns=stream.columns,
                        state_of=state_of,
                    )
                else:
                    self._move_partitions(
                        reader,
                        partitions,
                        writers=writers,
                        validator=validator,
                        sessions=sessions,
                        clock=clock,
                        stream=stream.name,
                        state_of=state_of,
                    )
                with self.observer.committing(stream.name), commit_section():
                    self._commit(writers, saved, state_key)
                    committed = True
                self.observer.committed(
                    stream.name,
                    written=outcome.records_written,
                    bytes_written=outcome.files.bytes_written,
                    quarantined=outcome.records_quarantined,
                )
            except BaseException:
                if writers.behind is not None:
                    writers.behind.stop()  # No write may run while the staged files are discarded.
                if not committed:
                    abort_quietly(writers.target, "target")
                    if writers.quarantine is not None:
                        abort_quietly(writers.quarantine, "quarantine")
                raise
            finally:
                self.observer.stages_timed(clock, stream.name)
        return outcome

    # The batch loop ----------------------------------------------------------------------

    def _move(
        self,
        reader: ReaderSession,
        *,
        writers: _Writers,
        validator: BatchValidator,
        sessions: contextlib.ExitStack,
        clock: StageClock,
        stream: str | None,
        state_in: dict[str, Any] | None,
    ) -> None:
        """Extract every batch, validate it, hand valid rows to the target and invalid ones to quarantine."""
        outcome = self.outcome
        estimate = reader.estimate()
        with self.observer.extracting(stream):
            batches = iter(reader.extract(stream=stream, state=state_in, schema=validator.schema))
            while True:
                with clock.timing("extract"):
                    extracted = next(batches, None)
                if extracted is None:
                    break
                if extracted.state is not None:
                    outcome.state = extracted.state
                if extracted.data.num_rows:
                    self._take(
                        extracted,
                        writers=writers,
                        validator=validator,
                        sessions=sessions,
                        clock=clock,
                        stream=stream,
                    )
                    self._progress(validator.report.records_invalid, estimate)
        self._finish_writes(writers, validator, clock)

    def _take(
        self,
        extracted: ExtractedBatch,
        *,
        writers: _Writers,
        validator: BatchValidator,
        sessions: contextlib.ExitStack,
        clock: StageClock,
        stream: str | None,
    ) -> int:
        """Validate one batch with rows, write its valid rows; return how many were valid."""
        outcome = self.outcome
        rows = extracted.data.num_rows
        index = outcome.batches
        outcome.records_read += rows
        self.observer.batch_read(stream, rows)
        written = outcome.records_written
        with self.observer.batch(index, stream, rows):
            with self.observer.batch_stage(index, "validate", stream), clock.timing("validate"):
                checked = validator.validate(extracted.data)
            with self.observer.batch_stage(index, "write", stream), clock.timing("write"):
                self._write(checked, index, writers, sessions)
        outcome.batches += 1
        return outcome.records_written - written

    def _finish_writes(self, writers: _Writers, validator: BatchValidator, clock: StageClock) -> None:
        if writers.behind is not None:
            with clock.timing("write"):
                writers.behind.finish()
        if validator.report.dropped_columns:
            log.warning(
                "column(s) %s are not in the schema and were not written",
                ", ".join(sorted(validator.report.dropped_columns)),
            )

    # Partitions ----------------------------------------------------------------------------

    def _partitions(self, reader: ReaderSession, saved: JobState, state_key: str) -> list[Partition] | None:
        """The reader's partitions, or ``None`` when it reads its stream whole.

        A sandboxed reader's partition states are held to what one request can send back
        (:mod:`._partition_state_budget`), starting with the saved ones this request sends.
        """
        incremental = self.job.source.incremental is not None
        if self.outcome.sandbox.get("source", "none") != "none":
            self.state_budget = PartitionStateBudget(
                saved.partition_states(state_key), ref=self.job.source.plugin, stream=state_key
            )
            self.state_budget.check_saved()
        partitions = reader.partitions(saved.partition_states(state_key) if incremental else {})
        if len(partitions) == 1 and partitions[0].is_whole_stream:
            return None
        return partitions

    def _move_partitions(
        self,
        reader: ReaderSession,
        partitions: list[Partition],
        *,
        writers: _Writers,
        validator: BatchValidator,
        sessions: contextlib.ExitStack,
        clock: StageClock,
        stream: str | None,
        state_of: Callable[[str], dict[str, Any] | None],
    ) -> None:
        """Extract the partitions, up to ``source.parallelism`` at once, through one write path."""
        outcome = self.outcome
        outcome.partitions = {p.name: PartitionCounts(p.name) for p in partitions}
        estimate = reader.estimate()
        observer = self.observer

        def ended(name: str, complete: bool) -> None:
            observer.partition_finished(stream, complete=complete)

        extraction = PartitionedExtraction(
            partitions,
            at_once=self.job.source.partitions_at_once(),
            first=reader,
            open_session=self._open_more_source,
            stream=stream,
            schema=validator.schema,
            state_of=state_of,
            on_start=lambda name: observer.partition_started(),
            on_end=ended,
        )
        log.info(
            "reading %d partition(s), %d at once",
            len(partitions),
            extraction.at_once,
            extra={"partitions": len(partitions), "parallelism": extraction.at_once},
        )
        try:
            with self.observer.extracting(stream):
                items = iter(extraction)
                while True:
                    with clock.timing("extract"):
                        item = next(items, None)
                    if item is None:
                        break
                    counts = outcome.partitions[item.partition]
                    if item.batch is None:
                        counts.complete = True
                        self._progress(validator.report.records_invalid, estimate)
                        continue
                    if item.batch.state is not None:
                        self._count_state(item.partition, item.batch.state)
                        counts.state = item.batch.state
                    rows = item.batch.data.num_rows
                    if rows:
                        counts.records_written += self._take(
                            item.batch,
                            writers=writers,
                            validator=validator,
                            sessions=sessions,
                            clock=clock,
                            stream=stream,
                        )
                        counts.records_read += rows
                        counts.batches += 1
                        observer.partition_read(item.partition, stream, rows)
                        self._progress(validator.report.records_invalid, estimate)
        except DativoError as exc:
            exc.details.setdefault("partitions", len(partitions))
            raise
        finally:
            extraction.stop()
            for extra in extraction.extra_sessions():
                sessions.callback(close_quietly, extra, "source")
        self._finish_writes(writers, validator, clock)

    def _stages_remotely(self) -> bool:
        if self.partition_runner is None:
            return False
        ok, why = can_stage_remotely(self.job)
        if not ok:
            log.info("the job's partitions are read on this machine: %s", why)
        return ok

    def _stage_partitions(
        self,
        partitions: list[Partition],
        *,
        writers: _Writers,
        validator: BatchValidator,
        stream: str | None,
        columns: list[Column] | None,
        state_of: Callable[[str], dict[str, Any] | None],
    ) -> None:
        """Have the partition runner stage every partition into this attempt's target run, then adopt them."""
        assert self.partition_runner is not None
        holder = getattr(writers.target, "plugin", None)
        if not isinstance(holder, ParquetWriter):
            raise ConfigurationError("partitions staged on a cluster need the built-in parquet target")
        writer_run_id = holder.begin()  # The run's lease, held here until the commit.
        outcome = self.outcome
        outcome.partitions = {p.name: PartitionCounts(p.name) for p in partitions}
        requests = [
            PartitionRequest(
                job=self.job,
                run_id=self.run_id,
                writer_run_id=writer_run_id,
                tag=f"p{index}",
                stream=stream,
                columns=None if columns is None else [c.to_dict() for c in columns],
                partition=partition.to_dict(),
                state=state_of(partition.name),
                ingest_date=self.ingest_date,
            )
            for index, partition in enumerate(partitions)
        ]
        log.info(
            "staging %d partition(s) on the cluster",
            len(requests),
            extra={"partitions": len(requests), "writer_run_id": writer_run_id},
        )
        with self.observer.extracting(stream):
            for staged in self.partition_runner(requests):
                holder.adopt(staged.files)
                counts = outcome.partitions[staged.partition]
                counts.records_read = staged.records_read
                counts.records_written = staged.records_written
                counts.batches = staged.batches
                if staged.state is not None:
                    self._count_state(staged.partition, staged.state)
                counts.state = staged.state
                counts.complete = True
                outcome.records_read += staged.records_read
                outcome.records_written += staged.records_written
                outcome.batches += staged.batches
                validator.report.add(staged.report)
                self.observer.batch_read(stream, staged.records_read)
                self.observer.partition_read(staged.partition, stream, staged.records_read)
                self.observer.partition_finished(stream, complete=True)
                outcome.sandbox.setdefault("source", staged.sandbox)
                self._progress(validator.report.records_invalid, None)

    def _count_state(self, partition: str, state: dict[str, Any]) -> None:
        """Count a partition's newest state against the stream's budget (a sandboxed reader's)."""
        if self.state_budget is not None:
            self.state_budget.add(partition, state)

    def _open_more_source(self) -> ReaderSession:
        session, _backend = self.preflight.open_source()
        return session

    def _write(self, checked: Any, index: int, writers: _Writers, sessions: contextlib.ExitStack) -> None:
        outcome = self.outcome
        if checked.quarantine is not None and checked.quarantine.num_rows:
            if writers.quarantine is None:
                writers.quarantine = self._quarantine_writer()
                sessions.callback(close_quietly, writers.quarantine, "quarantine")
            writers.quarantine_metadata += writers.quarantine.write_batch(checked.quarantine, index)
            outcome.records_quarantined += checked.quarantine.num_rows
        if checked.valid.num_rows:
            if writers.behind is None:
                writers.metadata += writers.target.write_batch(checked.valid, index)
            else:
                writers.behind.submit(
                    _write_call(writers.target, checked.valid, index, writers.metadata), checked.valid.nbytes
                )
            outcome.records_written += checked.valid.num_rows

    def _quarantine_writer(self) -> WriterSession:
        job = self.job
        location = job.quarantine_location()
        assert location is not None
        config: dict[str, Any] = {
            "path": location,
            "compression": job.quarantine.compression if job.quarantine else "zstd",
            "run_id": self.writer_run_id("-q"),
        }
        if location.startswith("s3://"):
            config.update(target_storage_options(job))
        began = time.monotonic()
        session, backend = open_writer_session(
            job,
            config=config,
            policy=self.preflight.policy,
            ref=PluginRef.parse(QUARANTINE_WRITER),
            role="quarantine",
        )
        self.observer.session_started(session, backend, began)
        return session

    def _progress(self, invalid: int, estimate: int | None) -> None:
        if self.on_progress is not None:
            partitions = self.outcome.partitions or {}
            self.on_progress(
                ProgressEvent(
                    records_read=self.outcome.records_read,
                    records_written=self.outcome.records_written,
                    records_invalid=invalid,
                    elapsed_s=self.observer.elapsed(),
                    estimate=estimate,
                    partitions_done=sum(1 for p in partitions.values() if p.complete),
                    partitions_total=len(partitions),
                )
            )

    # The commit ----------------------------------------------------------------------------

    def _commit(self, writers: _Writers, saved: JobState, state_key: str) -> None:
        """Quarantine first, then the target's data and the state (:meth:`CommitProtocol.commit`)."""
        outcome = self.outcome
        partition_states = (
            None
            if outcome.partitions is None
            else {name: p.state for name, p in outcome.partitions.items() if p.state is not None}
        )
        if partition_states is not None and self.state_budget is not None:
            self.state_budget.check_to_save(partition_states)
        if writers.quarantine is not None:
            outcome.quarantine_commit = writers.quarantine.commit_files(writers.quarantine_metadata)
        staged = StagedRun(
            writer=writers.target,
            metadata=writers.metadata,
            writer_run_id=self.writer_run_id(),
            saved=saved,
            state_key=state_key,
            state=outcome.state,
            partition_states=partition_states,
        )
        self.commits.commit(staged)
        outcome.commit = staged.commit
        outcome.files = committed_files_of(staged.commit, staged.metadata, self.job.output_dir())
        if self.job.source.incremental is not None:
            outcome.state = staged.state


def _write_call(
    writer: WriterSession, data: Any, index: int, metadata: list[dict[str, Any]]
) -> Callable[[], None]:
    """A write for :class:`WriteBehind`: the batch to the target, its file metadata kept in order."""

    def write() -> None:
        metadata.extend(writer.write_batch(data, index))

    return write
