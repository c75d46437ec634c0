"""The config specs of the built-in connectors: a JSON Schema (draft 2020-12) of each one's ``config``.

Each built-in declares one as its ``config_schema``, like any plugin, so that a typo in its
config (``delimeter``) fails before it runs, with a did-you-mean, and so that ``plugins
inspect`` and ``schema --plugin`` show its keys. The schemas list exactly the keys the
options classes of :mod:`._options` read, those the runtime adds from the job file
(``incremental``, ``stream``, ``column_types``, ``run_id``, ``ingest_date``), and mark the
S3 credentials secret. Values are checked loosely where the options classes convert them
(``"10"`` is a fine ``skip_rows``, ``512m`` a fine size); their own checks stay the ones that
tell a bad value.
"""

from __future__ import annotations

from typing import Any

from dativo_plugin_sdk import ColumnType

__all__ = [
    "AIRBYTE_CONFIG_SCHEMA",
    "CSV_CONFIG_SCHEMA",
    "ICEBERG_CONFIG_SCHEMA",
    "JSONL_CONFIG_SCHEMA",
    "PARQUET_CONFIG_SCHEMA",
    "POSTGRES_CONFIG_SCHEMA",
    "SINGER_CONFIG_SCHEMA",
    "tap_config_schema",
]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_COMPRESSIONS = ["snappy", "zstd", "gzip", "lz4", "brotli", "none"]

_SIZE: dict[str, Any] = {
    "type": ["integer", "string"],
    "pattern": r"^\s*\d+(\.\d+)?\s*[kmgtKMGT]?([iI]?[bB])?\s*$",
}
_COUNT: dict[str, Any] = {"type": ["integer", "string"], "pattern": r"^\s*-?\d+\s*$"}


def _size(description: str) -> dict[str, Any]:
    return {**_SIZE, "description": description}


def _count(description: str, minimum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {**_COUNT, "description": description}
    if minimum is not None:
        schema["minimum"] = minimum
    return schema


_S3: dict[str, Any] = {
    "endpoint_url": {"type": ["string", "null"], "description": "S3-compatible endpoint (MinIO...)."},
    "region": {"type": ["string", "null"], "description": "The bucket's region."},
    "aws_access_key_id": {"type": ["string", "null"], "secret": True, "description": "S3 access key id."},
    "aws_secret_access_key": {
        "type": ["string", "null"],
        "secret": True,
        "description": "S3 secret access key.",
    },
    "aws_session_token": {"type": ["string", "null"], "secret": True, "description": "S3 session token."},
}

_FILE_READER: dict[str, Any] = {
    "path": {
        "type": "string",
        "minLength": 1,
        "description": "A file, a folder, a glob with * or **, or an s3:// URI of any of those "
        "(relative to the job file).",
    },
    "stream": {
        "type": ["string", "null"],
        "description": "The stream's name; default the file or folder name.",
    },
    "incremental": {
        "type": ["object", "null"],
        "description": "Set by the runtime from source.incremental.",
        "properties": {
            "strategy": {"enum": ["mtime", "cursor", None]},
            "cursor_field": {"type": ["string", "null"]},
        },
        "additionalProperties": False,
    },
    "block_size": _size("Bytes read per batch (default 1m)."),
    **_S3,
}


def _reader(title: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "$schema": _DIALECT,
        "title": title,
        "type": "object",
        "properties": {**_FILE_READER, **extra},
        "required": ["path"],
        "additionalProperties": False,
    }


JSONL_CONFIG_SCHEMA: dict[str, Any] = _reader("jsonl reader config", {})
"""The ``jsonl`` reader's config: the file-reader keys only."""

CSV_CONFIG_SCHEMA: dict[str, Any] = _reader(
    "csv reader config",
    {
        "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "description": "One character (,)."},
        "quote_char": {"type": "string", "description": 'The quote character (").'},
        "has_header": {"type": "boolean", "description": "Whether the first row names the columns (true)."},
        "column_names": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "The columns, when there is no header.",
        },
        "skip_rows": _count("Rows skipped before the header (0).", minimum=0),
        "encoding": {"type": "string", "description": "The files' encoding (utf8)."},
        "null_values": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": 'Texts read as null ([""]: empty fields are null).',
        },
        "invalid_rows": {
            "enum": ["error", "skip"],
            "description": "error, or skip rows with the wrong field count.",
        },
        "newlines_in_values": {
            "type": "boolean",
            "description": "Whether quoted values may hold line breaks.",
        },
        "column_types": {
            "type": ["object", "null"],
            "additionalProperties": {"enum": [t.value for t in ColumnType]},
            "description": "Column name to type, converted from the text; set from the job's schema.",
        },
    },
)
"""The ``csv`` reader's config: the file-reader keys and the CSV dialect."""

