"""The built-in connectors: the readers csv, jsonl, postgres, singer, airbyte; the writers parquet, iceberg.

They are ordinary SDK plugins (``BaseReader`` / ``BaseWriter``) that job files name by
their built-in names (``singer`` and ``airbyte`` run a tap from a plugin environment, in a
sandbox worker); :class:`ParquetDataset` reads what the parquet writer committed.
``_registry`` declares each one (its name, kind, class, typed options from ``_options``,
run-context settings and commit probe); the rest of the runtime asks it, never a name.

The names below are imported on first use, so that the job model can read the registry
without importing pyarrow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_runtime._lazy_exports import lazy_exports

if TYPE_CHECKING:
    from dativo_runtime.connectors._airbyte import AirbyteReader
    from dativo_runtime.connectors._csv import CsvReader
    from dativo_runtime.connectors._dataset import ManifestFile, ParquetDataset, RecoveryReport, RunManifest
    from dativo_runtime.connectors._iceberg import IcebergWriter
    from dativo_runtime.connectors._jsonl import JsonlReader
    from dativo_runtime.connectors._parquet import ParquetWriter, new_run_id
    from dativo_runtime.connectors._postgres import PostgresReader
    from dativo_runtime.connectors._singer import SingerReader

__all__ = [
    "AirbyteReader",
    "CsvReader",
    "IcebergWriter",
    "JsonlReader",
    "ManifestFile",
    "ParquetDataset",
    "ParquetWriter",
    "PostgresReader",
    "RecoveryReport",
    "RunManifest",
    "SingerReader",
    "new_run_id",
]

_EXPORTS = {
    "AirbyteReader": "._airbyte",
    "CsvReader": "._csv",
    "IcebergWriter": "._iceberg",
    "JsonlReader": "._jsonl",
    "ManifestFile": "._dataset",
    "ParquetDataset": "._dataset",
    "ParquetWriter": "._parquet",
    "PostgresReader": "._postgres",
    "RecoveryReport": "._dataset",
    "RunManifest": "._dataset",
    "SingerReader": "._singer",
    "new_run_id": "._parquet",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
