"""The iceberg writer's side of pyiceberg: the catalog, the table, its schema and its snapshots.

Everything here imports pyiceberg lazily (``dativo-runtime[iceberg]``), so that the registry,
and through it the job model, can name the ``iceberg`` writer without it. pyiceberg's errors
are mapped to Dativo's at this boundary: a missing table or namespace, a schema change
Iceberg does not allow, an unreachable catalog.

The writer's runs are recognised by the ``dativo.run-id`` property of the snapshots a run
commits (:data:`RUN_ID_PROPERTY`): :func:`run_committed` is the commit probe the engine asks
after a run died between its commit and saving its state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dativo_plugin_sdk import (
    AuthenticationError,
    ConfigurationError,
    DativoConnectionError,
    DativoError,
    TransientError,
    ValidationError,
)
from dativo_runtime.connectors._iceberg_options import IcebergOptions

if TYPE_CHECKING:
    import pyarrow.parquet as pq
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

__all__ = [
    "INSTALL_HINT",
    "RUN_ID_PROPERTY",
    "committed_data_files",
    "create_table",
    "data_file",
    "evolved_schema",
    "file_arrow_schema",
    "load_table",
    "local_path",
    "open_catalog",
    "rows_replaced",
    "run_committed",
    "stream_arrow_schema",
    "table_has_run",
    "upsert_filter",
]

RUN_ID_PROPERTY = "dativo.run-id"
"""The snapshot summary property holding the id of the writer run that committed it."""

INSTALL_HINT = "pip install 'dativo-runtime[iceberg]'"


def local_path(uri: str) -> str:
    """A ``file://`` URI as a plain path (what people and DuckDB read); other URIs unchanged.

    Example:
        >>> local_path("file:///srv/wh/t/data/a%20b.parquet")
        '/srv/wh/t/data/a b.parquet'
        >>> local_path("s3://lake/wh/t/data/x.parquet")
        's3://lake/wh/t/data/x.parquet'
    """
    if not uri.startswith("file:"):
        return uri
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


def _pyiceberg() -> None:
    try:
        import pyiceberg
        import pyiceberg.catalog.sql  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"the iceberg writer needs pyiceberg with its sql catalog ({exc.name} is not installed); "
            f"install it with: {INSTALL_HINT}",
            details={"field": "target.plugin", "missing": exc.name},
        ) from None


def catalog_properties(options: IcebergOptions) -> dict[str, str]:
    """The pyiceberg catalog properties: the job's ``catalog`` keys, the warehouse and the S3 options."""
    properties = {str(k): str(v) for k, v in options.catalog.items() if k != "name" and v is not None}
    warehouse = options.warehouse
    properties.setdefault("warehouse", warehouse if "://" in warehouse else Path(warehouse).as_uri())
    storage = options.storage_options
    for ours, theirs in (
        ("endpoint_url", "s3.endpoint"),
        ("region", "s3.region"),
        ("aws_access_key_id", "s3.access-key-id"),
        ("aws_secret_access_key", "s3.secret-access-key"),
        ("aws_session_token", "s3.session-token"),
    ):
        if storage.get(ours):
            properties.setdefault(theirs, str(storage[ours]))
    if storage.get("endpoint_url"):
        properties.setdefault("s3.force-virtual-addressing", "false")
    if "s3.region" not in properties and warehouse.startswith("s3://"):
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            properties["s3.region"] = region
    return properties


