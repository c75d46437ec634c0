"""The built-in ``iceberg`` writer: an Apache Iceberg table through a catalog, one snapshot per run.

A run stages its rows as Parquet data files in the table's ``data/`` folder (named
``dativo-{run_id}-{n}.parquet``, one partition value per file), and commits them at
:meth:`IcebergWriter.commit_files` in one catalog transaction whose snapshots carry the run id
(``dativo.run-id``). A data file no snapshot references is invisible to every Iceberg reader,
so a run that dies before the catalog commit leaves nothing visible.

What a run stages is recorded, before each file is created, in the warehouse beside the
run's lease (:mod:`._iceberg_staging`). The next run of any job on the warehouse takes each
dead run's lease and deletes the files it recorded, unless a snapshot of the table names the
run (it committed, and its files are the table's). :meth:`IcebergWriter.abort` deletes the
run's own files at once.

The module is one run's state machine (its lease, open files, data files, commit and abort
share their state), so it stays one piece past 500 lines; what does not share that state lives
beside it: the options (:mod:`._iceberg_options`), everything that speaks pyiceberg's catalog
and metadata (:mod:`._iceberg_table`) and the staging records (:mod:`._iceberg_staging`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from dativo_plugin_sdk import (
    BaseWriter,
    Batch,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
)
from dativo_plugin_sdk._arrow import arrow_schema_for, batch_to_arrow
from dativo_runtime._storage._backends import Storage, open_storage
from dativo_runtime._storage._locks import Lease
from dativo_runtime._storage._s3 import is_s3_uri
from dativo_runtime._version import __version__
from dativo_runtime.connectors._check_results import result_from_error
from dativo_runtime.connectors._config_schemas import ICEBERG_CONFIG_SCHEMA
from dativo_runtime.connectors._conform import conform_to_schema
from dativo_runtime.connectors._iceberg_options import IcebergOptions
from dativo_runtime.connectors._iceberg_staging import StagingRecords
from dativo_runtime.connectors._iceberg_table import (
    RUN_ID_PROPERTY,
    apply_schema_evolution,
    catalog_error,
    catalog_properties,
    create_table,
    data_file,
    evolved_schema,
    file_arrow_schema,
    load_table,
    local_path,
    open_catalog,
    rows_replaced,
    stream_arrow_schema,
    table_has_run,
    upsert_filter,
)
from dativo_runtime.connectors._parquet import new_run_id

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.io import FileIO
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

__all__ = ["IcebergWriter"]

log = logging.getLogger("dativo.iceberg")


@dataclass
class _OpenFile:
    """A data file being written: one partition value's rows of this run."""

    key: str
    path: str
    partition: Any
    stream: Any
    writer: pq.ParquetWriter
    rows: int = 0
    pending: list[pa.Table] = field(default_factory=list)
    """Rows not written yet: a row group is written once ``row_group_size`` rows are here."""
    pending_rows: int = 0
    pending_bytes: int = 0


