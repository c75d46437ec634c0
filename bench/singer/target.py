"""A minimal singer-sdk target writing each stream to one snappy Parquet file with pyarrow.

Usage::

    python bench/singer/tap.py --config TAP.json | python bench/singer/target.py --config TARGET.json

``TARGET.json`` holds ``path``, the folder to write ``<stream>.parquet`` into. Records
arrive as JSON; singer-sdk validates them, parses ``date-time`` strings back into
datetimes and JSON numbers into ``Decimal``; :meth:`ParquetSink.process_batch` turns the
``number`` fields into floats, as the Parquet schema has them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink

# The workload lives in the plugin folder so that sandboxed plugins can import it too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

import workload  # found through the path set just above


class ParquetSink(BatchSink):
    """Writes batches of records (10,000 by default) as row groups of one Parquet file."""

    def setup(self) -> None:
        """Open the stream's Parquet file."""
        super().setup()
        self._schema = workload.arrow_schema()
        self._float_fields = [name for name, (kind, _) in workload.COLUMN_TYPES.items() if kind == "float"]
        path = Path(self.config["path"]) / f"{self.stream_name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, self._schema, compression="snappy")

    def process_batch(self, context: dict[str, Any]) -> None:
        """Convert the batch's records to Arrow and write them."""
        records = context.get("records") or []
        for record in records:
            for name in self._float_fields:
                value = record.get(name)
                if value is not None:
                    record[name] = float(value)
        if records:
            self._writer.write_batch(pa.RecordBatch.from_pylist(records, schema=self._schema))

    def clean_up(self) -> None:
        """Close the Parquet file once the stream is drained."""
        self._writer.close()
        super().clean_up()


class BenchTarget(Target):
    """Singer target landing streams as Parquet files in a local folder."""

    name = "target-dativo-bench-parquet"
    config_jsonschema = th.PropertiesList(th.Property("path", th.StringType, required=True)).to_dict()
    default_sink_class = ParquetSink


if __name__ == "__main__":
    BenchTarget.cli()
