"""The built-in connectors: ``csv`` and ``jsonl`` readers and the ``parquet`` writer.

They are ordinary SDK plugins (``BaseReader`` / ``BaseWriter``) that job files name by
their built-in names; :class:`ParquetDataset` reads what the parquet writer committed.
"""

from dativo_runtime.connectors._csv import CsvReader
from dativo_runtime.connectors._dataset import ManifestFile, ParquetDataset, RecoveryReport, RunManifest
from dativo_runtime.connectors._jsonl import JsonlReader
from dativo_runtime.connectors._parquet import ParquetWriter, new_run_id

__all__ = [
    "CsvReader",
    "JsonlReader",
    "ManifestFile",
    "ParquetDataset",
    "ParquetWriter",
    "RecoveryReport",
    "RunManifest",
    "new_run_id",
]
