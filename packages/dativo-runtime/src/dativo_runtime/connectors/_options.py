"""The typed options of the built-in connectors: what each key of their ``config`` means.

Each class reads a connector's ``config`` once, checks every key, and reports a bad value
as a :class:`~dativo_plugin_sdk.ConfigurationError` whose message and ``details["field"]``
name the key the user wrote. The connectors build themselves from these classes; the
registry declares them, so that the job model can ask a built-in connector which key names
its location and which settings it takes from the job file, instead of knowing it by name.

This module imports neither pyarrow nor boto3: the registry, and so the job model, import it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from dativo_plugin_sdk import Column, ColumnType, ConfigurationError
from dativo_runtime._sizes import parse_byte_size
from dativo_runtime._storage._s3 import s3_options

__all__ = [
    "COMPRESSIONS",
    "AirbyteOptions",
    "ConnectorOptions",
    "CsvOptions",
    "FileReaderOptions",
    "HostReach",
    "JobContext",
    "JsonlOptions",
    "ParquetOptions",
    "PostgresOptions",
    "SingerOptions",
    "TapOptions",
    "source_settings",
]

COMPRESSIONS = ("snappy", "zstd", "gzip", "lz4", "brotli", "none")
"""Parquet compression codecs the parquet writer accepts."""

_INGEST_DATE = "ingest_date"
_Options = TypeVar("_Options", bound="ConnectorOptions")


def source_settings(job: JobContext) -> dict[str, Any]:
    """``incremental`` and ``stream`` from the job's ``source``, when it sets them (for readers)."""
    settings: dict[str, Any] = {}
    if job.incremental is not None:
        settings["incremental"] = dict(job.incremental)
    if job.stream:
        settings["stream"] = job.stream
    return settings


@dataclass(frozen=True)
class HostReach:
    """What a connector running in the runtime's own process touches of the host.

    Args:
        paths: ``(config key, local path)`` pairs it reads or writes (a glob as given).
        endpoints: ``(config key, URL)`` pairs of the servers its config names (an S3
            ``endpoint_url``, a catalog's ``uri``); the default AWS endpoint is not one.
    """

    paths: tuple[tuple[str, str], ...] = ()
    endpoints: tuple[tuple[str, str], ...] = ()
    code: tuple[str, ...] = ()
    """Config keys that make the runtime load a class they name (pyiceberg's ``py-io-impl``)."""


@dataclass(frozen=True)
class JobContext:
    """What a job file says, besides a connector's ``config``, that a built-in connector may take.

    Args:
        stream: ``source.stream``.
        incremental: ``source.incremental`` as data (unset keys left out).
        columns: The job's ``schema``, as SDK columns.
    """

    stream: str | None = None
    incremental: Mapping[str, Any] | None = None
    columns: Sequence[Column] | None = None


class ConnectorOptions:
    """Base of a built-in connector's typed options.

    Subclasses are frozen dataclasses built by :meth:`from_config`; the class attributes
    below tell the job model how the connector's config relates to the job file.
    """

    location_option: ClassVar[str | None] = None
    """The key naming the file, folder or URI the connector reads or writes: the job model
    requires it, resolves it against the job file's folder and, for a writer, keeps the
    job's state and quarantine beside it."""

    location_fix: ClassVar[str] = ""
    """The fix shown when :attr:`location_option` is missing from a job file."""

    incremental_strategies: ClassVar[tuple[str, ...]] = ()
    """The ``source.incremental.strategy`` values the runtime keeps state for with this reader."""

    @classmethod
    def from_config(cls: type[_Options], config: Mapping[str, Any]) -> _Options:
        """Check a connector's ``config`` and return its typed options.

        Args:
            config: The connector's configuration, as the job file (and the runtime) give it.

        Returns:
            The options.

        Raises:
            ConfigurationError: If a key has a bad value; ``details["field"]`` names the key.
        """
        return cls(**cls._fields_from(config))

    @classmethod
    def _fields_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        del config
        return {}

    def host_reach(self) -> HostReach:
        """The local paths and servers this connector touches when it runs in the runtime's process.

        Returns:
            Its location (:attr:`location_option`) when that is a local path, and its S3
            ``endpoint_url`` when it sets one.
        """
        paths: list[tuple[str, str]] = []
        location = getattr(self, self.location_option, None) if self.location_option else None
        if isinstance(location, str) and location and "://" not in location:
            paths.append((str(self.location_option), location))
        storage = getattr(self, "storage_options", None) or {}
        endpoint = storage.get("endpoint_url")
        endpoints = [("endpoint_url", str(endpoint))] if endpoint else []
        return HostReach(tuple(paths), tuple(endpoints))

    def needs_network(self) -> bool:
        """Whether the connector reaches its server over the network (not over a unix socket).

        Only meaningful for a connector whose spec says ``reaches_network``.
        """
        return True

    @classmethod
    def resolve_paths(cls, config: dict[str, Any], resolve: Callable[[str], str]) -> dict[str, Any]:
        """Make the local paths of ``config`` other than :attr:`location_option` absolute.

        The job model resolves :attr:`location_option` itself; a connector with more local
        paths (the ``iceberg`` writer's sqlite catalog) resolves them here.

        Args:
            config: The connector's config, its location already resolved.
            resolve: Makes a path absolute against the job file's folder (URIs unchanged).

        Returns:
            The config, changed or not.
        """
        del resolve
        return config

    @classmethod
    def job_settings(cls, job: JobContext) -> dict[str, Any]:
        """Settings the connector takes from the job file, put into its config where unset.

        Args:
            job: What the job file says besides the connector's config.

        Returns:
            Config keys and values; none by default.
        """
        del job
        return {}


