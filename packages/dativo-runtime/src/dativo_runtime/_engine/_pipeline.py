"""Running a job: reader → validation and coercion → writer, then commit, then state.

The pipeline talks to plugins only through sandbox sessions, only in Arrow, one batch at
a time, so memory does not grow with the number of records. One run is one commit:

1. take the job's lock (two runs of one job never overlap) and settle what a dead run
   left (its pending state, see :mod:`._state_store`);
2. open the reader and writer sessions, resolve the stream and its schema;
3. extract from the last committed state, validate each batch, write valid rows (and
   quarantine invalid ones), all staged;
4. commit: quarantine first, then record the pending state, then the target's commit
   (for ``parquet``, an atomic run manifest), then save the state.

A retryable failure before the commit aborts the staged files and starts again from the
last committed state, within the job's retry budget.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import (
    Column,
    ConfigurationError,
    DativoError,
    DiscoveredStream,
    SandboxError,
    from_dict,
    is_retryable,
)
from dativo_runtime._arrow_batches import arrow_schema_for
from dativo_runtime._engine._retry import RetryPolicy, call_with_retry
from dativo_runtime._engine._termination import commit_section, raise_if_requested
from dativo_runtime._engine._validation import BatchValidator, ValidationReport
from dativo_runtime._engine._write_behind import WriteBehind
from dativo_runtime._exit_codes import ExitCode, exit_code_for
from dativo_runtime._jobs._model import JobConfig, is_remote_uri
from dativo_runtime._observability._logging import log_context
from dativo_runtime._observability._metrics import JobMetrics, RunMetrics
from dativo_runtime._observability._tracing import Tracing, active_tracing
from dativo_runtime._plugins._ref import PluginInfo, PluginRef
from dativo_runtime._sandbox import ReaderSession, WriterSession, choose_sandbox
from dativo_runtime._sandbox._policy import OperatorPolicy, run_mode
from dativo_runtime._secrets import REDACTOR
from dativo_runtime._storage._backends import open_storage
from dativo_runtime._storage._s3 import S3_OPTION_KEYS
from dativo_runtime._storage._state_store import JobState, PendingCommit, StateStore
from dativo_runtime.connectors._dataset import ParquetDataset, utc_now_iso
from dativo_runtime.connectors._parquet import new_run_id

__all__ = [
    "ProgressEvent",
    "RunResult",
    "open_reader_session",
    "open_writer_session",
    "resolve_stream",
    "run_job",
    "writable_output_dir",
]

log = logging.getLogger("dativo.run")

DEFAULT_STREAM = "default"


@dataclass(frozen=True)
class ProgressEvent:
    """Progress of a run, reported after each batch.

    Attributes:
        records_read: Records extracted so far.
        records_written: Records handed to the writer so far.
        records_invalid: Invalid records so far.
        elapsed_s: Seconds since the run started.
        estimate: The reader's estimate of the total, if it gave one.
    """

    records_read: int
    records_written: int
    records_invalid: int
    elapsed_s: float
    estimate: int | None = None


@dataclass
class RunResult:
    """The outcome of one run of one job (what ``dativo-run run --json`` prints).

    Attributes:
        run_id: The run's id.
        tenant: The job's tenant.
        job: The job's name.
        status: ``succeeded`` or ``failed``.
        exit_code: The process exit code this outcome maps to.
        error: The error that ended a failed run.
    """

    run_id: str
    tenant: str
    job: str
    job_file: str | None = None
    status: str = "running"
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
    error: DativoError | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the run committed (or had nothing to commit) without error."""
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON data, secrets masked."""
        data = {
            "run_id": self.run_id,
            "tenant": self.tenant,
            "job": self.job,
            "job_file": self.job_file,
            "status": self.status,
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
            "error": None if self.error is None else self.error.to_dict(),
        }
        redacted: dict[str, Any] = REDACTOR.redact(data)
        return redacted


def _in_role(exc: DativoError, role: str, job: JobConfig) -> DativoError:
    """Say which side of which job a configuration error is about (``source.config.path``).

    Errors about a job-level setting (``details["setting"]``, such as ``sandbox.memory``
    from the sandbox policy) name that setting rather than a plugin's config field.
    """
    if not isinstance(exc, ConfigurationError) or exc.details.get("role"):
        return exc
    setting = exc.details.get("setting")
    field_name = exc.details.get("field")
    where = f"{role}.config.{field_name}" if field_name else role
    if setting:
        where = str(setting)
    # The quarantine has no plugin of its own: it is written by the built-in parquet writer.
    plugin = getattr(getattr(job, role, None), "plugin", None) or "parquet"
    data = exc.to_dict()
    data["message"] = f"{job.display_name}: {where} ({plugin}): {exc.message}"
    data["details"] = {**exc.details, "role": role, "file": job.display_name}
    return from_dict(data)


def check_incremental_support(job: JobConfig, info: PluginInfo) -> None:
    """Refuse ``source.incremental`` for a reader that cannot read incrementally (``run`` and ``validate``).

    Raises:
        ConfigurationError: Naming ``source.incremental`` and the reader.
    """
    if job.source.incremental is not None and "incremental" not in info.capabilities:
        raise ConfigurationError(
            f"{job.display_name}: source.incremental is set, but {info.class_name} does not "
            "support incremental reads (supports_incremental is false); remove source.incremental",
            details={"field": "source.incremental", "role": "source"},
        )


def check_plugin_folder(job: JobConfig, ref: PluginRef, *, role: str = "source") -> None:
    """Refuse to mount a sandboxed file plugin's folder when it holds the job's own files.

    A sandbox mounts a file plugin's whole folder read-only (so the plugin can import the
    modules beside it). That folder must therefore not hold what the plugin may not read:
    the job file (and, beside it, the files its ``${file:...}`` secrets come from), the
    job's state, its target or quarantine folder, or the runtime's ``.dativo`` folder.

    Args:
        job: The job.
        ref: The plugin about to run in a sandbox.
        role: ``source``, ``target`` (which may see its own output and quarantine) or ``quarantine``.

    Raises:
        ConfigurationError: Naming the folder, what it holds and how to lay the files out.
    """
    folder = ref.plugin_dir
    if folder is None:
        return
    folder = folder.resolve()
    private: list[tuple[str, Path]] = []
    if job.source_file is not None:
        private.append(("the job file", job.source_file))
        private.append(("the runtime's .dativo folder", job.base_dir / ".dativo"))
    state = job.state_location()
    if not is_remote_uri(state):
        private.append(("the job's state", Path(state)))
    output = job.output_dir()
    if output is not None and role != "target":
        private.append(("the target folder", output))
    quarantine = job.quarantine_location()
    if quarantine is not None and not is_remote_uri(quarantine) and role != "target":
        private.append(("the quarantine dataset", Path(quarantine)))
    for what, path in private:
        resolved = path.resolve()
        if _inside(resolved, folder):
            raise ConfigurationError(
                f"plugin {ref.ref!r} would run sandboxed with its whole folder {str(folder)!r} readable, "
                f"and that folder holds {what} ({str(resolved)!r}); move the plugin (and the modules it "
                "imports) into a folder of its own, such as plugins/ beside the job file, and reference "
                "it from there",
                details={"setting": f"{role}.plugin", "plugin_dir": str(folder), "holds": str(resolved)},
            )


def open_reader_session(job: JobConfig, *, policy: OperatorPolicy | None = None) -> tuple[ReaderSession, str]:
    """Start the job's source plugin in the sandbox the job and the mode call for.

    Returns:
        The session and the name of the backend running it.

    Raises:
        DativoError: Loading, version or sandbox errors (configuration errors name ``source``).
    """
    try:
        ref = job.source_ref()
        limits = job.sandbox.to_limits()
        sandbox = choose_sandbox(job.mode, job.sandbox.backend, ref, policy, limits=limits)
        if sandbox.isolated:
            check_plugin_folder(job, ref)
        return sandbox.open_reader(ref, job.source_config(), limits=limits), sandbox.name
    except DativoError as exc:
        raise _in_role(exc, "source", job) from exc


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def writable_output_dir(job: JobConfig) -> Path | None:
    """Return the one local folder a sandboxed target plugin may write to.

    A sandboxed writer may change anything in that folder, so it may not hold (or lie
    inside) the runtime's own bookkeeping: the job's state, the quarantine dataset, the
    job file, a ``.dativo`` or ``_dativo`` folder.

    Returns:
        The resolved folder, or ``None`` when the target is remote or names no ``path``.

    Raises:
        ConfigurationError: If the folder overlaps the runtime's bookkeeping; the message
            names both and the setting to change (``details["field"]`` is ``path``).
    """
    folder = job.output_dir()
    if folder is None:
        return None
    folder = folder.resolve()
    protected: list[tuple[str, Path, str]] = []
    state = job.state_location()
    if not is_remote_uri(state):
        protected.append(("the job's state", Path(state), "set state.uri to a folder outside it"))
    quarantine = job.quarantine_location()
    if quarantine is not None and not is_remote_uri(quarantine):
        protected.append(
            ("the quarantine dataset", Path(quarantine), "set quarantine.path to a folder outside it")
        )
    fix = "point target.config.path at a folder of its own"
    if job.source_file is not None:
        protected.append(("the job file", job.source_file, "keep job files outside the output folder"))
        protected.append(("the runtime's .dativo folder", job.base_dir / ".dativo", fix))
    if (folder / "_dativo").exists():
        protected.append(("a parquet target's _dativo folder", folder / "_dativo", fix))
    bookkeeping = next((part for part in folder.parts if part in (".dativo", "_dativo")), None)
    if bookkeeping is not None:
        protected.append((f"the runtime's {bookkeeping} folder", folder, fix))
    for what, path, hint in protected:
        resolved = path.resolve()
        if _inside(resolved, folder) or _inside(folder, resolved):
            raise ConfigurationError(
                f"the sandboxed writer may change everything in its output folder {str(folder)!r}, which "
                f"overlaps {what} ({str(resolved)!r}); {hint}, so that the plugin cannot touch the "
                "runtime's bookkeeping",
                details={"field": "path", "output_dir": str(folder), "protected": str(resolved)},
            )
    return folder


def open_writer_session(
    job: JobConfig,
    *,
    config: dict[str, Any] | None = None,
    schema: list[Column] | None = None,
    policy: OperatorPolicy | None = None,
    ref: PluginRef | None = None,
    role: str = "target",
) -> tuple[WriterSession, str]:
    """Start the job's target plugin (or another writer, such as the quarantine's).

    A sandboxed target may write to its ``path`` folder only (see
    :func:`writable_output_dir`); the quarantine writer is the built-in parquet writer
    and gets no folder.

    Returns:
        The session and the name of the backend running it.

    Raises:
        DativoError: Loading, version or sandbox errors (configuration errors name ``target``).
    """
    try:
        writer_ref = ref or job.target_ref()
        limits = job.sandbox.to_limits()
        sandbox = choose_sandbox(job.mode, job.sandbox.backend, writer_ref, policy, limits=limits)
        output_dir = None
        if sandbox.isolated:
            check_plugin_folder(job, writer_ref, role=role)
        if role == "target":
            output_dir = writable_output_dir(job) if sandbox.isolated else job.output_dir()
        session = sandbox.open_writer(
            writer_ref,
            config if config is not None else job.target_config(),
            schema=schema,
            limits=limits,
            output_dir=output_dir,
        )
        return session, sandbox.name
    except DativoError as exc:
        raise _in_role(exc, role, job) from exc


def resolve_stream(
    job: JobConfig,
    reader: ReaderSession,
    *,
    retry: RetryPolicy | None = None,
    tracing: Tracing | None = None,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> tuple[str | None, list[Column] | None, DiscoveredStream | None]:
    """Pick the stream to read and the columns to validate against.

    The job's ``schema`` wins; otherwise the discovered stream's schema when the reader
    discovers one; otherwise ``None`` (the data's own types).

    Returns:
        ``(stream name, columns, discovered stream)``.

    Args:
        job: The job.
        reader: Its source session.
        retry: The budget for retrying ``discover``.
        tracing: Where the ``dativo.discover`` span goes; the active tracing by default.
        on_retry: Called before each retry of ``discover`` (metrics).

    Raises:
        ConfigurationError: If ``source.stream`` names no discovered stream, or the source
            has several streams and the job names none.
    """
    columns = job.columns()
    wanted = job.source.stream
    if columns is not None or "discover" not in reader.info.capabilities:
        return wanted, columns, None
    with (tracing or active_tracing()).discover():
        discovery = call_with_retry(
            reader.discover,
            retry or RetryPolicy(max_attempts=1),
            what="discovering the source",
            on_retry=on_retry,
        )
    streams = discovery.objects
    if not streams:
        return wanted, None, None
    if wanted is not None:
        match = next((s for s in streams if s.name == wanted), None)
        if match is None:
            raise ConfigurationError(
                f"{job.display_name}: source.stream {wanted!r} is not offered by {job.source.plugin!r}; "
                f"available streams: {', '.join(s.name for s in streams)}",
                details={"field": "source.stream", "role": "source", "streams": [s.name for s in streams]},
            )
    elif len(streams) == 1:
        match = streams[0]
    else:
        raise ConfigurationError(
            f"{job.display_name}: the source offers several streams ({', '.join(s.name for s in streams)}); "
            "set source.stream to the one this job reads",
            details={"field": "source.stream", "role": "source", "streams": [s.name for s in streams]},
        )
    return match.name, (list(match.schema) or None), match


def _writer_columns(columns: list[Column] | None, mode: str) -> list[Column] | None:
    if columns is None:
        return None
    if mode != "warn":
        return columns
    # In warn mode an invalid value becomes null, so no column can be declared required.
    return [Column(c.name, c.type, nullable=True, description=c.description) for c in columns]


@dataclass
class _Attempt:
    records_read: int = 0
    records_written: int = 0
    records_quarantined: int = 0
    state: dict[str, Any] | None = None
    commit: dict[str, Any] = field(default_factory=dict)
    quarantine_commit: dict[str, Any] = field(default_factory=dict)
    report: ValidationReport | None = None
    stream: str | None = None
    sandbox: dict[str, str] = field(default_factory=dict)
    attempts: int = 1


class _StageClock:
    """Seconds one attempt spends in each stage, observed once per attempt."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(("extract", "validate", "write"), 0.0)

    @contextlib.contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def observe(self, metrics: JobMetrics, stream: str | None) -> None:
        for stage, seconds in self.seconds.items():
            metrics.observe_stage(stage, seconds, stream=stream)


class _JobRun:
    """One run of one job (all its attempts)."""

    def __init__(
        self,
        job: JobConfig,
        run_id: str,
        *,
        policy: OperatorPolicy | None,
        on_progress: Callable[[ProgressEvent], None] | None,
        sleep: Callable[[float], None],
        metrics: JobMetrics,
        tracing: Tracing,
    ) -> None:
        self.job = job
        self.run_id = run_id
        self.policy = policy
        self.on_progress = on_progress
        self.sleep = sleep
        self.metrics = metrics
        self.tracing = tracing
        self.retry = RetryPolicy.from_spec(job.retry)
        self.started = time.monotonic()
        self.is_parquet = job.target.plugin == "parquet"
        target_config = job.target_config()
        self.target_options = {k: target_config[k] for k in S3_OPTION_KEYS if target_config.get(k)}
        self.store = StateStore(job.state_location(), job.state_storage_options())
        self.ingest_date = time.strftime("%Y-%m-%d", time.gmtime())
        self.last_attempt: _Attempt | None = None

    def _on_retry(self, attempt: int, exc: BaseException, delay: float) -> None:
        """Count an error that is about to be retried (checks, discovery, state writes, runs)."""
        self.metrics.error(exc)
        self.metrics.retry(exc)

    def _with_retry(self, function: Callable[[], Any], what: str) -> Any:
        return call_with_retry(function, self.retry, what=what, sleep=self.sleep, on_retry=self._on_retry)

    # Settling a dead run's pending commit ------------------------------------------

    def _was_committed(self, pending: PendingCommit) -> bool | None:
        if not pending.target or not pending.writer_run_id:
            return None
        dataset = ParquetDataset(open_storage(pending.target, self.target_options))
        return dataset.has_manifest(pending.writer_run_id)

    def settle_pending(self) -> None:
        job = self.job
        pending = self.store.load_pending(job.tenant, job.name)
        if pending is None:
            return
        committed = self._was_committed(pending)
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

    # Sessions ----------------------------------------------------------------------

    def _started(self, session: ReaderSession | WriterSession, backend: str, began: float) -> None:
        """Count a sandbox start and its cold start (in-process sessions are not sandboxes)."""
        if backend != "none":
            cold_start = getattr(session, "startup_seconds", None)
            self.metrics.sandbox_started(
                backend, cold_start if cold_start is not None else time.monotonic() - began
            )

    def _open_reader(self) -> tuple[ReaderSession, str]:
        began = time.monotonic()
        session, backend = open_reader_session(self.job, policy=self.policy)
        self._started(session, backend, began)
        return session, backend

    def _open_writer(self, **options: Any) -> tuple[WriterSession, str]:
        began = time.monotonic()
        session, backend = open_writer_session(self.job, policy=self.policy, **options)
        self._started(session, backend, began)
        return session, backend

    # One attempt -------------------------------------------------------------------

    def _progress(self, attempt: _Attempt, invalid: int, estimate: int | None) -> None:
        if self.on_progress is not None:
            self.on_progress(
                ProgressEvent(
                    records_read=attempt.records_read,
                    records_written=attempt.records_written,
                    records_invalid=invalid,
                    elapsed_s=time.monotonic() - self.started,
                    estimate=estimate,
                )
            )

    def _writer_run_id(self, attempt_number: int, suffix: str = "") -> str:
        base = self.run_id + suffix
        return base if attempt_number == 1 else f"{base}-a{attempt_number}"

    def _quarantine_writer(self, attempt_number: int) -> WriterSession:
        location = self.job.quarantine_location()
        assert location is not None
        config: dict[str, Any] = {
            "path": location,
            "compression": self.job.quarantine.compression if self.job.quarantine else "zstd",
            "run_id": self._writer_run_id(attempt_number, "-q"),
        }
        if location.startswith("s3://"):
            config.update(self.target_options)
        session, _ = self._open_writer(config=config, ref=PluginRef.parse("parquet"), role="quarantine")
        return session

    def _stage_span(
        self, stage: str, sampled: bool, stream: str | None
    ) -> contextlib.AbstractContextManager[Any]:
        return self.tracing.stage(stage, stream=stream) if sampled else contextlib.nullcontext()

    def attempt(self, number: int, saved: JobState) -> _Attempt:
        job = self.job
        outcome = _Attempt(attempts=number)
        self.last_attempt = outcome
        with contextlib.ExitStack() as sessions:
            reader, outcome.sandbox["source"] = self._open_reader()
            sessions.callback(_close_quietly, reader, "source")
            check_incremental_support(job, reader.info)
            stream, columns, _ = resolve_stream(
                job, reader, retry=self.retry, tracing=self.tracing, on_retry=self._on_retry
            )
            outcome.stream = stream
            arrow_schema = arrow_schema_for(columns) if columns is not None else None
            config = job.target_config()
            if self.is_parquet:
                config.setdefault("run_id", self._writer_run_id(number))
                config.setdefault("ingest_date", self.ingest_date)
            writer, outcome.sandbox["target"] = self._open_writer(
                config=config, schema=_writer_columns(columns, job.validation)
            )
            sessions.callback(_close_quietly, writer, "target")
            quarantine: WriterSession | None = None
            validator = BatchValidator(arrow_schema, job.validation, run_id=self.run_id)
            outcome.report = validator.report
            # Keyed by what the job names, not by what discovery finds, so that adding or
            # removing a job schema (which skips discovery) never loses the state.
            state_key = job.source.stream or DEFAULT_STREAM
            state_in = saved.streams.get(state_key, {}) if job.source.incremental is not None else None
            metadata: list[dict[str, Any]] = []
            quarantine_metadata: list[dict[str, Any]] = []
            committed = False
            clock = _StageClock()
            # The target writes behind the reader on a thread of its own (see WriteBehind).
            # A traced run writes inline, so each batch's write span holds its write.
            behind = WriteBehind() if writer.concurrent_writes and not self.tracing.enabled else None
            try:
                estimate = reader.estimate()
                counter = 0
                with self.tracing.stage("extract", stream=stream):
                    batches = iter(reader.extract(stream=stream, state=state_in, schema=arrow_schema))
                    while True:
                        with clock.timing("extract"):
                            extracted = next(batches, None)
                        if extracted is None:
                            break
                        if extracted.state is not None:
                            outcome.state = extracted.state
                        rows = extracted.data.num_rows
                        if rows == 0:
                            continue
                        outcome.records_read += rows
                        self.metrics.batch(stream, records_read=rows)
                        sampled = self.tracing.enabled and self.tracing.batch_sampled(counter)
                        with self.tracing.batch(counter, stream=stream, records=rows):
                            with self._stage_span("validate", sampled, stream), clock.timing("validate"):
                                checked = validator.validate(extracted.data)
                            with self._stage_span("write", sampled, stream), clock.timing("write"):
                                if checked.quarantine is not None and checked.quarantine.num_rows:
                                    if quarantine is None:
                                        quarantine = self._quarantine_writer(number)
                                        sessions.callback(_close_quietly, quarantine, "quarantine")
                                    quarantine_metadata += quarantine.write_batch(checked.quarantine, counter)
                                    outcome.records_quarantined += checked.quarantine.num_rows
                                if checked.valid.num_rows:
                                    if behind is None:
                                        metadata += writer.write_batch(checked.valid, counter)
                                    else:
                                        behind.submit(_write_call(writer, checked.valid, counter, metadata))
                                    outcome.records_written += checked.valid.num_rows
                        counter += 1
                        self._progress(outcome, validator.report.records_invalid, estimate)
                if behind is not None:
                    with clock.timing("write"):
                        behind.finish()
                if validator.report.dropped_columns:
                    log.warning(
                        "column(s) %s are not in the schema and were not written",
                        ", ".join(sorted(validator.report.dropped_columns)),
                    )
                with (
                    self.tracing.commit(stream=stream),
                    self.metrics.time_stage("commit", stream=stream),
                    commit_section(),
                ):
                    if quarantine is not None:
                        outcome.quarantine_commit = quarantine.commit_files(quarantine_metadata)
                    committed = self._commit(
                        writer=writer,
                        metadata=metadata,
                        outcome=outcome,
                        saved=saved,
                        state_key=state_key,
                        number=number,
                    )
                self.metrics.records_written(
                    outcome.records_written,
                    stream=stream,
                    bytes_written=int(outcome.commit.get("bytes") or 0),
                )
                self.metrics.records_quarantined(outcome.records_quarantined, stream=stream)
            except BaseException:
                if behind is not None:
                    behind.stop()  # No write may run while the staged files are discarded.
                if not committed:
                    for session, role in ((writer, "target"), (quarantine, "quarantine")):
                        if session is not None:
                            _abort_quietly(session, role)
                raise
            finally:
                clock.observe(self.metrics, stream)
        return outcome

    def _commit(
        self,
        *,
        writer: WriterSession,
        metadata: list[dict[str, Any]],
        outcome: _Attempt,
        saved: JobState,
        state_key: str,
        number: int,
    ) -> bool:
        job = self.job
        new_state: JobState | None = None
        if job.source.incremental is not None:
            streams = dict(saved.streams)
            streams[state_key] = dict(outcome.state or saved.streams.get(state_key, {}))
            new_state = JobState(streams=streams, run_id=self.run_id, updated_at=utc_now_iso())
            pending = PendingCommit(
                run_id=self.run_id,
                writer_run_id=self._writer_run_id(number) if self.is_parquet else None,
                target=job.target_location(),
                state=new_state,
            )
            self._with_retry(
                lambda: self.store.save_pending(job.tenant, job.name, pending), "recording the pending state"
            )
        try:
            outcome.commit = writer.commit_files(metadata)
        except DativoError:
            # The commit point may have passed before the failure (manifest written,
            # publishing interrupted). If it did, the run is committed: keep going, and
            # never retry it (that would commit its records twice).
            committed = False
            if self.is_parquet:
                probe = PendingCommit(
                    self.run_id, self._writer_run_id(number), job.target_location(), JobState()
                )
                with contextlib.suppress(DativoError):
                    committed = bool(self._was_committed(probe))
            if not committed:
                if new_state is not None:
                    with contextlib.suppress(DativoError):
                        self.store.clear_pending(job.tenant, job.name)
                raise
            log.warning(
                "the commit failed after its commit point; the run is committed and the next run "
                "finishes publishing its files"
            )
            outcome.commit = {
                "files_committed": None,
                "note": "publishing interrupted; finished by the next run",
            }
        if new_state is not None:
            self._with_retry(lambda: self.store.save(job.tenant, job.name, new_state), "saving the state")
            self._with_retry(
                lambda: self.store.clear_pending(job.tenant, job.name), "clearing the pending state"
            )
            outcome.state = new_state.streams.get(state_key)
        return True

    # The whole run -----------------------------------------------------------------

    def run(self) -> _Attempt:
        job = self.job
        with contextlib.ExitStack() as stack:
            lease = self.store.lock(job.tenant, job.name, owner=self.run_id)
            stack.callback(lease.release)
            self.settle_pending()
            saved = (
                self.store.load(job.tenant, job.name) if job.source.incremental is not None else JobState()
            )
            number = 1
            while True:
                try:
                    outcome = self.attempt(number, saved)
                    outcome.attempts = number
                    break
                except DativoError as exc:
                    if isinstance(exc, SandboxError):
                        self.metrics.sandbox_failed(str(exc.details.get("backend") or "unknown"), exc)
                    if not is_retryable(exc) or number >= self.retry.max_attempts:
                        raise
                    delay = self.retry.delay(number, exc)
                    log.warning(
                        "attempt %d of %d failed: %s; retrying from the last committed state in %.2fs",
                        number,
                        self.retry.max_attempts,
                        exc,
                        delay,
                        extra={"attempt": number, "error_code": exc.error_code, "delay_s": round(delay, 3)},
                    )
                    self._on_retry(number, exc, delay)
                    raise_if_requested()
                    self.sleep(delay)
                    number += 1
            return outcome


def _write_call(
    writer: WriterSession, data: Any, counter: int, metadata: list[dict[str, Any]]
) -> Callable[[], None]:
    """A write for :class:`WriteBehind`: the batch to the target, its file metadata kept in order."""

    def write() -> None:
        metadata.extend(writer.write_batch(data, counter))

    return write


def _close_quietly(session: ReaderSession | WriterSession, role: str) -> None:
    try:
        session.close()
    except Exception as exc:
        log.warning("closing the %s plugin failed: %s", role, exc)


def _abort_quietly(session: WriterSession, role: str) -> None:
    try:
        session.abort()
    except Exception as exc:
        log.warning("discarding the %s's staged files failed: %s (the next run cleans them up)", role, exc)


def _fill_success(result: RunResult, outcome: _Attempt, job: JobConfig) -> None:
    result.status = "succeeded"
    result.attempts = outcome.attempts
    result.stream = outcome.stream
    result.records_read = outcome.records_read
    result.records_written = outcome.records_written
    result.records_quarantined = outcome.records_quarantined
    result.commit = outcome.commit
    result.files = [str(p) for p in outcome.commit.get("paths") or []]
    result.bytes_written = int(outcome.commit.get("bytes") or 0)
    result.manifest = outcome.commit.get("manifest")
    result.state = outcome.state if job.source.incremental is not None else None
    result.sandbox = outcome.sandbox
    if outcome.report is not None:
        result.validation = outcome.report.to_dict()
        result.records_invalid = outcome.report.records_invalid
    if outcome.quarantine_commit:
        result.quarantine_output = job.quarantine_location()


def _fill_failure(result: RunResult, error: DativoError, last: _Attempt | None) -> None:
    if last is not None:
        # What the failed attempt got through before it failed (nothing of it is committed).
        result.records_read = last.records_read
        result.stream = last.stream
        result.sandbox = last.sandbox
        result.attempts = last.attempts
    result.status = "failed"
    result.exit_code = exit_code_for(error)
    validation = error.details.get("validation")
    if isinstance(validation, dict):
        result.validation = validation
        result.records_invalid = int(validation.get("records_invalid", 0))
    result.attempts = max(result.attempts, 1)


def run_job(
    job: JobConfig,
    *,
    run_id: str | None = None,
    policy: OperatorPolicy | None = None,
    on_progress: Callable[[ProgressEvent], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    metrics: RunMetrics | None = None,
    tracing: Tracing | None = None,
) -> RunResult:
    """Run one job to completion: extract, validate, write, commit, save state.

    Never raises for a failed run: the returned :class:`RunResult` says ``failed``, holds
    the error and the exit code it maps to. A ``SystemExit`` or ``KeyboardInterrupt``
    (``SIGTERM``, Ctrl-C) aborts the run, nothing committed, is counted as ``aborted``
    and propagates.

    Args:
        job: The validated job (from :func:`load_job`).
        run_id: The run's id; a new time-ordered one by default.
        policy: The operator's sandbox policy.
        on_progress: Called after each batch with a :class:`ProgressEvent`.
        sleep: How to wait between retries (tests pass a fake).
        metrics: Where the run's Prometheus metrics go (a private registry by default).
        tracing: Where its spans go; the process's active tracing (off unless the
            ``OTEL_*`` variables ask for it) by default.

    Returns:
        The run's :class:`RunResult`.
    """
    run_id = run_id or new_run_id()
    job_metrics = (metrics or RunMetrics()).for_job(job.tenant, job.name)
    tracing = tracing or active_tracing()
    result = RunResult(
        run_id=run_id,
        tenant=job.tenant,
        job=job.name,
        job_file=str(job.source_file) if job.source_file else None,
        started_at=utc_now_iso(),
        source=job.source.plugin,
        target=job.target.plugin,
        output=job.target_location(),
    )
    started = time.monotonic()
    job_metrics.run_started()
    mode = run_mode(job.mode, policy)
    with (
        log_context(tenant=job.tenant, job=job.name, run_id=run_id),
        tracing.run(
            tenant=job.tenant,
            job=job.name,
            run_id=run_id,
            **{
                "dativo.source": job.source.plugin,
                "dativo.target": job.target.plugin,
                "dativo.mode": mode,
            },
        ) as span,
    ):
        log.info(
            "run started: %s -> %s",
            job.source.plugin,
            job.target.plugin,
            extra={"job_file": result.job_file, "mode": mode},
        )
        execution: _JobRun | None = None
        try:
            execution = _JobRun(
                job,
                run_id,
                policy=policy,
                on_progress=on_progress,
                sleep=sleep,
                metrics=job_metrics,
                tracing=tracing,
            )
            result.state_uri = execution.store.uri(job.tenant, job.name)
            outcome = execution.run()
        except DativoError as exc:
            result.error = exc
        except Exception as exc:  # A bug, here or in a library: report it, do not crash the caller.
            log.debug("unexpected error", exc_info=True)
            result.error = DativoError(
                f"internal error: {type(exc).__name__}: {exc}",
                error_code="INTERNAL_ERROR",
                details={"exception_type": type(exc).__name__},
            )
        except BaseException:
            job_metrics.run_finished("aborted", time.monotonic() - started)
            log.warning("run aborted: nothing of it was committed", extra={"status": "aborted"})
            raise
        else:
            _fill_success(result, outcome, job)
        if result.error is not None:
            _fill_failure(result, result.error, execution.last_attempt if execution is not None else None)
            job_metrics.error(result.error)
            span.record_error(result.error)
        result.finished_at = utc_now_iso()
        result.duration_s = time.monotonic() - started
        job_metrics.run_finished("success" if result.succeeded else "failed", result.duration_s)
        span.set_attribute("dativo.status", result.status)
        span.set_attribute("dativo.records_read", result.records_read)
        span.set_attribute("dativo.records_written", result.records_written)
        if result.succeeded:
            log.info(
                "run succeeded: %d read, %d written, %d invalid, %d file(s)",
                result.records_read,
                result.records_written,
                result.records_invalid,
                len(result.files),
                extra={
                    "records_read": result.records_read,
                    "records_written": result.records_written,
                    "duration_s": round(result.duration_s, 3),
                },
            )
        else:
            assert result.error is not None
            log.error(
                "run failed: %s",
                result.error.message,
                extra={"error_code": result.error.error_code, "exit_code": int(result.exit_code)},
            )
    return result
