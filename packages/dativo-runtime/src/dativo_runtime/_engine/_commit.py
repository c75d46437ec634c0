"""Where a run commits: the two-phase commit of data and state, and settling a dead run's.

A run's data and its state live in different places (the target, the state store), so
committing both is two steps, made safe by a third record:

1. the state the run is about to commit is saved as *pending* (:class:`PendingCommit`);
2. the target commits its staged files (``commit_files``; for ``parquet``, an atomic run
   manifest: its commit point);
3. the state is saved and the pending record cleared.

A run that dies between 2 and 3 leaves the pending record; the next run of the job
settles it (:meth:`CommitProtocol.settle_pending`) by asking the target's connector
whether that writer run committed (its :attr:`ConnectorSpec.commit_probe`): if it did,
the pending state is saved; if not, it is dropped. A target that cannot tell keeps its
state unsaved (its records may be delivered again), which is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import DativoError
from dativo_runtime._jobs._model import JobConfig
from dativo_runtime._sandbox import WriterSession
from dativo_runtime._storage._s3 import s3_options
from dativo_runtime._storage._state_store import JobState, PendingCommit, StateStore
from dativo_runtime.connectors._dataset import utc_now_iso
from dativo_runtime.connectors._registry import builtin_connector

__all__ = [
    "CommitProtocol",
    "CommittedFiles",
    "StagedRun",
    "committed_files_of",
    "run_context",
    "target_storage_options",
]

log = logging.getLogger("dativo.run")


def target_storage_options(job: JobConfig) -> dict[str, Any]:
    """The storage settings (S3 credentials, endpoint...) the job's target config holds."""
    config = job.target_config()
    return s3_options(config)


@dataclass(frozen=True)
class CommittedFiles:
    """The files a run's target committed and their size, for the run's summary.

    Attributes:
        paths: Each file's location, once, in the order the writer reported it.
        bytes_written: Their total size in bytes.
    """

    paths: list[str] = field(default_factory=list)
    bytes_written: int = 0


