"""The built-in connectors: ``csv`` and ``jsonl`` readers and the ``parquet`` writer.

They are ordinary SDK plugins (``BaseReader`` / ``BaseWriter``) that job files name by
their built-in names; :class:`ParquetDataset` reads what the parquet writer committed.
"""

from ._csv import CsvReader
from ._dataset import ManifestFile, ParquetDataset, RecoveryReport, RunManifest
from ._jsonl import JsonlReader
from ._parquet import ParquetWriter, new_run_id

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