PARQUET_CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": _DIALECT,
    "title": "parquet writer config",
    "type": "object",
    "properties": {
        "path": {
            "type": "string",
            "minLength": 1,
            "description": "A local folder (relative to the job file) or s3://bucket/prefix.",
        },
        "compression": {
            "enum": _COMPRESSIONS + [c.upper() for c in _COMPRESSIONS],
            "description": "The codec (snappy).",
        },
        "compression_level": {
            **_COUNT,
            "type": ["integer", "string", "null"],
            "description": "The codec's level.",
        },
        "target_file_size": _size("Bytes after which a file is closed (128m)."),
        "max_buffer_size": _size("Bytes of rows buffered across partitions (256m)."),
        "row_group_size": _count("Rows per row group (100000).", minimum=1),
        "max_open_files": _count("Files open at once across partitions (32).", minimum=1),
        "lease_ttl": {
            "type": ["number", "string"],
            "description": "Seconds an S3 lease lives unrenewed (120).",
        },
        "fsync": {"type": "boolean", "description": "Whether local files and folders are fsynced (true)."},
        "partition_by": {
            "type": ["array", "string", "null"],
            "items": {"type": "string", "minLength": 1},
            "description": "Hive partition columns, outermost first (a list, or names separated by commas).",
        },
        "partition_by_ingest_date": {
            "type": "boolean",
            "description": "Whether ingest_date=YYYY-MM-DD/ comes first.",
        },
        "ingest_date": {
            "type": ["string", "null"],
            "description": "The run's date, YYYY-MM-DD (set by the runtime).",
        },
        "run_id": {"type": ["string", "null"], "description": "The writer run's id (set by the runtime)."},
        "spool_dir": {
            "type": ["string", "null"],
            "description": "Where files bound for S3 are written first.",
        },
        **_S3,
    },
    "required": ["path"],
    "additionalProperties": False,
}
"""The ``parquet`` writer's config."""