def _size(config: Mapping[str, Any], key: str, default: str) -> int:
    try:
        return parse_byte_size(config.get(key, default), what=key)
    except ValueError as exc:
        raise ConfigurationError(str(exc), details={"field": key}) from None


def _int(config: Mapping[str, Any], key: str, default: int | None, *, minimum: int | None) -> int | None:
    value = config.get(key, default)
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be an integer, got {value!r}", details={"field": key}) from None
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{key} must be at least {minimum}, got {number}", details={"field": key})
    return number


def _number(config: Mapping[str, Any], key: str, default: float) -> float:
    value = config.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{key} must be a number, got {value!r}", details={"field": key}) from None


def _path(config: Mapping[str, Any], problem: str) -> str:
    path = config.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError(problem, details={"field": "path"})
    return path


@dataclass(frozen=True)
class FileReaderOptions(ConnectorOptions):
    """The keys every built-in file reader takes.

    Args:
        path: A file, a folder, a glob with ``*``/``**``, or an ``s3://`` URI of any of those.
        stream: The stream's name; default the file or folder name.
        strategy: ``incremental.strategy``: ``mtime`` (the default) or ``cursor``.
        cursor_field: ``incremental.cursor_field``, the column the ``cursor`` strategy compares.
        block_size: Bytes read per batch (``block_size``, default ``1m``).
        storage_options: The S3 options (``endpoint_url``, ``region``, credentials).
    """

    format_name: ClassVar[str] = "file"
    location_option: ClassVar[str | None] = "path"
    location_fix: ClassVar[str] = "set it to a file, a glob (data/*.csv) or an s3:// URI"
    incremental_strategies: ClassVar[tuple[str, ...]] = ("mtime", "cursor")

    path: str
    stream: str | None = None
    strategy: str = "mtime"
    cursor_field: str | None = None
    block_size: int = 1024 * 1024
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def _fields_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        path = _path(
            config,
            f"the {cls.format_name} reader needs 'path': a file, a glob such as "
            f"data/*.{cls.format_name} or an s3:// URI",
        )
        incremental = config.get("incremental") or {}
        if not isinstance(incremental, Mapping):
            raise ConfigurationError(
                "incremental must be a mapping with 'strategy'", details={"field": "incremental"}
            )
        # Without a strategy, state (when the caller passes one) tracks files by modification time.
        strategy = incremental.get("strategy") or "mtime"
        cursor_field = incremental.get("cursor_field")
        if strategy not in cls.incremental_strategies:
            raise ConfigurationError(
                f"incremental.strategy {strategy!r} is not supported; use 'mtime' or 'cursor'",
                details={"field": "incremental.strategy"},
            )
        if strategy == "cursor" and not cursor_field:
            raise ConfigurationError(
                "incremental strategy 'cursor' needs cursor_field",
                details={"field": "incremental.cursor_field"},
            )
        stream = config.get("stream")
        return {
            "path": path,
            "stream": str(stream) if stream else None,
            "strategy": strategy,
            "cursor_field": cursor_field,
            "block_size": _size(config, "block_size", "1m"),
            "storage_options": s3_options(config),
        }

    @classmethod
    def job_settings(cls, job: JobContext) -> dict[str, Any]:
        """``incremental`` and ``stream`` from the job's ``source``, when it sets them."""
        return source_settings(job)


