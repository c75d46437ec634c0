"""The built-in ``parquet`` writer: Hive-partitioned Parquet on local disk or S3, committed atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dativo_plugin_sdk import (
    BaseWriter,
    Batch,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
    TransientError,
)
from dativo_plugin_sdk._arrow import arrow_schema_for, batch_to_arrow
from dativo_runtime._storage._backends import LocalStorage, Storage, open_storage
from dativo_runtime._storage._locks import Lease, acquire_lease
from dativo_runtime._storage._s3 import is_s3_uri
from dativo_runtime._version import __version__
from dativo_runtime.connectors._check_results import result_from_error
from dativo_runtime.connectors._config_schemas import PARQUET_CONFIG_SCHEMA
from dativo_runtime.connectors._conform import conform_to_schema
from dativo_runtime.connectors._dataset import (
    STAGED_SUFFIX,
    ManifestFile,
    ParquetDataset,
    RunManifest,
    utc_now_iso,
)
from dativo_runtime.connectors._options import ParquetOptions
from dativo_runtime.connectors._partitions import PartitionBuffer, StagedFile, split_by_partition

__all__ = ["ParquetWriter", "new_run_id"]

log = logging.getLogger("dativo.parquet")

_INGEST_DATE = "ingest_date"
_MAX_ROW_GROUP_BYTES = 128 * 1024 * 1024


def new_run_id(now: dt.datetime | None = None) -> str:
    """Return a new run id: UTC start time then random hex, so ids sort by start time.

    Example:
        >>> len(new_run_id(dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)))
        25
    """
    moment = now or dt.datetime.now(dt.timezone.utc)
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


class ParquetWriter(BaseWriter):
    """Write batches as Parquet files to a local folder or an S3 prefix, committed atomically.

    Config keys (see ``docs/connectors.md``): ``path`` (required: a folder or
    ``s3://bucket/prefix``), ``compression`` (``snappy`` default, ``zstd``, ``gzip``, ``lz4``,
    ``brotli``, ``none``), ``compression_level``, ``target_file_size`` (bytes or ``128mb``;
    default 128 MiB), ``row_group_size`` (rows; default 100 000), ``partition_by`` (column
    names), ``partition_by_ingest_date`` (adds ``ingest_date=YYYY-MM-DD/``), ``ingest_date``,
    ``run_id`` (set by the runtime), S3 options ``endpoint_url``, ``region``,
    ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``, and
    ``spool_dir``, ``max_open_files``, ``max_buffer_size``, ``lease_ttl``, ``fsync``;
    :class:`~._options.ParquetOptions` checks them.

    Files are staged under ``{path}/_dativo/staging/{run_id}/`` and published by
    :meth:`commit_files` through a run manifest (see :mod:`._dataset`); nothing is visible
    before that, and :meth:`abort` deletes the staged files.
    """

    __version__ = __version__
    requires_sdk = ">=1.0,<2"
    config_schema = PARQUET_CONFIG_SCHEMA

    def __init__(self, config: Mapping[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__(config, schema)
        self.options = options = ParquetOptions.from_config(config)
        path = options.path
        self.location = path if is_s3_uri(path) else os.path.abspath(os.path.expanduser(path))
        self.compression = options.compression
        self.compression_level = options.compression_level
        self.target_file_size = options.target_file_size
        self.max_buffer_bytes = options.max_buffer_size
        self.row_group_size = options.row_group_size
        self.max_open_files = options.max_open_files
        self.lease_ttl = options.lease_ttl
        self.fsync = options.fsync
        self.partition_by = options.partition_by
        self.partition_by_ingest_date = options.partition_by_ingest_date
        self.ingest_date = options.ingest_date or dt.datetime.now(dt.timezone.utc).date()
        self.run_id = options.run_id or new_run_id()
        self.spool_dir = options.spool_dir
        self.storage_options = dict(options.storage_options)
        self._arrow_schema = arrow_schema_for(schema) if schema else None
        self._file_schema: pa.Schema | None = None
        self._storage: Storage | None = None
        self._dataset: ParquetDataset | None = None
        self._lease: Lease | None = None
        self._buffers: dict[str, PartitionBuffer] = {}
        self._buffered_bytes = 0
        self._open: OrderedDict[str, StagedFile] = OrderedDict()
        self._closed: list[ManifestFile] = []
        self._sequence = 0
        self._finished = False
        self._committed = False
        self._runs = 1
        self._joined_as: str | None = None

    # Storage and session -------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        """The target folder or prefix."""
        if self._storage is None:
            self._storage = open_storage(self.location, self.storage_options, fsync=self.fsync)
        return self._storage

    @property
    def dataset(self) -> ParquetDataset:
        """The target's :class:`ParquetDataset` (manifests, staging, recovery)."""
        if self._dataset is None:
            self._dataset = ParquetDataset(self.storage)
        return self._dataset

    def _start(self) -> None:
        if self._lease is not None or self._joined_as is not None:
            return
        if self._finished:
            # A writer reused after a commit or an abort starts a new run with a new id.
            self._runs += 1
            base = self.options.run_id
            self.run_id = f"{base}-{self._runs}" if base else new_run_id()
            self._file_schema = None
            self._finished = False
        lease = acquire_lease(
            self.storage, ParquetDataset.lease_path(self.run_id), owner=self.run_id, ttl=self.lease_ttl
        )
        if lease is None:
            raise ConfigurationError(
                f"run id {self.run_id!r} is already in use by a live run of {self.location}; "
                "run ids must be unique",
                details={"run_id": self.run_id},
            )
        self._lease = lease
        report = self.dataset.recover(exclude=self.run_id, lease_ttl=self.lease_ttl)
        if report.rolled_forward or report.rolled_back:
            log.info(
                "recovered leftovers in %s: rolled forward %s, rolled back %s",
                self.location,
                report.rolled_forward or "none",
                report.rolled_back or "none",
            )

    def check_connection(self) -> ConnectionTestResult:
        """Check the target folder or bucket is reachable and writable."""
        try:
            self.storage.check_writable()
        except Exception as exc:
            return result_from_error(exc, prefix=f"{self.location}: ")
        return ConnectionTestResult(True, f"{self.location} is writable")

    # Writing -------------------------------------------------------------------------

    def _to_table(self, records: Batch) -> pa.Table:
        batch = batch_to_arrow(records, self._arrow_schema)
        table = pa.Table.from_batches([batch]) if batch.num_rows or batch.num_columns else pa.table({})
        missing = [c for c in self.partition_by if c not in table.column_names and table.num_rows]
        if missing:
            raise ConfigurationError(
                f"partition_by column(s) {missing} are not in the records (columns: {table.column_names})",
                details={"field": "partition_by", "missing": missing},
            )
        if self.partition_by_ingest_date and _INGEST_DATE in table.column_names:
            raise ConfigurationError(
                "records have a column 'ingest_date', which clashes with partition_by_ingest_date; "
                "rename the column or turn partition_by_ingest_date off",
                details={"field": "partition_by_ingest_date"},
            )
        return table

    def _conform(self, table: pa.Table) -> pa.Table:
        """Cast a partition's rows to the file schema (fixed by the schema or the first batch)."""
        data = table.drop_columns([c for c in self.partition_by if c in table.column_names])
        if self._file_schema is None:
            if self._arrow_schema is not None:
                fields = [f for f in self._arrow_schema if f.name not in self.partition_by]
            else:
                fields = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in data.schema]
            self._file_schema = pa.schema(fields)
        return conform_to_schema(data, self._file_schema, owner="the dataset's schema")

    def _split(self, table: pa.Table) -> list[tuple[dict[str, str], pa.Table]]:
        base: dict[str, str] = {}
        if self.partition_by_ingest_date:
            base[_INGEST_DATE] = self.ingest_date.isoformat()
        return split_by_partition(table, self.partition_by, base)

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        """Stage one batch; rows are buffered into row groups of ``row_group_size``.

        Args:
            records: A list of dict records or an Arrow-compatible batch.
            file_counter: The runtime's batch number (file names use the writer's own sequence).

        Returns:
            One entry per partition the batch touched: ``path`` (the staged file receiving
            the rows), ``record_count``, ``size_bytes`` (bytes staged in that file so far)
            and ``partition``.

        Raises:
            ValidationError: If records do not fit the dataset's schema.
            ConfigurationError: If a ``partition_by`` column is missing.
            DativoError: A storage error (``AuthenticationError``, retryable connection errors...).
        """
        del file_counter
        try:
            return self._write(records)
        except OSError as exc:
            raise self._io_error(exc, "stage files") from exc

    def _io_error(self, exc: OSError, action: str) -> DativoError:
        if isinstance(self.storage, LocalStorage):
            return self.storage.error_for(exc, action, "")
        return DativoError(
            f"cannot {action} for {self.location}: {exc}",
            error_code="STORAGE_ERROR",
            details={"path": self.location},
        )

    def _write(self, records: Batch) -> list[dict[str, Any]]:
        self._start()
        table = self._to_table(records)
        if table.num_rows == 0:
            return []
        entries = []
        for values, part in self._split(table):
            rel = "/".join(f"{k}={v}" for k, v in values.items())
            conformed = self._conform(part)
            buffer = self._buffers.get(rel)
            if buffer is None:
                buffer = self._buffers[rel] = PartitionBuffer(rel, values)
            buffer.add(conformed)
            self._buffered_bytes += conformed.nbytes
            while buffer.rows >= self.row_group_size:
                self._flush(buffer, self.row_group_size)
            if buffer.nbytes >= _MAX_ROW_GROUP_BYTES:  # only a very wide row group is cut short
                self._flush(buffer, None)
            handle = self._file_for(rel, values)
            entries.append(
                {
                    "path": self.storage.location(handle.staged),
                    "record_count": conformed.num_rows,
                    "size_bytes": int(handle.sink.tell()),
                    "partition": rel,
                }
            )
        while self._buffered_bytes > self.max_buffer_bytes:
            largest = max(self._buffers.values(), key=lambda b: b.nbytes)
            if largest.rows == 0:
                break
            self._flush(largest, None)
        return entries

    def _file_for(self, rel: str, values: dict[str, str]) -> StagedFile:
        handle = self._open.get(rel)
        if handle is not None:
            self._open.move_to_end(rel)
            return handle
        while len(self._open) >= self.max_open_files:
            _, oldest = next(iter(self._open.items()))
            self._close_file(oldest)
        tag = f"{self._joined_as}-" if self._joined_as is not None else ""
        name = f"part-{self.run_id}-{tag}{self._sequence:05d}.parquet"
        self._sequence += 1
        prefix = ParquetDataset.staging_prefix(self.run_id)
        staged = f"{prefix}/{rel}/{name}{STAGED_SUFFIX}" if rel else f"{prefix}/{name}{STAGED_SUFFIX}"
        if isinstance(self.storage, LocalStorage):
            local_path = self.storage.path(staged)
            local_path.parent.mkdir(parents=True, exist_ok=True)
        else:
            if self.spool_dir:
                Path(self.spool_dir).mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix="dativo-", suffix=".parquet", dir=self.spool_dir)
            os.close(fd)
            local_path = Path(temp)
        assert self._file_schema is not None
        sink = pa.OSFile(str(local_path), "wb")
        writer = pq.ParquetWriter(
            sink,
            self._file_schema,
            compression=self.compression,  # type: ignore[arg-type]
            compression_level=self.compression_level,
            write_statistics=True,
        )
        handle = StagedFile(rel, values, name, staged, local_path, sink, writer)
        self._open[rel] = handle
        return handle

    def _flush(self, buffer: PartitionBuffer, rows: int | None) -> None:
        before = buffer.nbytes
        table = buffer.take(rows)
        self._buffered_bytes -= before - buffer.nbytes
        if table.num_rows == 0:
            return
        handle = self._file_for(buffer.partition, buffer.values)
        handle.writer.write_table(table, row_group_size=table.num_rows)
        handle.rows += table.num_rows
        handle.row_groups += 1
        if handle.sink.tell() >= self.target_file_size:
            self._close_file(handle)

    def _close_file(self, handle: StagedFile) -> None:
        self._open.pop(handle.partition, None)
        handle.writer.close()
        handle.sink.close()
        if handle.rows == 0:
            with contextlib.suppress(OSError):
                handle.local_path.unlink()
            return
        if self.fsync:
            fd = os.open(handle.local_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        size = handle.local_path.stat().st_size
        if not isinstance(self.storage, LocalStorage):
            self.storage.upload(handle.local_path, handle.staged)
        final = f"{handle.partition}/{handle.name}" if handle.partition else handle.name
        self._closed.append(
            ManifestFile(
                path=final,
                staged=handle.staged,
                record_count=handle.rows,
                size_bytes=size,
                row_groups=handle.row_groups,
                partition=dict(handle.values),
            )
        )

    def _flush_all(self) -> None:
        for buffer in list(self._buffers.values()):
            while buffer.rows:
                self._flush(buffer, self.row_group_size)
        self._buffers.clear()
        self._buffered_bytes = 0
        for handle in list(self._open.values()):
            self._close_file(handle)

    # One run staged by several writers (partitions extracted on other machines) ----------

    def begin(self) -> str:
        """Start the run now, taking its lease, so that other writers can :meth:`join_run` it.

        Returns:
            The run's id.
        """
        self._start()
        return self.run_id

    def join_run(self, run_id: str, tag: str) -> None:
        r"""Stage files into run ``run_id``, whose lease the writer that :meth:`begin`\ s it holds.

        This writer never takes a lease, never recovers other runs and never commits: it
        hands its files over with :meth:`staged_files`. Its file names carry ``tag``.

        Args:
            run_id: The run to stage into.
            tag: Unique among the writers joining the run (letters, digits, ``-``).
        """
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", tag):
            raise ValueError(f"join tag {tag!r} must be 1 to 64 letters, digits or '-'")
        self.run_id = run_id
        self._joined_as = tag

    def staged_files(self) -> list[dict[str, Any]]:
        """Close this joined writer's files and hand them over as manifest entries.

        Returns:
            One :meth:`ManifestFile.to_dict` entry per staged file, for :meth:`adopt`.
        """
        try:
            self._flush_all()
        except OSError as exc:
            raise self._io_error(exc, "stage files") from exc
        files = [f.to_dict() for f in self._closed]
        self._closed = []
        self._finished = True
        return files

    def adopt(self, files: Sequence[Mapping[str, Any]]) -> None:
        """Commit the files joined writers staged into this run with its own (at :meth:`commit_files`).

        Raises:
            ValueError: If an entry is not a file staged under this run.
        """
        prefix = ParquetDataset.staging_prefix(self.run_id) + "/"
        for entry in files:
            file = ManifestFile.from_dict(dict(entry))
            if not file.staged.startswith(prefix) or ".." in file.staged.split("/"):
                raise ValueError(f"{file.staged!r} was not staged under run {self.run_id}")
            self._closed.append(file)

    # Committing ----------------------------------------------------------------------

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        """Flush, then commit every file this run staged through a run manifest.

        Args:
            file_metadata: What :meth:`write_batch` returned (the writer commits every
                file it staged, which includes these).

        Returns:
            ``files_committed``, ``record_count``, ``bytes``, ``manifest`` (its location,
            ``None`` for an empty run), ``run_id`` and ``paths`` (final file locations).

        Raises:
            TransientError: If this run's S3 lease was lost (retry the run).
            DativoError: A storage error.
        """
        del file_metadata
        try:
            return self._commit()
        except OSError as exc:
            raise self._io_error(exc, "commit files") from exc

    def _commit(self) -> dict[str, Any]:
        self._start()
        self._flush_all()
        files = list(self._closed)
        summary: dict[str, Any] = {
            "run_id": self.run_id,
            "files_committed": len(files),
            "record_count": sum(f.record_count for f in files),
            "bytes": sum(f.size_bytes for f in files),
            "manifest": None,
            "paths": [self.storage.location(f.path) for f in files],
            "location": self.location,
        }
        if files:
            if self._lease is not None and self._lease.lost:
                raise TransientError(
                    f"run {self.run_id} lost its lease on {self.location} (another run took it over); "
                    "retry the run",
                    details={"run_id": self.run_id},
                )
            partition_columns = ([_INGEST_DATE] if self.partition_by_ingest_date else []) + list(
                self.partition_by
            )
            manifest = RunManifest(
                run_id=self.run_id,
                committed_at=utc_now_iso(),
                files=tuple(files),
                partition_columns=tuple(partition_columns),
                extra={"writer": f"dativo-runtime parquet {__version__}", "compression": self.compression},
            )
            self.dataset.write_manifest(manifest)
            # Past the commit point: from here on the staged files belong to a committed run, and
            # if publishing fails they stay staged for the next run to publish, never aborted.
            self._committed = True
            self.dataset.publish(manifest)
            self.storage.delete_tree(ParquetDataset.staging_prefix(self.run_id))
            summary["manifest"] = self.storage.location(ParquetDataset.manifest_path(self.run_id))
        else:
            self.storage.delete_tree(ParquetDataset.staging_prefix(self.run_id))
        self._finish()
        return summary

    def _finish(self) -> None:
        self._finished = True
        self._committed = False
        self._closed = []
        if self._lease is not None:
            self._lease.release(delete=True)
            self._lease = None

    def abort(self) -> None:
        """Discard every staged file of this run. Safe to call twice.

        After the run's manifest is written the run is committed: abort then only lets go
        of the run, and the next writer on the dataset finishes publishing its files.
        """
        if self._committed:
            self._finish()
            return
        if self._joined_as is not None:
            self._abort_joined()
            return
        for handle in list(self._open.values()):
            with contextlib.suppress(Exception):
                handle.writer.close()
                handle.sink.close()
            if not isinstance(self.storage, LocalStorage):
                with contextlib.suppress(OSError):
                    handle.local_path.unlink()
        self._open.clear()
        self._buffers.clear()
        self._buffered_bytes = 0
        if self._lease is not None:
            try:
                self.storage.delete_tree(ParquetDataset.staging_prefix(self.run_id))
            finally:
                self._finish()
        self._finished = True

    def _abort_joined(self) -> None:
        """Delete this joined writer's own staged files (never the run's other files)."""
        for handle in list(self._open.values()):
            with contextlib.suppress(Exception):
                handle.writer.close()
                handle.sink.close()
            with contextlib.suppress(OSError):
                handle.local_path.unlink()
        for file in self._closed:
            with contextlib.suppress(OSError):
                self.storage.delete(file.staged)
        self._open.clear()
        self._closed = []
        self._buffers.clear()
        self._buffered_bytes = 0
        self._finished = True

    def close(self) -> None:
        """Abort anything not committed and release the lease."""
        joined = self._joined_as is not None and bool(self._closed)
        if not self._finished and (self._lease is not None or self._open or joined):
            self.abort()