def open_catalog(options: IcebergOptions) -> Catalog:
    """Connect to the job's catalog (an embedded sqlite catalog's folder is created).

    Raises:
        ConfigurationError: pyiceberg is missing, or the catalog's settings are wrong.
        ConnectionError: The catalog is unreachable (retryable).
    """
    _pyiceberg()
    from pyiceberg.catalog import load_catalog

    properties = catalog_properties(options)
    uri = properties.get("uri", "")
    if uri.startswith("sqlite:////"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    name = str(options.catalog.get("name") or "default")
    try:
        return load_catalog(name, **properties)
    except DativoError:
        raise
    except Exception as exc:
        raise catalog_error(exc, options, "connect to the catalog") from exc


def catalog_error(exc: BaseException, options: IcebergOptions, action: str) -> DativoError:
    """Map a pyiceberg or driver failure to a Dativo error naming the catalog and the table."""
    where = f"iceberg table {options.table_name} (catalog {options.catalog.get('uri')})"
    name = type(exc).__name__
    message = f"cannot {action} for {where}: {name}: {exc}"
    if name in ("OperationalError", "ServerError", "ServiceUnavailableError") or isinstance(
        exc, (OSError, TimeoutError)
    ):
        return DativoConnectionError(message, details={"table": options.table_name})
    if name in ("CommitFailedException",):
        return TransientError(message, details={"table": options.table_name})
    if name in ("UnauthorizedError", "ForbiddenError", "OAuthError"):
        return AuthenticationError(message, details={"table": options.table_name})
    if name in ("ArgumentError", "NoSuchPropertyException", "ValueError", "NotImplementedError"):
        return ConfigurationError(message, details={"field": "catalog", "table": options.table_name})
    return DativoError(message, error_code="ICEBERG_ERROR", details={"table": options.table_name})


def load_table(catalog: Catalog, options: IcebergOptions) -> Table | None:
    """The job's table, or ``None`` when it does not exist yet."""
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    try:
        return catalog.load_table(options.table)
    except (NoSuchTableError, NoSuchNamespaceError):
        return None


def stream_arrow_schema(schema: pa.Schema) -> pa.Schema:
    """The stream's Arrow schema in the types Iceberg stores.

    Nanosecond timestamps become microseconds, large strings and binaries plain ones, and
    a column entirely null in the first batch a string.
    """
    fields = []
    for f in schema:
        kind = f.type
        if pa.types.is_timestamp(kind) and kind.unit != "us":
            kind = pa.timestamp("us", tz=kind.tz)
        elif pa.types.is_large_string(kind):
            kind = pa.string()
        elif pa.types.is_large_binary(kind):
            kind = pa.binary()
        elif pa.types.is_null(kind):
            kind = pa.string()
        fields.append(pa.field(f.name, kind, nullable=f.nullable))
    return pa.schema(fields)


def create_table(catalog: Catalog, options: IcebergOptions, schema: pa.Schema) -> Table:
    """Create the job's table (and its namespace) from the stream's schema and ``partition_by``.

    Raises:
        ConfigurationError: A ``partition_by`` column is not in the stream, or its transform
            does not apply to the column's type.
    """
    from pyiceberg.exceptions import TableAlreadyExistsError
    from pyiceberg.transforms import parse_transform

    for index, entry in enumerate(options.partition_by):
        if entry.column not in schema.names:
            raise ConfigurationError(
                f"iceberg table {options.table_name}: target.config.partition_by[{index}] names column "
                f"{entry.column!r}, which the stream does not have (columns: {', '.join(schema.names)})",
                details={"field": f"partition_by[{index}].column"},
            )
    namespace = options.table[:-1]
    catalog.create_namespace_if_not_exists(namespace)
    try:
        transaction = catalog.create_table_transaction(options.table, schema=schema)
        if options.partition_by:
            with transaction.update_spec() as spec:
                for index, entry in enumerate(options.partition_by):
                    transform = parse_transform(entry.transform)
                    source = transaction.table_metadata.schema().find_field(entry.column)
                    if not transform.can_transform(source.field_type):
                        raise ConfigurationError(
                            f"iceberg table {options.table_name}: target.config.partition_by[{index}]: "
                            f"transform {entry.transform} does not apply to column {entry.column!r} of "
                            f"type {source.field_type}",
                            details={"field": f"partition_by[{index}].transform"},
                        )
                    spec.add_field(entry.column, transform)
        transaction.commit_transaction()
    except TableAlreadyExistsError:
        pass  # Created by another run since we looked: use it.
    table = load_table(catalog, options)
    assert table is not None
    return table


def evolved_schema(table: Table, stream: pa.Schema, options: IcebergOptions) -> Schema:
    """The table's schema once the stream's columns are merged in, without committing anything.

    New columns are added (optional), ``int`` widens to ``long`` and ``float`` to
    ``double``, a required column may become optional; anything else is refused.

    Raises:
        ConfigurationError: The stream's schema cannot be merged into the table's.
    """
    transaction = table.transaction()
    apply_schema_evolution(transaction, stream, options)
    return transaction.table_metadata.schema()


def apply_schema_evolution(transaction: Any, stream: pa.Schema, options: IcebergOptions) -> None:
    """Add the schema change the stream needs to ``transaction`` (a no-op when none is needed).

    Raises:
        ConfigurationError: Iceberg does not allow the change.
    """
    from pyiceberg.exceptions import ValidationError as IcebergValidationError

    current = transaction.table_metadata.schema()
    known = {f.name for f in current.fields}
    # Iceberg cannot add a required column to a table that may hold rows: a new one is optional.
    merged = pa.schema([f if f.name in known else f.with_nullable(True) for f in stream])
    try:
        with transaction.update_schema() as update:
            update.union_by_name(merged)
    except (IcebergValidationError, ValueError, TypeError) as exc:
        raise ConfigurationError(
            f"the stream's schema does not fit iceberg table {options.table_name}: {exc}. Iceberg "
            "allows adding columns and widening int to long, float to double and a decimal's "
            "precision; write to a new table (target.config.table) or change the table yourself",
            details={"field": "table", "table": options.table_name, "problem": str(exc)},
        ) from None


def file_arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of the data files written for ``schema`` (with Iceberg field ids)."""
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    return schema_to_pyarrow(schema, include_field_ids=True)


def _snapshots_with_run(table: Table, writer_run_id: str) -> Iterator[Any]:
    for snapshot in table.metadata.snapshots:
        summary = snapshot.summary
        if summary is not None and summary.additional_properties.get(RUN_ID_PROPERTY) == writer_run_id:
            yield snapshot


def table_has_run(table: Table, writer_run_id: str) -> bool:
    """Whether a snapshot of ``table`` was committed by writer run ``writer_run_id``."""
    return next(_snapshots_with_run(table, writer_run_id), None) is not None


def run_committed(location: str, config: Mapping[str, Any], writer_run_id: str) -> bool:
    """The iceberg writer's commit probe: whether a snapshot of the table names ``writer_run_id``.

    Args:
        location: The resolved warehouse (unused: the catalog knows the table).
        config: The writer's resolved config (catalog, table, S3 options).
        writer_run_id: The writer run's id.
    """
    del location
    options = IcebergOptions.from_config(config)
    table = load_table(open_catalog(options), options)
    return table is not None and table_has_run(table, writer_run_id)


def committed_data_files(options: IcebergOptions, *, snapshots: int = 10) -> dict[str, Any]:
    """The table's current data files and its last snapshots, for ``dativo-run files``.

    Args:
        options: The writer's options.
        snapshots: How many of the last snapshots to list.

    Returns:
        ``table``, ``location``, ``snapshot_id``, ``runs`` (the last snapshots, newest last:
        ``snapshot_id``, ``run_id``, ``operation``, ``committed_at``, ``record_count`` added,
        ``files`` added), ``record_count`` and ``files`` (the data files of the current snapshot).
    """
    table = load_table(open_catalog(options), options)
    if table is None:
        return {
            "table": options.table_name,
            "location": None,
            "snapshot_id": None,
            "runs": [],
            "record_count": 0,
            "files": [],
        }
    import datetime as dt

    runs = []
    for snapshot in table.metadata.snapshots[-snapshots:]:
        summary = snapshot.summary
        extra = summary.additional_properties if summary is not None else {}
        runs.append(
            {
                "snapshot_id": snapshot.snapshot_id,
                "run_id": extra.get(RUN_ID_PROPERTY),
                "operation": str(summary.operation.value) if summary is not None else None,
                "committed_at": dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.timezone.utc)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                "record_count": int(extra.get("added-records", 0)),
                "files": int(extra.get("added-data-files", 0)),
            }
        )
    current = table.current_snapshot()
    files: list[str] = []
    records = 0
    if current is not None:
        for task in table.scan().plan_files():
            files.append(local_path(task.file.file_path))
            records += task.file.record_count
    return {
        "table": options.table_name,
        "location": local_path(table.location()),
        "snapshot_id": current.snapshot_id if current is not None else None,
        "runs": runs,
        "record_count": records,
        "files": files,
    }


def data_file(
    path: str,
    metadata: pq.FileMetaData,
    *,
    size: int,
    partition: Any,
    table: Table,
    schema: Schema,
    spec: PartitionSpec,
) -> Any:
    """The manifest entry of a Parquet data file the writer wrote: its partition and column statistics.

    Args:
        path: The file's location.
        metadata: Its Parquet footer (from the writer that wrote it).
        size: Its size in bytes.
        partition: Its partition value (a pyiceberg ``Record``), ``None`` for an unpartitioned table.
        table: The table it is for.
        schema: The schema it was written in (with field ids).
        spec: The partition spec it was split by.

    Returns:
        A pyiceberg ``DataFile``, for a fast append.
    """
    from pyiceberg.io.pyarrow import (
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.typedef import Record

    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=metadata,
        stats_columns=compute_statistics_plan(schema, table.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    entry = DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=partition if partition is not None else Record(),
        file_size_in_bytes=size,
        sort_order_id=None,
        spec_id=spec.spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )
    entry.spec_id = spec.spec_id  # Not taken by from_args in every version.
    return entry


def upsert_filter(keys: pa.Table, key: list[str]) -> Any:
    """The filter matching the table's rows whose key an upsert run writes.

    Args:
        keys: The key columns of every row the run writes.
        key: The key's column names.

    Returns:
        A pyiceberg boolean expression.

    Raises:
        ValidationError: A key is null, or repeats within the run.
    """
    import pyarrow.compute as pc
    from pyiceberg.table.upsert_util import create_match_filter

    for name in key:
        nulls = keys.column(name).null_count
        if nulls:
            raise ValidationError(
                f"upsert key column {name!r} has {nulls} null value(s); every row needs a key",
                details={"column": name, "null_count": nulls},
            )
    counts = keys.group_by(key).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), pa.scalar(1)))
    if repeated.num_rows:
        example = {name: repeated.column(name)[0].as_py() for name in key}
        raise ValidationError(
            f"{repeated.num_rows} key(s) of {key} appear more than once in this run (e.g. {example}); "
            "an upsert run may write each key once",
            details={"field": "primary_key", "repeated_keys": repeated.num_rows},
        )
    return create_match_filter(keys, key)


def rows_replaced(
    table: Table, transaction: Any, key_filter: Any, written: Callable[[list[str]], None]
) -> list[tuple[Any, list[Any]]]:
    """The data files holding rows an upsert replaces, each with what replaces it (copy-on-write).

    A file whose every row matches ``key_filter`` is dropped; one that holds other rows too is
    rewritten without the matching ones (read whole: one file at a time in memory). A file the
    column statistics rule out is not read.

    Args:
        table: The table as it is now.
        transaction: The run's transaction (its schema is the one rewritten files get).
        key_filter: The rows to replace (:func:`upsert_filter`).
        written: Called with the locations of each file rewritten, before the next is read.

    Returns:
        ``(old data file, [rewritten data files])`` for each file that holds matching rows.
    """
    import itertools
    import uuid

    from pyiceberg.expressions import AlwaysTrue
    from pyiceberg.expressions.visitors import bind
    from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files, _expression_to_complementary_pyarrow

    metadata = transaction.table_metadata
    schema = metadata.schema()
    keep = _expression_to_complementary_pyarrow(bind(schema, key_filter, case_sensitive=True), schema)
    replaced: list[tuple[Any, list[Any]]] = []
    counter = itertools.count(0)
    write_uuid = uuid.uuid4()
    for task in table.scan(row_filter=key_filter).plan_files():
        rows = ArrowScan(
            table_metadata=metadata, io=table.io, projected_schema=schema, row_filter=AlwaysTrue()
        ).to_table(tasks=[task])
        kept = rows.filter(keep)
        if kept.num_rows == rows.num_rows:
            continue
        rewritten = []
        if kept.num_rows:
            rewritten = list(
                _dataframe_to_data_files(
                    table_metadata=metadata, df=kept, io=table.io, write_uuid=write_uuid, counter=counter
                )
            )
            written([f.file_path for f in rewritten])
        replaced.append((task.file, rewritten))
    return replaced
