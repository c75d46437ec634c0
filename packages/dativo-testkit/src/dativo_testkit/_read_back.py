"""Reading a writer's output back and comparing it with what was written."""

from __future__ import annotations

import base64
import binascii
import json
import math
import numbers
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import Column, ColumnType, Record
from dativo_plugin_sdk._arrow import import_pyarrow

__all__ = [
    "RecordComparison",
    "compare_records",
    "new_records",
    "read_output_folder",
    "values_match",
]

_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def _visible(relative: Path) -> bool:
    return not any(part.startswith(("_", ".")) for part in relative.parts)


def read_output_folder(folder: str | os.PathLike[str]) -> list[Record]:
    """Read every committed JSON-lines and Parquet file under ``folder``.

    Files and folders whose name starts with ``_`` or ``.`` are skipped: that is where
    writers stage uncommitted data (``_staging``, ``_temporary``, ``.tmp``), following
    the Hive and Spark convention. Files are read in path order.

    Args:
        folder: The output folder; a missing folder holds no records.

    Returns:
        The records of every ``*.jsonl``/``*.ndjson`` and ``*.parquet``/``*.pq`` file.

    Raises:
        ValueError: If a JSON-lines file holds a line that is not a JSON object.
        ImportError: If there are Parquet files and pyarrow is not installed.
    """
    root = Path(folder)
    if not root.exists():
        return []
    records: list[Record] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and _visible(p.relative_to(root))):
        suffix = path.suffix.lower()
        if suffix in _JSONL_SUFFIXES:
            # Split on "\n" only: str.splitlines would also split on U+2028 inside values.
            for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
                if not line.strip():
                    continue
                value = json.loads(line)
                if not isinstance(value, dict):
                    raise ValueError(f"{path}:{number} is not a JSON object")
                records.append(value)
        elif suffix in _PARQUET_SUFFIXES:
            import_pyarrow()  # a clear error when pyarrow is missing
            import pyarrow.parquet as pq

            records.extend(pq.read_table(path).to_pylist())
    return records


def _as_utc(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        return None


def _as_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _binary_forms(value: Any) -> list[bytes]:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [bytes(value)]
    if not isinstance(value, str):
        return []
    forms: list[bytes] = []
    try:
        forms.append(bytes.fromhex(value))
    except ValueError:
        pass
    try:
        forms.append(base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error):
        pass
    return forms


def _is_boolean(value: Any) -> bool:
    # bool, or numpy.bool_ from a pandas-based read-back hook.
    return type(value).__name__ in ("bool", "bool_")


def _floats_equal(a: Any, b: Any) -> bool:
    numeric = isinstance(a, numbers.Real) and isinstance(b, numbers.Real)
    if not numeric or _is_boolean(a) or _is_boolean(b):
        return False
    return float(a) == float(b) or (math.isnan(float(a)) and math.isnan(float(b)))


def _integers_equal(a: Any, b: Any) -> bool:
    integral = isinstance(a, numbers.Integral) and isinstance(b, numbers.Integral)
    return integral and not _is_boolean(a) and not _is_boolean(b) and int(a) == int(b)


def values_match(column_type: ColumnType, written: Any, read: Any) -> bool:
    """Tell whether ``read`` is a faithful read-back of ``written`` for a column type.

    Writers store values in their own forms; these are accepted: timestamps as aware
    datetimes or ISO 8601 text (compared as instants; naive means UTC), dates as dates or
    ISO text, decimals as ``Decimal``, numbers or text (compared by value), binary as
    bytes, hex or base64 text, JSON as values or JSON text; integers, floats and booleans
    by value (numpy scalars too), never a boolean for a number or a float for an integer.

    Args:
        column_type: The column's type.
        written: The value handed to the writer.
        read: The value read back.

    Returns:
        Whether the two denote the same value.
    """
    if written is None or read is None:
        return written is None and read is None
    if column_type is ColumnType.TIMESTAMP:
        a, b = _as_utc(written), _as_utc(read)
        return a is not None and a == b
    if column_type is ColumnType.DATE:
        day = _as_date(written)
        return day is not None and day == _as_date(read)
    if column_type is ColumnType.DECIMAL:
        number = _as_decimal(written)
        return number is not None and number == _as_decimal(read)
    if column_type is ColumnType.BINARY:
        return bytes(written) in _binary_forms(read)
    if column_type is ColumnType.JSON:
        return bool(_as_json(written) == _as_json(read))
    if column_type is ColumnType.FLOAT:
        return _floats_equal(written, read)
    if column_type is ColumnType.INTEGER:
        return _integers_equal(written, read)
    if column_type is ColumnType.BOOLEAN:
        return _is_boolean(written) and _is_boolean(read) and bool(written) == bool(read)
    return bool(written == read)


def _records_match(schema: Sequence[Column], written: Mapping[str, Any], read: Mapping[str, Any]) -> bool:
    return all(values_match(c.type, written.get(c.name), read.get(c.name)) for c in schema)


@dataclass(frozen=True)
class RecordComparison:
    """Records written but not read back, and records read back but never written."""

    missing: tuple[Record, ...]
    unexpected: tuple[Record, ...]

    def __bool__(self) -> bool:
        """``True`` when the two sides agree."""
        return not self.missing and not self.unexpected


def compare_records(
    schema: Sequence[Column], written: Iterable[Mapping[str, Any]], read: Iterable[Mapping[str, Any]]
) -> RecordComparison:
    """Match written records with read-back records, ignoring order and extra columns.

    Args:
        schema: The columns compared (columns the writer added are ignored).
        written: What was handed to the writer.
        read: What came back.

    Returns:
        The unmatched records on each side.
    """
    remaining = [dict(r) for r in read]
    missing: list[Record] = []
    for record in written:
        for index, candidate in enumerate(remaining):
            if _records_match(schema, record, candidate):
                del remaining[index]
                break
        else:
            missing.append(dict(record))
    return RecordComparison(missing=tuple(missing), unexpected=tuple(remaining))


def _frozen(record: Mapping[str, Any]) -> str:
    return repr(sorted((str(k), repr(v)) for k, v in record.items()))


def new_records(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]) -> list[Record]:
    """Return the records of ``after`` that ``before`` did not hold (as a multiset difference)."""
    seen = Counter(_frozen(r) for r in before)
    fresh: list[Record] = []
    for record in after:
        key = _frozen(record)
        if seen[key]:
            seen[key] -= 1
        else:
            fresh.append(dict(record))
    return fresh
