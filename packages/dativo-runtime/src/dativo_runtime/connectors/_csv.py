"""The built-in ``csv`` reader: streamed with ``pyarrow.csv``, typed leniently."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from dativo_plugin_sdk import ValidationError
from dativo_plugin_sdk._arrow import arrow_type_for
from dativo_runtime._version import __version__
from dativo_runtime.connectors._config_schemas import CSV_CONFIG_SCHEMA
from dativo_runtime.connectors._files import FileReader, SourceFile
from dativo_runtime.connectors._options import CsvOptions

log = logging.getLogger("dativo.files")

__all__ = ["CsvReader"]


class CsvReader(FileReader):
    """Read CSV files (local, glob or ``s3://``) as Arrow batches, with bounded memory.

    Config, besides the file-reader keys (``path``, ``stream``, ``incremental``,
    ``block_size``, S3 options): ``delimiter`` (``,``), ``quote_char`` (``"``),
    ``has_header`` (true), ``column_names`` (when there is no header), ``skip_rows`` (0),
    ``encoding`` (``utf8``), ``null_values`` (``[""]``: empty fields are null),
    ``invalid_rows`` (``error``, or ``skip`` to drop rows with the wrong number of fields), and
    ``column_types`` (column name to SDK type, converted straight from the text; the runtime
    fills it from the job's ``schema``); :class:`~._options.CsvOptions` checks them.

    Column types are inferred from each file's first block (``discover`` reports them).
    Every block is parsed as text and then converted column by column; a column whose
    values in a block do not all convert stays text in that batch, so the runtime's
    validation can point at the offending records instead of the whole read failing.
    """

    __version__ = __version__
    requires_sdk = ">=1.0,<2"
    config_schema = CSV_CONFIG_SCHEMA
    options_class = CsvOptions
    extensions = (".csv", ".tsv", ".txt")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        options = self.options
        assert isinstance(options, CsvOptions)
        self.invalid_rows = options.invalid_rows
        self.skipped_rows = 0
        self._read_options: dict[str, Any] = {
            "block_size": self.block_size,
            "use_threads": False,
            # With column_names, pyarrow reads no header: a file that has one skips it instead.
            "skip_rows": options.skip_rows + (1 if options.has_header and options.column_names else 0),
            "column_names": list(options.column_names) if options.column_names else None,
            "autogenerate_column_names": False,
            "encoding": options.encoding,
        }
        self._parse_options: dict[str, Any] = {
            "delimiter": options.delimiter,
            "quote_char": options.quote_char,
            "newlines_in_values": options.newlines_in_values,
        }
        self._null_values = list(options.null_values)
        self._column_types = {name: arrow_type_for(kind) for name, kind in options.column_types.items()}

    def _skip(self, row: Any) -> str:
        self.skipped_rows += 1
        return "skip"

    def _open_reader(self, stream: Any, file: SourceFile, column_types: dict[str, pa.DataType] | None) -> Any:
        parse = dict(self._parse_options)
        if self.invalid_rows == "skip":
            # Only the read that yields data counts skipped rows; the inferring read skips quietly.
            parse["invalid_row_handler"] = self._skip if column_types is not None else (lambda row: "skip")
        try:
            return pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(**self._read_options),
                parse_options=pacsv.ParseOptions(**parse),
                convert_options=pacsv.ConvertOptions(
                    column_types=column_types,
                    null_values=self._null_values,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
        except pa.ArrowInvalid as exc:
            if "Empty CSV file" in str(exc):
                return None
            raise ValidationError(
                f"{file.location} is not valid CSV: {exc}; fix the file, or set invalid_rows: skip "
                "to drop rows with the wrong number of fields",
                details={"file": file.location},
            ) from None

    def infer_schema(self, stream: Any, file: SourceFile) -> pa.Schema:
        """Infer column types from the file's first block (``pyarrow.csv`` inference)."""
        reader = self._open_reader(stream, file, None)
        return reader.schema if reader is not None else pa.schema([])

    def read_batches(self, stream: Any, file: SourceFile) -> Iterator[pa.RecordBatch]:
        """Stream the file block by block; each block becomes one typed record batch."""
        inferred = self._schema_of(file)
        if not inferred.names:
            return
        skipped_before = self.skipped_rows  # opening reads the first block already
        reader = self._open_reader(stream, file, {name: pa.string() for name in inferred.names})
        if reader is None:
            return
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                skipped = self.skipped_rows - skipped_before
                if skipped:
                    # Nothing silent: the rows are dropped on purpose, and the run says how many.
                    log.warning(
                        "%s: skipped %d row%s with the wrong number of fields (invalid_rows: skip)",
                        file.location,
                        skipped,
                        "" if skipped == 1 else "s",
                    )
                return
            except pa.ArrowInvalid as exc:
                raise ValidationError(
                    f"{file.location} is not valid CSV: {exc}; fix the file, or set invalid_rows: skip "
                    "to drop rows with the wrong number of fields",
                    details={"file": file.location},
                ) from None
            yield _typed(batch, inferred, self._column_types)


def _typed(batch: pa.RecordBatch, inferred: pa.Schema, wanted: dict[str, pa.DataType]) -> pa.RecordBatch:
    """Convert each text column to its wanted (else inferred) type where every value converts."""
    arrays = []
    for name, text in zip(batch.schema.names, batch.columns, strict=True):
        target = wanted.get(name) or (inferred.field(name).type if name in inferred.names else pa.string())
        converted = text
        if not pa.types.is_string(target) and not pa.types.is_null(target):
            try:
                converted = pc.cast(text, target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # Kept as text: validation reports which values are wrong.
        arrays.append(converted)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