def _size(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def committed_files_of(
    commit: Mapping[str, Any], metadata: Sequence[Mapping[str, Any]], output_dir: Path | None
) -> CommittedFiles:
    """What a target committed, from its ``commit_files`` summary, else from its ``write_batch`` metadata.

    The built-in parquet writer's summary lists the final ``paths`` and their ``bytes``; a
    plugin's summary may say nothing of them (the SDK's default is ``files_committed``), so
    the files are the ``path`` of each entry ``write_batch`` returned (relative ones are
    inside the writer's output folder) and their size is each file's last ``size_bytes``.

    Args:
        commit: What ``commit_files`` returned.
        metadata: What ``write_batch`` returned for each batch, in order.
        output_dir: The writer's local output folder, if it has one.

    Returns:
        The committed files and their total size.
    """
    sizes: dict[str, int] = {}
    for entry in metadata:
        path = entry.get("path")
        if not isinstance(path, str) or not path:
            continue
        if output_dir is not None and "://" not in path and not os.path.isabs(path):
            path = str(output_dir / path)
        size = _size(entry.get("size_bytes"))
        sizes[path] = size if size is not None else sizes.get(path, 0)
    paths = commit.get("paths")
    files = [str(p) for p in paths] if isinstance(paths, list) else list(sizes)
    total = _size(commit.get("bytes"))
    return CommittedFiles(files, total if total is not None else sum(sizes.values()))


@dataclass
class StagedRun:
    """What an attempt staged and hands to the commit.

    Attributes:
        writer: The target's session, holding the staged files.
        metadata: What the target returned for each batch, in order.
        writer_run_id: The id the target's writer run uses (its manifest's name).
        saved: The state the attempt started from.
        state_key: The key of the job's stream in the state.
        state: The state the reader reported last, if any.
        partition_states: For a partitioned read, each extracted partition's last state by
            name (``None`` for a read of the whole stream).
        commit: What the target's ``commit_files`` returned, once it did.
    """

    writer: WriterSession
    metadata: list[dict[str, Any]]
    writer_run_id: str
    saved: JobState
    state_key: str
    state: dict[str, Any] | None = None
    partition_states: dict[str, dict[str, Any]] | None = None
    commit: dict[str, Any] = field(default_factory=dict)


class CommitProtocol:
    """Commits a run's data and state, and settles what a dead run left.

    Args:
        job: The job.
        run_id: The run's id.
        store: The job's state store.
        with_retry: Calls a state-store write within the job's retry budget.
    """

    def __init__(
        self,
        job: JobConfig,
        run_id: str,
        store: StateStore,
        *,
        with_retry: Callable[[Callable[[], Any], str], Any],
    ) -> None:
        self.job = job
        self.run_id = run_id
        self.store = store
        self.with_retry = with_retry
        self.connector = builtin_connector(job.target.plugin)

    def _probes_commits(self) -> bool:
        return self.connector is not None and self.connector.commit_probe is not None

    def was_committed(self, location: str | None, writer_run_id: str | None) -> bool | None:
        """Ask the target's connector whether writer run ``writer_run_id`` committed.

        Returns:
            ``True`` or ``False``, or ``None`` when the target cannot tell.
        """
        if not location or not writer_run_id or not self._probes_commits():
            return None
        assert self.connector is not None
        assert self.connector.commit_probe is not None
        return self.connector.commit_probe(location, self.job.target_config(), writer_run_id)

    def settle_pending(self, pending: PendingCommit | None) -> None:
        """Finish or drop what a run that died between its commit and saving its state left."""
        job = self.job
        if pending is None:
            return
        committed = self.was_committed(pending.target, pending.writer_run_id)
        if committed:
            self.store.save(job.tenant, job.name, pending.state)
            log.warning(
                "run %s committed its data but stopped before saving its state; saved that state now",
                pending.run_id,
            )
        elif committed is False:
            log.info("run %s stopped before committing; nothing of it was kept", pending.run_id)
        else:
            log.warning(
                "run %s stopped between its commit and saving its state, and target %r cannot tell "
                "whether it committed; its state was not saved, so its records may be delivered again",
                pending.run_id,
                job.target.plugin,
            )
        self.store.clear_pending(job.tenant, job.name)

    def commit(self, staged: StagedRun) -> None:
        """Commit the staged files, then the state (see the module's three steps).

        On return ``staged.commit`` holds what the target committed and ``staged.state``
        the stream's new state.

        Raises:
            DativoError: If the commit failed before its commit point (nothing committed).
        """
        job = self.job
        new_state: JobState | None = None
        if job.source.incremental is not None:
            new_state = _next_state(staged, self.run_id)
            pending = PendingCommit(
                run_id=self.run_id,
                writer_run_id=staged.writer_run_id if self._probes_commits() else None,
                target=job.target_location(),
                state=new_state,
            )
            self.with_retry(
                lambda: self.store.save_pending(job.tenant, job.name, pending), "recording the pending state"
            )
        try:
            staged.commit = staged.writer.commit_files(staged.metadata)
        except DativoError:
            # The commit point may have passed before the failure (manifest written,
            # publishing interrupted). If it did, the run is committed: keep going, and
            # never retry it (that would commit its records twice).
            committed = False
            with contextlib.suppress(DativoError):
                committed = bool(self.was_committed(job.target_location(), staged.writer_run_id))
            if not committed:
                if new_state is not None:
                    with contextlib.suppress(DativoError):
                        self.store.clear_pending(job.tenant, job.name)
                raise
            log.warning(
                "the commit failed after its commit point; the run is committed and the next run "
                "finishes publishing its files"
            )
            staged.commit = {
                "files_committed": None,
                "paths": [],  # Not known here: the staged files are not the published ones.
                "note": "publishing interrupted; finished by the next run",
            }
        if new_state is not None:
            saved_state = new_state
            self.with_retry(lambda: self.store.save(job.tenant, job.name, saved_state), "saving the state")
            self.with_retry(
                lambda: self.store.clear_pending(job.tenant, job.name), "clearing the pending state"
            )
            if staged.partition_states is None:
                staged.state = new_state.streams.get(staged.state_key)
            else:
                staged.state = {"partitions": new_state.partition_states(staged.state_key)}


def _next_state(staged: StagedRun, run_id: str) -> JobState:
    """The job's state once ``staged`` is committed: the stream's, or each extracted partition's.

    Partitions not extracted by this run keep their state, so a partition that comes back
    later resumes where it was.
    """
    saved = staged.saved
    streams = dict(saved.streams)
    partitions = {key: dict(by_name) for key, by_name in saved.partitions.items()}
    if staged.partition_states is None:
        streams[staged.state_key] = dict(staged.state or saved.streams.get(staged.state_key, {}))
    else:
        merged = partitions.setdefault(staged.state_key, {})
        merged.update({name: dict(values) for name, values in staged.partition_states.items()})
    return JobState(streams=streams, partitions=partitions, run_id=run_id, updated_at=utc_now_iso())


def run_context(
    job: JobConfig, *, writer_run_id: str, ingest_date: str, primary_key: Sequence[str] = ()
) -> Mapping[str, Any]:
    """The run settings the target's connector asks for (its ``run_context``), by key.

    ``primary_key`` (the discovered stream's) is given only when the stream has one.
    """
    connector = builtin_connector(job.target.plugin)
    values: dict[str, Any] = {"run_id": writer_run_id, "ingest_date": ingest_date}
    if primary_key:
        values["primary_key"] = list(primary_key)
    return {key: values[key] for key in (connector.run_context if connector else ()) if key in values}
