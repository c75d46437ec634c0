"""The ``iceberg`` writer's typed options: its table, catalog, partition spec and write mode.

Like :mod:`._options`, which holds the other connectors' options and the helpers this module
uses, it imports neither pyarrow nor pyiceberg: the registry, and so the job model, import it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._storage._s3 import s3_options
from dativo_runtime.connectors._options import COMPRESSIONS, ConnectorOptions, HostReach, _int, _number, _size

__all__ = ["ICEBERG_TRANSFORMS", "IcebergOptions", "IcebergPartitionField", "sqlite_uri_resolved"]


ICEBERG_TRANSFORMS = ("identity", "year", "month", "day", "hour", "bucket[N]", "truncate[W]")
"""The partition transforms the iceberg writer accepts (``N``, ``W``: positive integers)."""

_TRANSFORM_PATTERN = re.compile(r"^(identity|year|month|day|hour|(bucket|truncate)\[\s*(\d+)\s*\])$")
_SQLITE_PREFIX = "sqlite:///"


def sqlite_uri_resolved(uri: str, resolve: Callable[[str], str]) -> str:
    """A ``sqlite:///relative/path.db`` URI made absolute with ``resolve``; other URIs unchanged.

    Example:
        >>> sqlite_uri_resolved("sqlite:///wh/catalog.db", lambda p: "/jobs/" + p)
        'sqlite:////jobs/wh/catalog.db'
        >>> sqlite_uri_resolved("sqlite:////abs/catalog.db", lambda p: "/jobs/" + p)
        'sqlite:////abs/catalog.db'
    """
    if not uri.startswith(_SQLITE_PREFIX):
        return uri
    path = uri[len(_SQLITE_PREFIX) :]
    if not path or path.startswith(("/", ":memory:")):
        return uri
    return _SQLITE_PREFIX + resolve(path)


@dataclass(frozen=True)
class IcebergPartitionField:
    """One ``partition_by`` entry of the iceberg writer.

    Args:
        column: The source column.
        transform: ``identity``, ``year``, ``month``, ``day``, ``hour``, ``bucket[N]`` or ``truncate[W]``.
    """

    column: str
    transform: str = "identity"


@dataclass(frozen=True)
class IcebergOptions(ConnectorOptions):
    """The ``iceberg`` writer's keys.

    Args:
        warehouse: A local folder or ``s3://bucket/prefix``: where new tables' files go, and
            where the writer keeps its bookkeeping (``_dativo/``).
        table: ``namespace.table`` (a namespace may have several levels: ``a.b.table``).
        catalog: The pyiceberg catalog's properties: ``type`` (``sql`` or ``rest``; ``rest``
            when unset and ``uri`` is an http(s) address), ``uri``
            and any other property pyiceberg takes (``credential``, ``token``...). Default:
            the embedded ``sql`` catalog in ``{warehouse}/catalog.db`` (local warehouses only).
        partition_by: The table's partition spec, used when the writer creates the table.
        write_mode: ``append`` or ``upsert``.
        primary_key: The key columns of ``upsert``; default the stream's primary key
            (set by the runtime from discovery).
        compression: The Parquet codec of the data files (``zstd``).
        target_file_size: Bytes after which a data file is closed (``128m``).
        max_open_files: Data files open at once across partitions (32).
        row_group_size: Rows per Parquet row group of a data file (1 048 576, pyiceberg's
            ``write.parquet.row-group-limit``); rows are buffered until a group is full.
        max_buffer_size: Bytes of buffered rows over all open files (``256m``); past it the
            largest buffer is written as a smaller row group.
        lease_ttl: Seconds an S3 lease lives without renewal (120).
        run_id: The writer run's id (set by the runtime); ``None`` means a new one.
        storage_options: The S3 options (``endpoint_url``, ``region``, credentials).
    """

    location_option: ClassVar[str | None] = "warehouse"
    location_fix: ClassVar[str] = "set it to a folder (./warehouse) or s3://bucket/prefix"

    warehouse: str
    table: tuple[str, ...]
    catalog: Mapping[str, Any] = field(default_factory=dict)
    partition_by: tuple[IcebergPartitionField, ...] = ()
    write_mode: str = "append"
    primary_key: tuple[str, ...] = ()
    compression: str = "zstd"
    target_file_size: int = 128 * 1024 * 1024
    max_open_files: int = 32
    row_group_size: int = 1_048_576
    max_buffer_size: int = 256 * 1024 * 1024
    lease_ttl: float = 120.0
    run_id: str | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def table_name(self) -> str:
        """``namespace.table`` as the job file writes it."""
        return ".".join(self.table)

    @classmethod
    def _fields_from(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        warehouse = config.get("warehouse")
        if not isinstance(warehouse, str) or not warehouse.strip():
            raise ConfigurationError(
                "the iceberg writer needs 'warehouse': a local folder (./warehouse) or s3://bucket/prefix",
                details={"field": "warehouse"},
            )
        table = config.get("table")
        parts = tuple(p.strip() for p in table.split(".")) if isinstance(table, str) else ()
        if len(parts) < 2 or not all(parts):
            raise ConfigurationError(
                f"table must be 'namespace.table' (analytics.orders), got {table!r}",
                details={"field": "table"},
            )
        write_mode = str(config.get("write_mode", "append"))
        if write_mode not in ("append", "upsert"):
            raise ConfigurationError(
                f"write_mode {write_mode!r} is not supported; use 'append' or 'upsert'",
                details={"field": "write_mode"},
            )
        compression = str(config.get("compression", "zstd")).lower()
        if compression not in COMPRESSIONS:
            raise ConfigurationError(
                f"compression {compression!r} is not supported; use one of {', '.join(COMPRESSIONS)}",
                details={"field": "compression"},
            )
        primary_key = config.get("primary_key") or []
        if isinstance(primary_key, str):
            primary_key = [primary_key]
        if not isinstance(primary_key, (list, tuple)) or not all(
            isinstance(k, str) and k for k in primary_key
        ):
            raise ConfigurationError(
                "primary_key must be a list of column names", details={"field": "primary_key"}
            )
        run_id = str(config["run_id"]) if config.get("run_id") else None
        if run_id is not None and ("/" in run_id or run_id.startswith(".")):
            raise ConfigurationError(f"run_id {run_id!r} may not contain '/'", details={"field": "run_id"})
        storage_options = s3_options(config)
        return {
            "warehouse": warehouse,
            "table": parts,
            "catalog": cls._catalog(config.get("catalog"), warehouse),
            "partition_by": cls._partition_by(config.get("partition_by")),
            "write_mode": write_mode,
            "primary_key": tuple(primary_key),
            "compression": compression,
            "target_file_size": _size(config, "target_file_size", "128m"),
            "max_open_files": _int(config, "max_open_files", 32, minimum=1),
            "row_group_size": _int(config, "row_group_size", 1_048_576, minimum=1),
            "max_buffer_size": _size(config, "max_buffer_size", "256m"),
            "lease_ttl": _number(config, "lease_ttl", 120),
            "run_id": run_id,
            "storage_options": storage_options,
        }

    @staticmethod
    def _catalog(catalog: Any, warehouse: str) -> dict[str, Any]:
        if catalog is None:
            if "://" in warehouse:
                raise ConfigurationError(
                    "catalog is required when the warehouse is not a local folder: set "
                    "catalog: {type: sql, uri: ...} or {type: rest, uri: ...}",
                    details={"field": "catalog"},
                )
            return {"type": "sql", "uri": _SQLITE_PREFIX + warehouse.rstrip("/") + "/catalog.db"}
        if not isinstance(catalog, Mapping):
            raise ConfigurationError(
                "catalog must be a mapping such as {type: sql, uri: 'sqlite:///warehouse/catalog.db'}",
                details={"field": "catalog"},
            )
        given_uri = catalog.get("uri")
        web = isinstance(given_uri, str) and given_uri.strip().lower().startswith(("http://", "https://"))
        kind = str(catalog.get("type", "rest" if web else "sql"))  # an http(s) uri is a REST catalog's
        if kind == "sql" and web:
            raise ConfigurationError(
                f"catalog.uri {given_uri!r} is a web address, which a sql catalog cannot open; set "
                "catalog.type: rest for a REST catalog, or give a SQLAlchemy URI "
                "(sqlite:///warehouse/catalog.db)",
                details={"field": "catalog.type"},
            )
        if kind not in ("sql", "rest"):
            raise ConfigurationError(
                f"catalog.type {kind!r} is not supported; use 'sql' (the embedded sqlite catalog, or "
                "any SQLAlchemy URI) or 'rest'",
                details={"field": "catalog.type"},
            )
        uri = catalog.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            raise ConfigurationError(
                f"catalog.uri is required for a {kind} catalog "
                + ("(sqlite:///warehouse/catalog.db)" if kind == "sql" else "(https://catalog.example.com)"),
                details={"field": "catalog.uri"},
            )
        return {**{str(k): v for k, v in catalog.items()}, "type": kind, "uri": uri.strip()}

    @staticmethod
    def _partition_by(value: Any) -> tuple[IcebergPartitionField, ...]:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise ConfigurationError(
                "partition_by must be a list of {column, transform} entries",
                details={"field": "partition_by"},
            )
        fields = []
        for index, item in enumerate(value):
            where = f"partition_by[{index}]"
            entry = {"column": item} if isinstance(item, str) else item
            column = entry.get("column") if isinstance(entry, Mapping) else None
            if not isinstance(column, str) or not column:
                raise ConfigurationError(
                    f"{where} must name a column: {{column: ordered_at, transform: day}}",
                    details={"field": where},
                )
            transform = str(entry.get("transform", "identity")).strip().lower()
            match = _TRANSFORM_PATTERN.match(transform)
            if match is None or (match.group(3) is not None and int(match.group(3)) < 1):
                raise ConfigurationError(
                    f"{where}.transform {transform!r} is not a partition transform; use one of "
                    f"{', '.join(ICEBERG_TRANSFORMS)} (N, W: positive integers)",
                    details={"field": f"{where}.transform"},
                )
            fields.append(IcebergPartitionField(column, transform.replace(" ", "")))
        return tuple(fields)

    def host_reach(self) -> HostReach:
        """The warehouse and S3 endpoint, as every connector's, plus the catalog's file or server.

        Returns:
            A sqlite catalog's file and a local ``catalog.warehouse`` among the paths; any other
            catalog ``uri`` and every catalog property naming a server (``s3.endpoint``,
            ``oauth2-server-uri``, ``s3.proxy-uri``...) among the endpoints; ``*-impl``
            properties (a class pyiceberg loads) among ``code``.
        """
        reach = super().host_reach()
        paths, endpoints = list(reach.paths), list(reach.endpoints)
        uri = str(self.catalog.get("uri") or "")
        if uri.startswith(_SQLITE_PREFIX):
            database = uri[len(_SQLITE_PREFIX) :]
            if database and not database.startswith(":memory:"):
                paths.append(("catalog.uri", database))
        elif uri:
            endpoints.append(("catalog.uri", uri))
        code: list[str] = []
        for key, value in self.catalog.items():
            name = str(key)
            if name.endswith("-impl"):
                code.append(f"catalog.{name}")
            elif not isinstance(value, str) or not value or name == "uri":
                continue
            elif name == "warehouse":  # pyiceberg writes new tables there, before our warehouse
                if "://" not in value or value.startswith("file://"):
                    paths.append(("catalog.warehouse", value.removeprefix("file://")))
            elif name.endswith(("endpoint", "uri", "url")):
                endpoints.append((f"catalog.{name}", value))
        return HostReach(tuple(paths), tuple(endpoints), tuple(code))

    @classmethod
    def resolve_paths(cls, config: dict[str, Any], resolve: Callable[[str], str]) -> dict[str, Any]:
        """Resolve a relative sqlite catalog (``sqlite:///warehouse/catalog.db``) against the job file."""
        catalog = config.get("catalog")
        if isinstance(catalog, Mapping) and isinstance(catalog.get("uri"), str):
            config["catalog"] = {**catalog, "uri": sqlite_uri_resolved(catalog["uri"], resolve)}
        return config
