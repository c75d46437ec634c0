"""``dativo-run singer-tap``: a job's source as a Singer tap, writing Singer messages.

The source runs exactly as ``run`` runs it: the same reader session (its sandbox, limits
and mounts), the same stream choice, the same validation of each batch against the job's
schema. What ``run`` hands to the target is written instead as Singer messages on one
binary stream (stdout); nothing is committed and no state is saved:

- ``SCHEMA`` once, before the records: the stream's JSON Schema
  (:mod:`._singer_json`), ``key_properties`` from the discovered primary key and
  ``bookmark_properties`` from the cursor of an incremental job;
- ``RECORD`` for each row, with the batch's ``time_extracted``;
- ``STATE`` (incremental jobs) whenever the reader's state changes, written *before* the
  records of the batch it arrived with: a reader's snapshot covers the batches before
  it only (see :class:`~dativo_runtime._sandbox.ExtractedBatch`), so a target that saves
  a ``STATE`` after the records before it never skips a record. The value is
  ``{"bookmarks": {STREAM: <the reader's state>}}`` with the rest of the ``--state``
  value kept; the last one is written at the end whatever happened before.

Validation follows the job's ``validation``: ``strict`` fails on the first invalid record
(exit 65), ``warn`` writes invalid values as null, ``quarantine`` leaves invalid records
out (counted in the summary; no quarantine dataset is written).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import yaml

from dativo_plugin_sdk import ConfigurationError, DiscoveredStream, PluginError
from dativo_plugin_sdk._arrow import arrow_schema_for
from dativo_runtime._engine._preflight import check_incremental_support
from dativo_runtime._engine._retry import RetryPolicy
from dativo_runtime._engine._sessions import close_quietly, open_reader_session, resolve_stream
from dativo_runtime._engine._singer_catalog import (
    SingerStream,
    StreamSelection,
    catalog_entry,
    state_value,
    stream_selection,
    stream_state,
    with_stream_state,
)
from dativo_runtime._engine._singer_json import RecordEncoder, rfc3339
from dativo_runtime._engine._validation import BatchValidator
from dativo_runtime._jobs._model import JobConfig, load_job, parse_job
from dativo_runtime._sandbox import ReaderSession
from dativo_runtime._sandbox._policy import OperatorPolicy

__all__ = [
    "TAP_SETTINGS_SCHEMA",
    "SingerTapSummary",
    "load_tap_job",
    "singer_catalog",
    "write_singer_messages",
]

log = logging.getLogger("dativo.singer_tap")

TAP_SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "job": {
            "type": ["string", "object"],
            "description": "The Dativo job file whose source is the tap (relative to the working directory), "
            "or the job itself as an object.",
        }
    },
    "required": ["job"],
    "additionalProperties": False,
}
"""The JSON config a Singer runner (Meltano) may pass as ``--config`` instead of a job file."""


def _dumps(message: Mapping[str, Any]) -> bytes:
    return (json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()


def load_tap_job(path: Path, *, cwd: Path | None = None) -> JobConfig:
    """Load what ``singer-tap --config`` names: a job file, or a tap config pointing at one.

    A Singer runner such as Meltano passes ``--config`` with a JSON file of the tap's
    settings. A file holding an object with a ``job`` key and no ``source`` is such a
    config (:data:`TAP_SETTINGS_SCHEMA`): ``job`` is the job file's path (relative to the
    working directory, where Meltano runs its taps) or the job itself. Any other file is
    a job file (YAML, or JSON, which YAML reads too).

    Args:
        path: The ``--config`` file.
        cwd: The folder a relative ``job`` is resolved against; the working directory by default.

    Returns:
        The job.

    Raises:
        ConfigurationError: If the file, the config or the job is invalid.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return load_job(path)  # Its messages say what is wrong with the file.
    if not (isinstance(data, Mapping) and "job" in data and "source" not in data):
        return load_job(path)
    unknown = sorted(str(key) for key in data if key != "job")
    if unknown:
        raise ConfigurationError(
            f"{path}: a singer-tap config takes only 'job' (the job file, or the job itself); "
            f"unknown key(s): {', '.join(unknown)}",
            details={"file": str(path), "option": "--config", "unknown": unknown},
        )
    folder = (cwd or Path.cwd()).resolve()
    job = data["job"]
    if isinstance(job, str) and job.strip():
        file = Path(job).expanduser()
        return load_job(file if file.is_absolute() else folder / file)
    if isinstance(job, Mapping):
        return parse_job(dict(job), base_dir=folder)
    raise ConfigurationError(
        f"{path}: 'job' must be the path of a job file or a job object, not {job!r}",
        details={"file": str(path), "option": "--config", "field": "job"},
    )