@dataclass(frozen=True)
class JsonlOptions(FileReaderOptions):
    """The ``jsonl`` reader's keys: the file-reader keys only."""

    format_name: ClassVar[str] = "jsonl"


@dataclass(frozen=True)
class CsvOptions(FileReaderOptions):
    """The ``csv`` reader's keys, besides the file-reader keys.

    Args:
        delimiter: One character (``,``).
        quote_char: ``"`` by default.
        has_header: Whether the first row names the columns (true).
        column_names: The columns, when there is no header.
        skip_rows: Rows skipped before the header (0).
        encoding: ``utf8`` by default.
        null_values: Texts read as null (``[""]``: empty fields are null).
        invalid_rows: ``error``, or ``skip`` to drop rows with the wrong number of fields.
        newlines_in_values: Whether quoted values may hold line breaks (false).
        column_types: Column name to SDK type, converted straight from the text; the job
            model fills it from the job's ``schema``.
    """

    format_name: ClassVar[str] = "csv"

    delimiter: str = ","
    quote_char: str = '"'
    has_header: bool = True
    column_names: tuple[str, ...] | None = None
    skip_rows: int = 0
    encoding: str = "utf8"
    null_values: tuple[str, ...] = ("",)
    invalid_rows: str = "error"
    newlines_in_values: bool = False
    column_types: Mapping[str, ColumnType] = field(default_factory=dict)

    @classmethod
    def _fields_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        fields = super()._fields_from(config)
        delimiter = str(config.get("delimiter", ","))
        if len(delimiter) != 1:
            raise ConfigurationError(
                f"delimiter must be one character, got {delimiter!r}", details={"field": "delimiter"}
            )
        invalid_rows = str(config.get("invalid_rows", "error"))
        if invalid_rows not in ("error", "skip"):
            raise ConfigurationError(
                "invalid_rows must be 'error' or 'skip'", details={"field": "invalid_rows"}
            )
        column_names = config.get("column_names")
        has_header = bool(config.get("has_header", True))
        if not has_header and not column_names:
            raise ConfigurationError(
                "has_header is false, so column_names must list the columns",
                details={"field": "column_names"},
            )
        column_types = config.get("column_types") or {}
        if not isinstance(column_types, Mapping):
            raise ConfigurationError(
                "column_types must map column names to types (integer, decimal...)",
                details={"field": "column_types"},
            )
        try:
            types = {str(name): ColumnType(str(kind)) for name, kind in column_types.items()}
        except ValueError as exc:
            raise ConfigurationError(f"column_types: {exc}", details={"field": "column_types"}) from None
        null_values = config.get("null_values", [""])
        return {
            **fields,
            "delimiter": delimiter,
            "quote_char": str(config.get("quote_char", '"')),
            "has_header": has_header,
            "column_names": tuple(str(name) for name in column_names) if column_names else None,
            "skip_rows": _int(config, "skip_rows", 0, minimum=0),
            "encoding": str(config.get("encoding", "utf8")),
            "null_values": tuple(str(value) for value in (null_values or [])),
            "invalid_rows": invalid_rows,
            "newlines_in_values": bool(config.get("newlines_in_values", False)),
            "column_types": types,
        }

    @classmethod
    def job_settings(cls, job: JobContext) -> dict[str, Any]:
        """The file-reader settings, and ``column_types`` from the job's ``schema``."""
        settings = super().job_settings(job)
        if job.columns:
            # Convert CSV text straight to the job's types (exact decimals, no float detour).
            settings["column_types"] = {column.name: column.type.value for column in job.columns}
        return settings


