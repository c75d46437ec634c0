"""A good writer that commits Parquet files, to prove the Parquet read-back of the conformance suite.

Loaded by path from the tests; not collected as tests itself.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
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
    ValidationError,
    is_arrow_batch,
    records_from_batch,
)
from dativo_testkit import find_schema_violations, records_to_arrow


class ParquetWriter(BaseWriter):
    """Stages one Parquet file per batch under ``{path}/_staging/{run}``; commit moves them into ``path``."""

    __version__ = "1.0.0"
    config_schema = {
        "type": "object",
        "properties": {"path": {"type": "string", "minLength": 1, "description": "The output folder."}},
        "required": ["path"],
        "additionalProperties": False,
    }

    def __init__(self, config: dict[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__(config, schema)
        if not isinstance(config.get("path"), str) or not config["path"]:
            raise ConfigurationError("ParquetWriter needs 'path', the output folder")
        if not schema:
            raise ConfigurationError("ParquetWriter needs the stream's schema")
        self.path = Path(config["path"])
        self.staging = self.path / "_staging" / uuid.uuid4().hex

    def check_connection(self) -> ConnectionTestResult:
        self.path.mkdir(parents=True, exist_ok=True)
        return ConnectionTestResult(success=True, message=f"{self.path} exists")

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        assert self.schema is not None
        rows = records_from_batch(records)
        violations = find_schema_violations(rows, self.schema, limit=1)
        if violations:
            raise ValidationError(str(violations[0]))
        self.staging.mkdir(parents=True, exist_ok=True)
        target = self.staging / f"part-{file_counter:06d}.parquet"
        # An Arrow batch is written as it came (its json column already holds JSON text);
        # dict records are typed by the SDK's mapping, which turns json values into JSON text.
        table = pa.table(records) if is_arrow_batch(records) else records_to_arrow(rows, self.schema)
        pq.write_table(table, target)
        return [{"path": str(target), "record_count": len(rows), "size_bytes": target.stat().st_size}]

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        for meta in file_metadata:
            source = Path(meta["path"])
            os.replace(source, self.path / f"{self.staging.name}-{source.name}")
        shutil.rmtree(self.staging, ignore_errors=True)
        return {"files_committed": len(file_metadata)}

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
