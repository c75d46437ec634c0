"""The built-in ``jsonl`` reader: JSON lines parsed by ``pyarrow.json`` block by block."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson

from dativo_plugin_sdk import ValidationError
from dativo_plugin_sdk._arrow import batch_to_arrow
from dativo_runtime._version import __version__
from dativo_runtime.connectors._config_schemas import JSONL_CONFIG_SCHEMA
from dativo_runtime.connectors._files import FileReader, SourceFile
from dativo_runtime.connectors._options import JsonlOptions

__all__ = ["JsonlReader"]


class JsonlReader(FileReader):
    """Read JSON-lines files (local, glob or ``s3://``) as Arrow batches, with bounded memory.

    Config: the file-reader keys (``path``, ``stream``, ``incremental``, ``block_size``,
    S3 options). Each block of about ``block_size`` bytes, cut at a line end, is parsed by
    ``pyarrow.json``; a block whose values change type between lines (``1`` then ``"x"``)
    is parsed line by line instead and converted leniently, so that validation can report
    the offending records. A line that is not a JSON object fails the read with its
    line number.
    """

    __version__ = __version__
    requires_sdk = ">=1.0,<2"
    config_schema = JSONL_CONFIG_SCHEMA
    options_class = JsonlOptions
    extensions = (".jsonl", ".ndjson", ".json")

    def _blocks(self, stream: Any) -> Iterator[tuple[int, bytes]]:
        """Yield (first line number, bytes) blocks cut at line ends."""
        line = 1
        pending = b""
        while True:
            chunk = stream.read(self.block_size)
            if not chunk:
                break
            pending += bytes(chunk)
            cut = pending.rfind(b"\n")
            if cut == -1:
                continue
            block, pending = pending[: cut + 1], pending[cut + 1 :]
            yield line, block
            line += block.count(b"\n")
        if pending.strip():
            yield line, pending + b"\n"

    @staticmethod
    def _parse(block: bytes, first_line: int, file: SourceFile) -> pa.RecordBatch:
        try:
            table = pajson.read_json(
                io.BytesIO(block),
                read_options=pajson.ReadOptions(use_threads=False, block_size=len(block) + 1),
                parse_options=pajson.ParseOptions(
                    newlines_in_values=False, unexpected_field_behavior="infer"
                ),
            )
            return table.combine_chunks().to_batches()[0] if table.num_rows else batch_to_arrow([])
        except pa.ArrowInvalid:
            pass  # Mixed types across lines, or a malformed line: parse line by line below.
        records = []
        for offset, raw in enumerate(block.split(b"\n")):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    f"{file.location} line {first_line + offset} is not valid JSON ({exc.msg}); "
                    "fix or remove the line",
                    details={"file": file.location, "line": first_line + offset},
                ) from None
            if not isinstance(record, dict):
                raise ValidationError(
                    f"{file.location} line {first_line + offset} is a JSON {type(record).__name__}, "
                    "not an object",
                    details={"file": file.location, "line": first_line + offset},
                )
            records.append(record)
        return batch_to_arrow(records)

    def infer_schema(self, stream: Any, file: SourceFile) -> pa.Schema:
        """Infer column types from the first block of the file."""
        for line, block in self._blocks(stream):
            return self._parse(block, line, file).schema
        return pa.schema([])

    def read_batches(self, stream: Any, file: SourceFile) -> Iterator[pa.RecordBatch]:
        """Parse the file block by block."""
        for line, block in self._blocks(stream):
            batch = self._parse(block, line, file)
            if batch.num_rows:
                yield batch