@dataclass(frozen=True)
class ParquetOptions(ConnectorOptions):
    """The ``parquet`` writer's keys.

    Args:
        path: A local folder or ``s3://bucket/prefix``.
        compression: One of :data:`COMPRESSIONS` (``snappy``).
        compression_level: The codec's level, if set.
        target_file_size: Bytes after which a file is closed (``128m``).
        max_buffer_size: Bytes of rows buffered across partitions before the largest is
            flushed (``256m``).
        row_group_size: Rows per row group (100 000).
        max_open_files: Files open at once across partitions (32).
        lease_ttl: Seconds an S3 lease lives without renewal (120).
        fsync: Whether local files and folders are fsynced (true).
        partition_by: Hive partition columns, outermost first.
        partition_by_ingest_date: Whether ``ingest_date=YYYY-MM-DD/`` comes first.
        ingest_date: The run's date (set by the runtime); ``None`` means today (UTC).
        run_id: The writer run's id (set by the runtime); ``None`` means a new one.
        spool_dir: Where files bound for S3 are written first (the system's temp folder).
        storage_options: The S3 options (``endpoint_url``, ``region``, credentials).
    """

    location_option: ClassVar[str | None] = "path"
    location_fix: ClassVar[str] = "set it to a folder (output/orders) or s3://bucket/prefix"

    path: str
    compression: str = "snappy"
    compression_level: int | None = None
    target_file_size: int = 128 * 1024 * 1024
    max_buffer_size: int = 256 * 1024 * 1024
    row_group_size: int = 100_000
    max_open_files: int = 32
    lease_ttl: float = 120.0
    fsync: bool = True
    partition_by: tuple[str, ...] = ()
    partition_by_ingest_date: bool = False
    ingest_date: dt.date | None = None
    run_id: str | None = None
    spool_dir: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def _fields_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        path = _path(config, "the parquet writer needs 'path': a local folder or s3://bucket/prefix")
        compression = str(config.get("compression", "snappy")).lower()
        if compression not in COMPRESSIONS:
            raise ConfigurationError(
                f"compression {compression!r} is not supported; use one of {', '.join(COMPRESSIONS)}",
                details={"field": "compression"},
            )
        fields: dict[str, Any] = {
            "path": path,
            "compression": compression,
            "compression_level": _int(config, "compression_level", None, minimum=None),
            "target_file_size": _size(config, "target_file_size", "128m"),
            "max_buffer_size": _size(config, "max_buffer_size", "256m"),
            "row_group_size": _int(config, "row_group_size", 100_000, minimum=1),
            "max_open_files": _int(config, "max_open_files", 32, minimum=1),
            "lease_ttl": _number(config, "lease_ttl", 120),
            "fsync": bool(config.get("fsync", True)),
            "partition_by": cls._partition_by(config),
            "partition_by_ingest_date": bool(config.get("partition_by_ingest_date", False)),
        }
        if fields["partition_by_ingest_date"] and _INGEST_DATE in fields["partition_by"]:
            raise ConfigurationError(
                "partition_by lists 'ingest_date' and partition_by_ingest_date is true; keep one",
                details={"field": "partition_by"},
            )
        ingest = config.get("ingest_date")
        try:
            fields["ingest_date"] = dt.date.fromisoformat(str(ingest)) if ingest else None
        except ValueError:
            raise ConfigurationError(
                f"ingest_date {ingest!r} is not a date; write YYYY-MM-DD", details={"field": "ingest_date"}
            ) from None
        run_id = str(config["run_id"]) if config.get("run_id") else None
        if run_id is not None and ("/" in run_id or run_id.startswith(".")):
            raise ConfigurationError(f"run_id {run_id!r} may not contain '/'", details={"field": "run_id"})
        spool_dir = config.get("spool_dir")
        return {
            **fields,
            "run_id": run_id,
            "spool_dir": str(spool_dir) if spool_dir else None,
            "storage_options": s3_options(config),
        }

    @staticmethod
    def _partition_by(config: Mapping[str, Any]) -> tuple[str, ...]:
        partition_by = config.get("partition_by") or []
        if isinstance(partition_by, str):
            partition_by = [p.strip() for p in partition_by.split(",") if p.strip()]
        if not isinstance(partition_by, (list, tuple)) or not all(
            isinstance(p, str) and p for p in partition_by
        ):
            raise ConfigurationError(
                "partition_by must be a list of column names", details={"field": "partition_by"}
            )
        return tuple(partition_by)