class IcebergWriter(BaseWriter):
    """Write batches into an Iceberg table, committed as one catalog transaction per run.

    Config keys (see ``docs/connectors.md``): ``warehouse`` and ``table`` (required),
    ``catalog`` (``{type: sql|rest, uri: ...}``; default an sqlite catalog in the warehouse),
    ``partition_by`` (``{column, transform}`` entries), ``write_mode`` (``append`` or
    ``upsert``), ``primary_key``, ``compression``, ``target_file_size``, ``max_open_files``,
    ``lease_ttl``, the S3 options, and ``run_id`` (set by the runtime);
    :class:`~._iceberg_options.IcebergOptions` checks them.
    """

    __version__ = __version__
    requires_sdk = ">=1.0,<2"
    config_schema = ICEBERG_CONFIG_SCHEMA

    def __init__(self, config: Mapping[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__(config, schema)
        self.options = options = IcebergOptions.from_config(config)
        warehouse = options.warehouse
        self.warehouse = warehouse if is_s3_uri(warehouse) else warehouse.rstrip("/")
        self.run_id = options.run_id or new_run_id()
        self._declared = stream_arrow_schema(arrow_schema_for(schema)) if schema else None
        self._storage: Storage | None = None
        self._catalog: Catalog | None = None
        self._io: FileIO | None = None
        self._lease: Lease | None = None
        self._table: Table | None = None
        self._spec: PartitionSpec | None = None
        self._stream_schema: pa.Schema | None = None
        self._table_schema: Schema | None = None
        self._file_schema: pa.Schema | None = None
        self._open: OrderedDict[str, _OpenFile] = OrderedDict()
        self._buffered = 0  # bytes of rows buffered over all open files
        self._staged: list[str] = []
        self._data_files: list[Any] = []
        self._keys: list[pa.Table] = []
        self._sequence = 0
        self._finished = False
        self._runs = 1

    # Connections -----------------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        """The warehouse folder or prefix (the writer's bookkeeping lives in its ``_dativo/``)."""
        if self._storage is None:
            self._storage = open_storage(self.warehouse, self.options.storage_options)
        return self._storage

    @property
    def catalog(self) -> Catalog:
        """The job's Iceberg catalog."""
        if self._catalog is None:
            self._catalog = open_catalog(self.options)
        return self._catalog

    @property
    def io(self) -> FileIO:
        """pyiceberg's file access to the warehouse, with the catalog's S3 settings."""
        if self._io is None:
            from pyiceberg.io import load_file_io

            properties = catalog_properties(self.options)
            self._io = load_file_io(properties, properties.get("warehouse"))
        return self._io

    def check_connection(self) -> ConnectionTestResult:
        """Check the catalog answers and the warehouse is writable."""
        name = self.options.table_name
        try:
            self.catalog.list_namespaces()
        except Exception as exc:
            error = (
                exc if isinstance(exc, DativoError) else catalog_error(exc, self.options, "list namespaces")
            )
            return result_from_error(error, prefix=f"iceberg catalog {self.options.catalog.get('uri')}: ")
        try:
            self.storage.check_writable()
        except Exception as exc:
            return result_from_error(exc, prefix=f"{self.warehouse}: ")
        return ConnectionTestResult(True, f"catalog reachable, {self.warehouse} writable (table {name})")

    # The run's lease, bookkeeping and recovery -------------------------------------------

    @property
    def staging(self) -> StagingRecords:
        """The warehouse's records of what runs staged (see :mod:`._iceberg_staging`)."""
        return StagingRecords(self.storage, lease_ttl=self.options.lease_ttl)

    def _begin(self) -> None:
        if self._lease is not None:
            return
        if self._finished:
            # A writer reused after a commit or an abort starts a new run with a new id.
            self._runs += 1
            base = self.options.run_id
            self.run_id = f"{base}-{self._runs}" if base else new_run_id()
            self._finished = False
        self._lease = self.staging.take_lease(self.run_id)
        self._record()
        self.recover()

    def _record(self) -> None:
        self.staging.write(self.run_id, self.options.table_name, self._staged)

    def recover(self) -> dict[str, list[str]]:
        """Delete the data files dead runs staged and never committed (:meth:`StagingRecords.recover`)."""
        return self.staging.recover(
            exclude=self.run_id, committed=self._run_committed, delete=self._delete_file
        )

    def _run_committed(self, table_name: str, run_id: str) -> bool:
        options = self.options
        if table_name and table_name != options.table_name:
            config = {"warehouse": options.warehouse, "catalog": dict(options.catalog), "table": table_name}
            options = IcebergOptions.from_config({**config, **dict(options.storage_options)})
        table = load_table(self.catalog, options)
        return table is not None and table_has_run(table, run_id)

    def _delete_file(self, path: str) -> None:
        try:
            self.io.delete(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if "not found" not in str(exc).lower() and "no such" not in str(exc).lower():
                raise

    # The table ---------------------------------------------------------------------------

    def _prepare(self, stream: pa.Schema) -> None:
        """Load or create the table and settle the schema the run's files are written in."""
        options = self.options
        try:
            table = load_table(self.catalog, options)
            if table is None:
                table = create_table(self.catalog, options, stream)
                log.info("created iceberg table %s at %s", options.table_name, table.location())
            schema = evolved_schema(table, stream, options)
        except DativoError:
            raise
        except Exception as exc:
            raise catalog_error(exc, options, "prepare the table") from exc
        for f in schema.fields:
            if f.required and f.name not in stream.names:
                raise ConfigurationError(
                    f"iceberg table {options.table_name} has the required column {f.name!r}, which the "
                    f"stream does not have (columns: {', '.join(stream.names)}); add it to the job's "
                    "schema, or write to another table (target.config.table)",
                    details={"field": "table", "column": f.name, "table": options.table_name},
                )
        if options.write_mode == "upsert":
            self._check_key(stream)
        self._table = table
        self._spec = table.spec()
        self._stream_schema = stream
        self._table_schema = schema
        self._file_schema = file_arrow_schema(schema)

    def _check_key(self, stream: pa.Schema) -> None:
        key = self.options.primary_key
        if not key:
            raise ConfigurationError(
                f"write_mode upsert needs the key of iceberg table {self.options.table_name}: the stream "
                "has no primary key, so set target.config.primary_key (e.g. [order_id])",
                details={"field": "primary_key"},
            )
        missing = [k for k in key if k not in stream.names]
        if missing:
            raise ConfigurationError(
                f"primary_key column(s) {missing} are not in the stream (columns: {', '.join(stream.names)})",
                details={"field": "primary_key", "missing": missing},
            )

    # Writing -------------------------------------------------------------------------------

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        """Stage one batch as Parquet data files of the table (one file per partition value).

        Args:
            records: A list of dict records or an Arrow-compatible batch.
            file_counter: The runtime's batch number (file names use the writer's own sequence).

        Returns:
            One entry per partition the batch touched: ``path`` (the staged data file),
            ``record_count``, ``size_bytes`` (written so far) and ``partition``.

        Raises:
            ConfigurationError: The stream does not fit the table (schema, partition columns).
            ValidationError: Records do not fit the table's schema.
            DativoError: A catalog or storage error.
        """
        del file_counter
        self._begin()
        batch = batch_to_arrow(records, self._declared)
        if batch.num_rows == 0:
            return []
        if self._file_schema is None:
            self._prepare(self._declared or stream_arrow_schema(batch.schema))
        table = self._conform(pa.Table.from_batches([batch]))
        if self.options.write_mode == "upsert":
            self._keys.append(table.select(list(self.options.primary_key)))
        try:
            return self._write(table)
        except OSError as exc:
            raise DativoError(
                f"cannot stage data files of iceberg table {self.options.table_name}: {exc}",
                error_code="STORAGE_ERROR",
                details={"table": self.options.table_name},
            ) from exc

    def _conform(self, table: pa.Table) -> pa.Table:
        """Cast the rows to the data files' schema: the table's columns, with their field ids."""
        schema = self._file_schema
        assert schema is not None
        return conform_to_schema(table, schema, owner=f"iceberg table {self.options.table_name}")

    def _write(self, table: pa.Table) -> list[dict[str, Any]]:
        from pyiceberg.io.pyarrow import _determine_partitions

        assert self._table is not None
        assert self._table_schema is not None
        spec = self._spec
        assert spec is not None
        if spec.is_unpartitioned():
            parts: list[tuple[str, Any, pa.Table]] = [("", None, table)]
        else:
            parts = [
                (p.partition_key.to_path(), p.partition_key.partition, p.arrow_table_partition)
                for p in _determine_partitions(spec, self._table_schema, table)
            ]
        entries = []
        for key, partition, rows in parts:
            handle = self._file_for(key, partition)
            handle.pending.append(rows)
            handle.pending_rows += rows.num_rows
            handle.pending_bytes += rows.nbytes
            self._buffered += rows.nbytes
            handle.rows += rows.num_rows
            if handle.pending_rows >= self.options.row_group_size:
                self._flush(handle, whole_groups=True)
            size = int(handle.stream.tell())
            entries.append(
                {"path": handle.path, "record_count": rows.num_rows, "size_bytes": size, "partition": key}
            )
            if size >= self.options.target_file_size:
                self._close_file(handle)
        while self._buffered > self.options.max_buffer_size and self._open:
            self._flush(max(self._open.values(), key=lambda h: h.pending_bytes))
        return entries

    def _flush(self, handle: _OpenFile, *, whole_groups: bool = False) -> None:
        """Write a file's buffered rows as row groups of ``row_group_size`` rows.

        With ``whole_groups``, rows that do not fill a group stay buffered; otherwise the last
        group may be short (the file closes, or the buffers are over ``max_buffer_size``).
        """
        size = self.options.row_group_size
        count = handle.pending_rows - handle.pending_rows % size if whole_groups else handle.pending_rows
        if not count:
            return
        rows = pa.concat_tables(handle.pending)
        rest = rows.slice(count)
        self._buffered -= handle.pending_bytes
        handle.pending = [rest] if rest.num_rows else []
        handle.pending_rows, handle.pending_bytes = rest.num_rows, rest.nbytes if rest.num_rows else 0
        self._buffered += handle.pending_bytes
        handle.writer.write_table(rows.slice(0, count), row_group_size=size)

    def _file_for(self, key: str, partition: Any) -> _OpenFile:
        handle = self._open.get(key)
        if handle is not None:
            self._open.move_to_end(key)
            return handle
        while len(self._open) >= self.options.max_open_files:
            self._close_file(next(iter(self._open.values())))
        assert self._table is not None
        assert self._file_schema is not None
        name = f"dativo-{self.run_id}-{self._sequence:05d}.parquet"
        self._sequence += 1
        folder = self._table.location().rstrip("/") + "/data"
        path = f"{folder}/{key}/{name}" if key else f"{folder}/{name}"
        # Recorded before it exists, so that a run killed while writing it leaves no file unlisted.
        self._staged.append(path)
        self._record()
        # The table's own FileIO: a REST catalog's table config (vended credentials, request
        # signing, an endpoint) applies to the data files as it does to pyiceberg's own writes.
        stream = self._table.io.new_output(path).create(overwrite=True)
        writer = pq.ParquetWriter(stream, self._file_schema, compression=self.options.compression)  # type: ignore[arg-type]
        handle = _OpenFile(key, path, partition, stream, writer)
        self._open[key] = handle
        return handle

    def _close_file(self, handle: _OpenFile) -> None:
        self._flush(handle)
        self._open.pop(handle.key, None)
        handle.writer.close()
        size = int(handle.stream.tell())
        handle.stream.close()
        assert self._table is not None
        assert self._table_schema is not None
        assert self._spec is not None
        self._data_files.append(
            data_file(
                handle.path,
                handle.writer.writer.metadata,
                size=size,
                partition=handle.partition,
                table=self._table,
                schema=self._table_schema,
                spec=self._spec,
            )
        )

    def _close_all(self) -> None:
        for handle in list(self._open.values()):
            self._close_file(handle)

    # Committing ------------------------------------------------------------------------------

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        """Commit every data file the run staged in one catalog transaction.

        An ``append`` run adds one ``append`` snapshot; an ``upsert`` run whose keys the table
        holds adds one ``overwrite`` snapshot that also removes the rows with those keys. The
        snapshot's summary holds ``dativo.run-id``.

        Args:
            file_metadata: What :meth:`write_batch` returned (every staged file is committed).

        Returns:
            ``run_id``, ``table``, ``snapshot_id`` (``None`` for an empty run),
            ``files_committed``, ``record_count``, ``bytes``, ``paths`` and ``location``.

        Raises:
            ConfigurationError: The table's schema changed during the run in a way the run's
                files do not fit, or an upsert's keys repeat within the run.
            DativoError: A catalog or storage error; nothing is committed then.
        """
        del file_metadata
        self._begin()
        try:
            self._close_all()
        except OSError as exc:
            raise DativoError(
                f"cannot close the data files of iceberg table {self.options.table_name}: {exc}",
                error_code="STORAGE_ERROR",
            ) from exc
        files = list(self._data_files)
        summary: dict[str, Any] = {
            "run_id": self.run_id,
            "table": self.options.table_name,
            "snapshot_id": None,
            "files_committed": len(files),
            "record_count": sum(f.record_count for f in files),
            "bytes": sum(f.file_size_in_bytes for f in files),
            "paths": [local_path(f.file_path) for f in files],
            "location": local_path(self._table.location()) if self._table is not None else None,
        }
        if not files and self._table is None and self._declared is not None:
            self._prepare(self._declared)  # An empty first run still creates the table.
        if files:
            summary["snapshot_id"] = self._commit_transaction(files)
        self._finish()
        return summary

    def _commit_transaction(self, files: list[Any]) -> int | None:
        assert self._table is not None
        assert self._stream_schema is not None
        options = self.options
        properties = {RUN_ID_PROPERTY: self.run_id, "dativo.writer": f"dativo-runtime iceberg {__version__}"}
        delete_filter = self._upsert_filter() if options.write_mode == "upsert" else None
        try:
            table = self._table
            table.refresh()
            transaction = table.transaction()
            apply_schema_evolution(transaction, self._stream_schema, options)
            if transaction.table_metadata.schema() != self._table_schema or table.spec() != self._spec:
                raise ConfigurationError(
                    f"iceberg table {options.table_name} changed its schema or partition spec during the "
                    "run; run the job again",
                    details={"table": options.table_name},
                )
            replaced = (
                []
                if delete_filter is None
                else rows_replaced(table, transaction, delete_filter, self._staged_too)
            )
            if replaced:
                # One overwrite snapshot: the files holding replaced keys go (rewritten without
                # those rows when they hold others too), the run's files come.
                with transaction.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
                    for old, rewritten in replaced:
                        overwrite.delete_data_file(old)
                        for entry in rewritten:
                            overwrite.append_data_file(entry)
                    for entry in files:
                        overwrite.append_data_file(entry)
            else:
                with transaction.update_snapshot(snapshot_properties=properties).fast_append() as append:
                    for entry in files:
                        append.append_data_file(entry)
            committed = transaction.commit_transaction()
        except DativoError:
            raise
        except Exception as exc:
            raise catalog_error(exc, options, "commit the run's snapshot") from exc
        snapshot = committed.current_snapshot()
        return snapshot.snapshot_id if snapshot is not None else None

    def _staged_too(self, paths: list[str]) -> None:
        """Record files an upsert rewrote, so that a run that dies before its commit leaves none."""
        self._staged.extend(paths)
        self._record()

    def _upsert_filter(self) -> Any:
        keys = pa.concat_tables(self._keys) if self._keys else None
        if keys is None or keys.num_rows == 0:
            return None
        return upsert_filter(keys, list(self.options.primary_key))

    def _finish(self, *, keep_record: bool = False) -> None:
        self._finished = True
        self._data_files = []
        self._keys = []
        self._staged = []
        self._file_schema = None
        self._table_schema = None
        self._stream_schema = None
        self._table = None
        if self._lease is not None:
            if not keep_record:
                self.staging.drop(self.run_id)
            self._lease.release(delete=True)
            self._lease = None

    def abort(self) -> None:
        """Delete every data file this run staged. Safe to call twice."""
        for handle in list(self._open.values()):
            with contextlib.suppress(Exception):
                handle.writer.close()
                handle.stream.close()
        self._open.clear()
        self._buffered = 0
        if self._lease is not None:
            keep = bool(self._staged) and self._may_have_committed()
            try:
                if not keep:
                    for path in self._staged:
                        self._delete_file(path)
            finally:
                self._finish(keep_record=keep)
        self._finished = True

    def _may_have_committed(self) -> bool:
        """Whether the run may have committed (a commit that failed after the catalog took it)."""
        if not self._data_files:
            return False
        try:
            table = load_table(self.catalog, self.options)
            return table is not None and table_has_run(table, self.run_id)
        except Exception:  # Cannot tell: leave the files and their record to the next run.
            return True

    def close(self) -> None:
        """Abort anything not committed, release the lease and the catalog's connections."""
        try:
            if not self._finished and (self._lease is not None or self._open):
                self.abort()
        finally:
            engine = getattr(self._catalog, "engine", None)  # the sql catalog's connection pool
            if engine is not None:
                engine.dispose()
            self._catalog = None
            self._io = None