@dataclass
class SingerTapSummary:
    """What one ``singer-tap`` run wrote.

    Attributes:
        stream: The Singer stream (``tap_stream_id``).
        selected: Whether the catalog selected it (nothing is written when it did not).
        records: ``RECORD`` messages written.
        batches: Batches read from the source.
        states: ``STATE`` messages written.
        invalid: Invalid records (left out under ``quarantine``, nulled under ``warn``).
        sandbox: The backend the source ran in.
        state: The last state value written.
    """

    stream: str = ""
    selected: bool = True
    records: int = 0
    batches: int = 0
    states: int = 0
    invalid: int = 0
    sandbox: str = ""
    state: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON data."""
        return {
            "stream": self.stream,
            "selected": self.selected,
            "records": self.records,
            "batches": self.batches,
            "states": self.states,
            "invalid": self.invalid,
            "sandbox": self.sandbox,
        }


def _open(
    job: JobConfig, policy: OperatorPolicy | None
) -> tuple[ReaderSession, str, SingerStream, str | None]:
    """Open the source and choose its stream as ``run`` does; the caller closes the session."""
    reader, backend = open_reader_session(job, policy=policy)
    try:
        check_incremental_support(job, reader.info)
        name, columns, discovered = resolve_stream(job, reader, retry=RetryPolicy.from_spec(job.retry))
        stream = _singer_stream(job, name, columns, discovered)
    except BaseException:
        close_quietly(reader, "source")
        raise
    return reader, backend, stream, name


def _singer_stream(
    job: JobConfig, name: str | None, columns: Any, discovered: DiscoveredStream | None
) -> SingerStream:
    incremental = job.source.incremental
    cursor = (incremental.cursor_field if incremental is not None else None) or (
        discovered.cursor_field if discovered is not None else None
    )
    return SingerStream(
        # Not the discovered name: adding a schema to the job (which skips discovery) must not
        # rename the stream, nor move its bookmark.
        tap_stream_id=job.source.stream or job.name,
        schema=arrow_schema_for(columns) if columns is not None else None,
        key_properties=tuple(discovered.primary_key) if discovered is not None else (),
        replication_key=cursor,
        incremental=incremental is not None,
    )


def singer_catalog(job: JobConfig, *, policy: OperatorPolicy | None = None) -> dict[str, Any]:
    """The Singer catalog of the job's source: the one stream the job reads (``--discover``).

    Args:
        job: The job.
        policy: The operator's sandbox policy.

    Returns:
        ``{"streams": [entry]}`` (see :func:`~._singer_catalog.catalog_entry`).

    Raises:
        DativoError: What ``run`` would fail with before reading (loading, discovery,
            stream choice).
    """
    reader, _, stream, _ = _open(job, policy)
    try:
        if stream.schema is None:
            log.warning(
                "%s: the source discovers no columns and the job has no schema; the catalog's schema is "
                "any object (give the job a schema to describe the stream)",
                job.display_name,
            )
        # What the records will be: under ``warn`` every column may be null.
        output = BatchValidator(stream.schema, job.validation).output_schema
        return {"streams": [catalog_entry(replace(stream, schema=output))]}
    finally:
        close_quietly(reader, "source")


class _MessageWriter:
    """Writes one stream's Singer messages to a binary stream."""

    def __init__(self, out: BinaryIO, stream: SingerStream, selection: StreamSelection) -> None:
        self.out = out
        self.stream = stream
        self.selection = selection
        self.encoder: RecordEncoder | None = None
        self.columns: list[str] = []

    def write(self, data: bytes | memoryview) -> None:
        try:
            self.out.write(data)
        except BrokenPipeError:
            raise PluginError(
                "stdout was closed before every Singer message was written (the target stopped reading)",
                error_code="SINGER_OUTPUT_CLOSED",
            ) from None

    def flush(self) -> None:
        try:
            self.out.flush()
        except BrokenPipeError:
            raise PluginError(
                "stdout was closed before every Singer message was written (the target stopped reading)",
                error_code="SINGER_OUTPUT_CLOSED",
            ) from None

    def schema(self, schema: pa.Schema) -> None:
        """Write ``SCHEMA`` for the batches of ``schema`` (deselected fields left out)."""
        self.columns = [n for n in schema.names if n not in self.selection.deselected_fields]
        projected = pa.schema([schema.field(n) for n in self.columns])
        self.encoder = RecordEncoder(self.stream.tap_stream_id, projected)
        described = SingerStream(
            self.stream.tap_stream_id,
            projected,
            tuple(k for k in self.stream.key_properties if k in self.columns),
            self.stream.replication_key,
            self.stream.incremental,
        )
        message: dict[str, Any] = {
            "type": "SCHEMA",
            "stream": described.tap_stream_id,
            "schema": described.json_schema(),
            "key_properties": list(described.key_properties),
        }
        if described.bookmark_properties:
            message["bookmark_properties"] = described.bookmark_properties
        self.write(_dumps(message))

    def records(self, batch: pa.RecordBatch, time_extracted: str) -> None:
        assert self.encoder is not None
        if batch.schema.names != self.columns:
            batch = batch.select(self.columns)
        for chunk in self.encoder.encode(batch, time_extracted):
            self.write(chunk)

    def state(self, value: Mapping[str, Any]) -> None:
        self.write(_dumps({"type": "STATE", "value": value}))
        self.flush()