@dataclass(frozen=True)
class TapOptions(ConnectorOptions):
    """The keys of the ``singer`` and ``airbyte`` readers, which run a tap from a plugin environment.

    Args:
        package: The pip requirement installed into the plugin's environment (``tap-x==1.2.3``).
        executable: The console script to run (default: the package's own), or a file path.
        config: The tap's own config, handed to it as a JSON file.
        stream: ``source.stream``, the stream to read (set by the runtime).
        incremental: Whether the job is incremental (``source.incremental`` is set): the tap
            then gets its saved state and its bookmarks are kept.
        batch_size: Records per Arrow batch (10 000).
    """

    connector: ClassVar[str] = "tap"

    package: str
    executable: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    stream: str | None = None
    incremental: bool = False
    batch_size: int = 10_000

    @classmethod
    def _fields_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        package = config.get("package")
        if not isinstance(package, str) or not package.strip():
            raise ConfigurationError(
                f"the {cls.connector} reader needs 'package': the pip requirement of the "
                f"{'tap' if cls.connector == 'singer' else 'source'} (tap-something==1.2.3)",
                details={"field": "package"},
            )
        executable = config.get("executable")
        if executable is not None and (not isinstance(executable, str) or not executable.strip()):
            raise ConfigurationError(
                "executable must be the name of a console script (or a file path)",
                details={"field": "executable"},
            )
        tap_config = config.get("config")
        if tap_config is None:
            tap_config = {}
        if not isinstance(tap_config, Mapping):
            raise ConfigurationError(
                f"config must be a mapping (the {cls.connector} connector's own config), "
                f"got {type(tap_config).__name__}",
                details={"field": "config"},
            )
        incremental = config.get("incremental")
        if incremental is not None and not isinstance(incremental, Mapping):
            raise ConfigurationError("incremental must be a mapping", details={"field": "incremental"})
        stream = config.get("stream")
        return {
            "package": package.strip(),
            "executable": executable.strip() if executable else None,
            "config": dict(tap_config),
            "stream": str(stream) if stream else None,
            "incremental": incremental is not None,
            "batch_size": _int(config, "batch_size", 10_000, minimum=1),
        }

    @classmethod
    def job_settings(cls, job: JobContext) -> dict[str, Any]:
        """``incremental`` and ``stream`` from the job's ``source``, when it sets them."""
        return source_settings(job)


@dataclass(frozen=True)
class SingerOptions(TapOptions):
    """The ``singer`` reader's keys: the tap keys."""

    connector: ClassVar[str] = "singer"


@dataclass(frozen=True)
class AirbyteOptions(TapOptions):
    """The ``airbyte`` reader's keys: the tap keys and the stream's ``namespace``, if it has one."""

    connector: ClassVar[str] = "airbyte"

    namespace: str | None = None

    @classmethod
    def _fields_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        namespace = config.get("namespace")
        return {**super()._fields_from(config), "namespace": str(namespace) if namespace else None}


