"""Example target plugin: JSON-lines files with a staged, atomic commit.

Each batch is written to ``{path}/_staging/{run_id}/part-{counter}.jsonl``; ``commit_files``
moves the staged files into ``{path}`` with ``os.replace`` (atomic on one filesystem) and
``abort`` deletes the staging folder. Written against ``dativo_plugin_sdk`` only.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import (
    BaseWriter,
    Batch,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    ValidationError,
    records_from_batch,
)

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "float": (float, int),
    "boolean": (bool,),
    "timestamp": (datetime, str),
    "date": (date, str),
    "decimal": (Decimal, int, float, str),
    "binary": (bytes,),
}


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


class JsonlWriter(BaseWriter):
    """Writes batches as JSON-lines files in a local folder (config ``path``)."""

    __version__ = "1.0.0"
    requires_sdk = ">=1.0,<2"
    config_schema = {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "The output folder (dativo-run resolves it against the job file).",
            }
        },
        "required": ["path"],
        "additionalProperties": False,
    }

    def __init__(self, config: dict[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__(config, schema)
        if not config.get("path"):
            raise ConfigurationError("JsonlWriter needs 'path' (the output folder) in its config")
        self.path = Path(config["path"])
        self.run_id = uuid.uuid4().hex[:12]
        self.staging = self.path / "_staging" / self.run_id

    def check_connection(self) -> ConnectionTestResult:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".probe-{self.run_id}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return ConnectionTestResult(
                False, f"cannot write to {self.path}: {exc.strerror}", "TARGET_NOT_WRITABLE"
            )
        return ConnectionTestResult(True, f"{self.path} is writable")

    def _validate(self, records: list[dict[str, Any]]) -> None:
        if not self.schema:
            return
        for index, record in enumerate(records):
            for column in self.schema:
                value = record.get(column.name)
                if value is None:
                    if not column.nullable:
                        raise ValidationError(
                            f"record {index}: required column {column.name!r} is missing or null",
                            details={"record_index": index, "column": column.name},
                        )
                    continue
                allowed = _PYTHON_TYPES.get(column.type.value)
                bad_bool = isinstance(value, bool) and column.type.value in ("integer", "float")
                if (allowed is not None and not isinstance(value, allowed)) or bad_bool:
                    raise ValidationError(
                        f"record {index}: column {column.name!r} should be {column.type.value}, "
                        f"got {type(value).__name__}",
                        details={"record_index": index, "column": column.name, "value": repr(value)[:100]},
                    )

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        rows = records_from_batch(records)
        self._validate(rows)
        self.staging.mkdir(parents=True, exist_ok=True)
        target = self.staging / f"part-{self.run_id}-{file_counter:06d}.jsonl"
        with target.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, default=_default, ensure_ascii=False) + "\n")
        return [{"path": str(target), "record_count": len(rows), "size_bytes": target.stat().st_size}]

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        committed = []
        for meta in file_metadata:
            source = Path(meta["path"])
            final = self.path / source.name
            os.replace(source, final)
            committed.append(str(final))
        shutil.rmtree(self.staging, ignore_errors=True)
        return {"files_committed": len(committed), "paths": committed}

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