def write_singer_messages(
    job: JobConfig,
    out: BinaryIO,
    *,
    state: Any = None,
    catalog: Any = None,
    policy: OperatorPolicy | None = None,
    now: Callable[[], dt.datetime] | None = None,
) -> SingerTapSummary:
    """Run the job's source and write its stream as Singer messages to ``out``.

    Args:
        job: The job.
        out: A binary stream (stdout's buffer); only Singer messages are written to it.
        state: The parsed ``--state`` document (see :func:`~._singer_catalog.state_value`);
            its ``bookmarks[STREAM]`` is the reader's saved state. Used only when the job
            is incremental and the catalog does not ask for ``FULL_TABLE``.
        catalog: The parsed ``--catalog`` document; ``None`` selects the stream. A
            catalog that does not select the job's stream makes the run write nothing.
        policy: The operator's sandbox policy.
        now: The clock for ``time_extracted`` (UTC ``datetime.now`` by default).

    Returns:
        What was written.

    Raises:
        DativoError: What ``run`` would fail with, before or while reading
            (``ValidationError`` in strict mode); ``PluginError`` when ``out`` is closed.
    """
    value_in = state_value(state)
    reader, backend, stream, name = _open(job, policy)
    summary = SingerTapSummary(stream=stream.tap_stream_id, sandbox=backend)
    try:
        selection = stream_selection(catalog, stream) if catalog is not None else StreamSelection()
        if not selection.selected:
            summary.selected = False
            log.warning(
                "the catalog does not select stream %r, the one this job reads: no messages written",
                stream.tap_stream_id,
            )
            return summary
        tap = _TapRun(job, stream, _MessageWriter(out, stream, selection), summary, value_in)
        tap.extract(reader, name, _state_in(job, stream, selection, value_in), now or _utc_now)
    finally:
        close_quietly(reader, "source")
    log.info(
        "singer-tap: %d record(s) of stream %r in %d batch(es), %d state message(s)",
        summary.records,
        summary.stream,
        summary.batches,
        summary.states,
    )
    return summary


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _state_in(
    job: JobConfig, stream: SingerStream, selection: StreamSelection, value: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The reader's state to resume from: the stream's bookmark, when the job may use it."""
    if not stream.incremental:
        if stream_state(value, stream.tap_stream_id) is not None:
            log.warning(
                "%s is not incremental (no source.incremental): --state is not read", job.display_name
            )
        return None
    if selection.full_table:
        log.info("the catalog asks for FULL_TABLE: reading stream %r from the start", stream.tap_stream_id)
        return {}
    return stream_state(value, stream.tap_stream_id) or {}


@dataclass
class _TapRun:
    """The batch loop of one run: validate each batch, write its ``STATE`` (if changed), then its records."""

    job: JobConfig
    stream: SingerStream
    writer: _MessageWriter
    summary: SingerTapSummary
    value_in: dict[str, Any]

    def _state(self, state: Mapping[str, Any]) -> None:
        self.summary.state = with_stream_state(self.value_in, self.stream.tap_stream_id, state)
        self.writer.state(self.summary.state)
        self.summary.states += 1

    def extract(
        self,
        reader: ReaderSession,
        name: str | None,
        state_in: dict[str, Any] | None,
        now: Callable[[], dt.datetime],
    ) -> None:
        stream, writer, summary = self.stream, self.writer, self.summary
        validator = BatchValidator(stream.schema, self.job.validation)
        if validator.output_schema is not None:
            writer.schema(validator.output_schema)
        last_state = state_in
        try:
            for extracted in reader.extract(stream=name, state=state_in, schema=validator.schema):
                if stream.incremental and extracted.state is not None and extracted.state != last_state:
                    last_state = extracted.state
                    self._state(last_state)
                if extracted.data.num_rows == 0:
                    continue
                time_extracted = rfc3339(now())
                summary.batches += 1
                checked = validator.validate(extracted.data)
                summary.invalid = validator.report.records_invalid
                if writer.encoder is None:
                    assert validator.output_schema is not None
                    writer.schema(validator.output_schema)
                if checked.valid.num_rows:
                    writer.records(checked.valid, time_extracted)
                    summary.records += checked.valid.num_rows
            if stream.incremental and summary.states == 0:
                # Always end with a state: a target echoes it, and a runner saves what it echoes.
                self._state(last_state or {})
            writer.flush()
        finally:
            if validator.report.records_invalid and self.job.validation != "strict":
                left = (
                    "left out"
                    if self.job.validation == "quarantine"
                    else "written with invalid values as null"
                )
                log.warning("%d invalid record(s) %s: %s", summary.invalid, left, validator.report.summary())