def _names(config: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = config.get(key)
    if value is None or value == []:
        return ()
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(f"{key} must be a list of column names", details={"field": key})
    return tuple(value)


def _text(config: Mapping[str, Any], key: str) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ConfigurationError(f"{key} must be a string, got {value!r}", details={"field": key})
    return str(value)


@dataclass(frozen=True)
class PostgresOptions(ConnectorOptions):
    """The ``postgres`` reader's keys.

    Args:
        dsn: A libpq connection URI or ``key=value`` string; or the parts below.
        host: The server (``localhost``), with ``port`` (5432), ``user``, ``password``, ``dbname``.
        table: The table or view to read (``schema.name``; ``public`` when unqualified).
        query: A ``SELECT`` to read instead of a table.
        schemas: The schemas ``discover`` lists (``["public"]``).
        batch_size: Rows per Arrow batch (100 000).
        partition_column: An integer column that splits the stream into ``partitions`` key
            ranges (full reads) or remainders (incremental reads).
        partitions: How many (4).
        cursor_field: The column incremental reads follow.
        primary_key: The tiebreaker of the cursor (a table's own primary key by default).
        unsupported_types: ``error`` (the default) or ``text``: read columns of types Dativo
            cannot hold as text.
        connect_timeout: Seconds to wait for the server (10).
        stream: ``source.stream`` (set by the runtime).
        incremental: Whether the job is incremental (``source.incremental`` is set).
    """

    dsn: str | None = None
    host: str | None = None
    port: int = 5432
    user: str | None = None
    password: str | None = None
    dbname: str | None = None
    table: str | None = None
    query: str | None = None
    schemas: tuple[str, ...] = ("public",)
    batch_size: int = 100_000
    partition_column: str | None = None
    partitions: int = 4
    cursor_field: str | None = None
    primary_key: tuple[str, ...] = ()
    unsupported_types: str = "error"
    connect_timeout: int = 10
    stream: str | None = None
    incremental: bool = False

    @classmethod
    def _fields_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        dsn = _text(config, "dsn")
        parts = [key for key in ("host", "port", "user", "password", "dbname") if config.get(key)]
        if dsn and parts:
            raise ConfigurationError(
                f"set either dsn or {', '.join(parts)}, not both", details={"field": "dsn"}
            )
        if not dsn and not config.get("dbname"):
            raise ConfigurationError(
                "the postgres reader needs dsn (postgresql://user:password@host:5432/db) or "
                "host, port, user, password and dbname",
                details={"field": "dsn"},
            )
        table, query = _text(config, "table"), _text(config, "query")
        if table and query:
            # Neither is fine for discover, which then lists every table; reads need one.
            raise ConfigurationError(
                "set either table (schema.name) or query (select ...), not both", details={"field": "query"}
            )
        unsupported = str(config.get("unsupported_types", "error"))
        if unsupported not in ("error", "text"):
            raise ConfigurationError(
                f"unsupported_types must be 'error' or 'text', got {unsupported!r}",
                details={"field": "unsupported_types"},
            )
        incremental = config.get("incremental")
        if incremental is not None and not isinstance(incremental, Mapping):
            raise ConfigurationError("incremental must be a mapping", details={"field": "incremental"})
        cursor_field = _text(config, "cursor_field") or _text(incremental or {}, "cursor_field")
        partitions = _int(config, "partitions", 4, minimum=1)
        assert partitions is not None
        if partitions > 50_000:
            raise ConfigurationError(
                f"partitions must be at most 50000, got {partitions}", details={"field": "partitions"}
            )
        stream = config.get("stream")
        return {
            "dsn": dsn,
            "host": _text(config, "host"),
            "port": _int(config, "port", 5432, minimum=1),
            "user": _text(config, "user"),
            "password": _text(config, "password"),
            "dbname": _text(config, "dbname"),
            "table": table,
            "query": query,
            "schemas": _names(config, "schemas") or ("public",),
            "batch_size": _int(config, "batch_size", 100_000, minimum=1),
            "partition_column": _text(config, "partition_column"),
            "partitions": partitions,
            "cursor_field": cursor_field,
            "primary_key": _names(config, "primary_key"),
            "unsupported_types": unsupported,
            "connect_timeout": _int(config, "connect_timeout", 10, minimum=1),
            "stream": str(stream) if stream else None,
            "incremental": incremental is not None,
        }

    def needs_network(self) -> bool:
        """Whether the server is reached over TCP: ``False`` when every host is a unix socket folder.

        libpq takes a host starting with ``/`` as the folder of the server's socket, given as
        ``host`` here, as ``host=`` in a key=value dsn or in a URI's query, or as the URI's
        percent-encoded host (``postgresql://%2Fvar%2Frun%2Fpostgresql/db``).
        """
        if self.dsn is None:
            return not (self.host or "").startswith("/")
        hosts = _dsn_hosts(self.dsn)
        return not hosts or not all(host.startswith("/") for host in hosts)

    @classmethod
    def job_settings(cls, job: JobContext) -> dict[str, Any]:
        """``incremental`` and ``stream`` from the job's ``source``, when it sets them."""
        return source_settings(job)


def _dsn_hosts(dsn: str) -> list[str]:
    """The hosts a libpq dsn names (none when it names none: libpq then uses its default socket)."""
    from urllib.parse import parse_qs, unquote, urlsplit

    if dsn.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(dsn)
        query_hosts = parse_qs(parts.query).get("host", [])
        if query_hosts:
            return [host for value in query_hosts for host in value.split(",")]
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return [
            unquote(host.rsplit(":", 1)[0] if not host.startswith("[") else host)
            for host in netloc.split(",")
            if host
        ]
    found = re.findall(r"(?:^|\s)host\s*=\s*'?([^'\s]*)", dsn)
    return [host for value in found for host in value.split(",")]
