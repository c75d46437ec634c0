"""How the parquet writer cuts rows into Hive partitions and holds them until they are written.

Rows are split by the values of the ``partition_by`` columns (each value one quoted path
segment, ``region=eu``), buffered per partition until a row group is full, and written to
a staged file of that partition.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["PartitionBuffer", "StagedFile", "partition_segment", "split_by_partition"]

_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def partition_segment(value: Any) -> str:
    """The text of one Hive path segment's value, percent-quoted; null and empty are Hive's null."""
    if value is None:
        return _HIVE_NULL
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dt.datetime, dt.date, dt.time)):
        text = value.isoformat()
    else:
        text = str(value)
    return urllib.parse.quote(text, safe="-_.~ ") if text else _HIVE_NULL


@dataclass
class PartitionBuffer:
    """Rows of one partition waiting to fill a row group."""

    partition: str
    values: dict[str, str]
    tables: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0

    def add(self, table: pa.Table) -> None:
        """Buffer ``table``'s rows."""
        self.tables.append(table)
        self.rows += table.num_rows
        self.nbytes += table.nbytes

    def take(self, rows: int | None) -> pa.Table:
        """Take the first ``rows`` rows out of the buffer (all of them for ``None``)."""
        table = pa.concat_tables(self.tables) if len(self.tables) != 1 else self.tables[0]
        count = table.num_rows if rows is None else min(rows, table.num_rows)
        head, tail = table.slice(0, count), table.slice(count)
        self.tables = [tail] if tail.num_rows else []
        self.rows = tail.num_rows
        self.nbytes = tail.nbytes if tail.num_rows else 0
        return head


@dataclass
class StagedFile:
    """A staged Parquet file of one partition, open for more row groups."""

    partition: str
    values: dict[str, str]
    name: str
    staged: str
    local_path: Path
    sink: Any
    writer: pq.ParquetWriter
    rows: int = 0
    row_groups: int = 0


def split_by_partition(
    table: pa.Table, partition_by: Sequence[str], base: dict[str, str]
) -> list[tuple[dict[str, str], pa.Table]]:
    """Split rows by the values of their partition columns.

    Args:
        table: The rows.
        partition_by: The partition columns, outermost first.
        base: Partition values every row shares (``ingest_date``), put first.

    Returns:
        One ``(values, rows)`` pair a partition, ``values`` mapping each partition column
        to its path segment.
    """
    if not partition_by:
        return [(base, table)]
    rows = pa.array(range(table.num_rows), pa.int64())
    keyed = table.select(list(partition_by)).append_column("__dativo_row", rows)
    grouped = keyed.group_by(list(partition_by), use_threads=False).aggregate([("__dativo_row", "list")])
    parts = []
    for index in range(grouped.num_rows):
        values = dict(base)
        for column in partition_by:
            values[column] = partition_segment(grouped.column(column)[index].as_py())
        take = grouped.column("__dativo_row_list")[index].values
        parts.append((values, table.take(take)))
    return parts