ICEBERG_CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": _DIALECT,
    "title": "iceberg writer config",
    "type": "object",
    "properties": {
        "warehouse": {
            "type": "string",
            "minLength": 1,
            "description": "A local folder (relative to the job file) or s3://bucket/prefix: where new "
            "tables' files go, and the writer's bookkeeping (_dativo/).",
        },
        "table": {
            "type": "string",
            "minLength": 1,
            "description": "namespace.table; created on the first run from the stream's schema.",
        },
        "catalog": {
            "type": ["object", "null"],
            "description": "The catalog: {type: sql, uri: sqlite:///warehouse/catalog.db} (the default, "
            "in the warehouse) or {type: rest, uri: ...}; other keys are pyiceberg catalog properties.",
            "properties": {
                "type": {"enum": ["sql", "rest"]},
                "uri": {"type": "string", "minLength": 1},
                "credential": {"type": "string", "secret": True},
                "token": {"type": "string", "secret": True},
            },
            "additionalProperties": True,
        },
        "partition_by": {
            "type": ["array", "null"],
            "description": "The partition spec of a new table: {column, transform} entries; transform "
            "identity (default), year, month, day, hour, bucket[N] or truncate[W].",
            "items": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {
                        "type": "object",
                        "properties": {
                            "column": {"type": "string", "minLength": 1},
                            "transform": {"type": "string"},
                        },
                        "required": ["column"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "write_mode": {"enum": ["append", "upsert"], "description": "append (default) or upsert by key."},
        "primary_key": {
            "type": ["array", "string", "null"],
            "items": {"type": "string"},
            "description": "The key columns of upsert; default the stream's primary key.",
        },
        "compression": {
            "enum": _COMPRESSIONS + [c.upper() for c in _COMPRESSIONS],
            "description": "The data files' codec (zstd).",
        },
        "target_file_size": _size("A data file is closed at this size (128m)."),
        "max_open_files": _count("Data files open at once across partitions (32).", 1),
        "row_group_size": _count("Rows per Parquet row group of a data file (1048576).", 1),
        "max_buffer_size": _size("Bytes of rows buffered across open data files (256m)."),
        "lease_ttl": {
            "type": ["number", "string"],
            "description": "S3: seconds a run's lease lives without renewal (120).",
        },
        "run_id": {"type": ["string", "null"], "description": "Set by the runtime."},
        **_S3,
    },
    "required": ["warehouse", "table"],
    "additionalProperties": False,
}
"""The ``iceberg`` writer's config."""


def tap_config_schema(
    connector: str, connector_config: dict[str, Any] | None = None, *, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The config of a reader that runs a tap (``singer``, ``airbyte``).

    Args:
        connector: ``singer`` or ``airbyte``.
        connector_config: The JSON Schema of the tap's own ``config`` (any object when unknown).
        extra: More keys of this connector.

    Returns:
        The schema: ``package``, ``executable``, ``config``, ``batch_size`` and the keys the
        runtime sets (``stream``, ``incremental``).
    """
    tap = "Singer tap" if connector == "singer" else "Airbyte source"
    return {
        "$schema": _DIALECT,
        "title": f"{connector} reader config",
        "type": "object",
        "properties": {
            "package": {
                "type": "string",
                "minLength": 1,
                "description": f"The {tap}'s pip requirement, installed into the plugin's environment "
                "(tap-something==1.2.3).",
            },
            "executable": {
                "type": ["string", "null"],
                "minLength": 1,
                "description": "The console script to run; default the package's own.",
            },
            "config": connector_config
            if connector_config is not None
            else {"type": "object", "description": f"The {tap}'s own config."},
            "stream": {"type": ["string", "null"], "description": "Set by the runtime from source.stream."},
            "incremental": {
                "type": ["object", "null"],
                "description": "Set by the runtime from source.incremental.",
            },
            "batch_size": _count("Records per batch (10000).", minimum=1),
            **(extra or {}),
        },
        "required": ["package"],
        "additionalProperties": False,
    }


SINGER_CONFIG_SCHEMA: dict[str, Any] = tap_config_schema("singer")
"""The ``singer`` reader's config (the tap's own ``config`` is any object)."""

AIRBYTE_CONFIG_SCHEMA: dict[str, Any] = tap_config_schema(
    "airbyte",
    extra={
        "namespace": {"type": ["string", "null"], "description": "The stream's namespace, if it has one."}
    },
)
"""The ``airbyte`` reader's config before its source's ``spec`` is known."""

_NAMES: dict[str, Any] = {"type": ["array", "string", "null"], "items": {"type": "string", "minLength": 1}}

POSTGRES_CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": _DIALECT,
    "title": "postgres reader config",
    "type": "object",
    "properties": {
        "dsn": {
            "type": ["string", "null"],
            "secret": True,
            "description": "A libpq URI (postgresql://user:password@host:5432/db) or key=value string.",
        },
        "host": {"type": ["string", "null"], "description": "The server, when there is no dsn (localhost)."},
        "port": _count("The server's port (5432).", minimum=1),
        "user": {"type": ["string", "null"], "description": "The role to log in as."},
        "password": {"type": ["string", "null"], "secret": True, "description": "The role's password."},
        "dbname": {"type": ["string", "null"], "description": "The database."},
        "table": {
            "type": ["string", "null"],
            "description": "The table or view, schema.name (public.orders).",
        },
        "query": {"type": ["string", "null"], "description": "A SELECT to read instead of a table."},
        "schemas": {**_NAMES, "description": 'The schemas discover lists (["public"]).'},
        "batch_size": _count("Rows per Arrow batch (100000).", minimum=1),
        "partition_column": {
            "type": ["string", "null"],
            "description": "An integer column: key ranges, or remainders when incremental.",
        },
        "partitions": _count("How many partitions partition_column makes (4).", minimum=1),
        "cursor_field": {"type": ["string", "null"], "description": "The column incremental reads follow."},
        "primary_key": {
            **_NAMES,
            "description": "The cursor's tiebreaker; the table's primary key by default.",
        },
        "unsupported_types": {
            "enum": ["error", "text"],
            "description": "error, or text: read columns of types Dativo cannot hold as text.",
        },
        "connect_timeout": _count("Seconds to wait for the server (10).", minimum=1),
        "stream": {"type": ["string", "null"], "description": "Set by the runtime from source.stream."},
        "incremental": {
            "type": ["object", "null"],
            "description": "Set by the runtime from source.incremental.",
            "properties": {"cursor_field": {"type": ["string", "null"]}},
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
"""The ``postgres`` reader's config."""
