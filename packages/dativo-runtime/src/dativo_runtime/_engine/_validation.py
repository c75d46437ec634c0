"""Schema validation and coercion of Arrow batches, vectorised with ``pyarrow.compute``.

Each column is cast to the job's type in one ``pc.cast(..., safe=True)`` call. Only when
that fails does the validator look for the offending rows, by bisection: halves that cast
cleanly are kept, so finding ``k`` bad values among ``n`` costs about ``k log n`` casts.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from dativo_plugin_sdk import ValidationError
from dativo_runtime._sandbox.host._untrusted_arrow import check_column_names

__all__ = [
    "QUARANTINE_COLUMNS",
    "BatchValidator",
    "ValidatedBatch",
    "ValidationReport",
]

ValidationMode = Literal["strict", "warn", "quarantine"]

QUARANTINE_COLUMNS = ("_dativo_reason", "_dativo_field", "_dativo_record", "_dativo_run_id")
"""Columns the quarantine dataset adds to the original values (all kept as text)."""

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError, ValueError)
_Cast = Callable[["pa.Array[Any]"], "pa.Array[Any]"]
_MAX_EXAMPLES = 10
_MAX_VALUE_TEXT = 200


@dataclass
class ValidationReport:
    """What validation found over a whole run.

    Attributes:
        mode: ``strict``, ``warn`` or ``quarantine``.
        records_checked: Records validated.
        records_invalid: Records with at least one invalid value.
        counts: Invalid values by ``(field, reason)``.
        examples: The first invalid values: record number, field, reason, value.
        dropped_columns: Columns the data had and the schema does not (not written).
    """

    mode: ValidationMode = "strict"
    records_checked: int = 0
    records_invalid: int = 0
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    dropped_columns: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON data."""
        return {
            "mode": self.mode,
            "records_checked": self.records_checked,
            "records_invalid": self.records_invalid,
            "by_field": [
                {"field": f, "reason": r, "count": c}
                for (f, r), c in sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
            ],
            "examples": list(self.examples),
            "dropped_columns": sorted(self.dropped_columns),
        }

    def add(self, other: ValidationReport) -> None:
        """Count what ``other`` (another partition's report) found too."""
        self.records_checked += other.records_checked
        self.records_invalid += other.records_invalid
        self.counts.update(other.counts)
        self.examples.extend(other.examples[: max(0, _MAX_EXAMPLES - len(self.examples))])
        self.dropped_columns |= other.dropped_columns

    def summary(self) -> str:
        """One paragraph: how many records are invalid, by field and reason, and the first examples."""
        if not self.records_invalid:
            return f"all {self.records_checked} records are valid"
        parts = ", ".join(f"{f}: {r} x{c}" for (f, r), c in sorted(self.counts.items(), key=lambda i: -i[1]))
        examples = "; ".join(
            f"record {e['record']} {e['field']}={e['value']!r} ({e['message']})" for e in self.examples[:3]
        )
        return (
            f"{self.records_invalid} of {self.records_checked} records are invalid ({parts}); "
            f"first examples: {examples}"
        )


@dataclass
class ValidatedBatch:
    """The outcome of validating one batch.

    Attributes:
        valid: Rows to write, coerced to the output schema (``warn``: every row, with
            invalid values set to null).
        quarantine: Invalid rows as text with the reason columns (``quarantine`` mode).
        invalid_count: Rows with at least one invalid value.
    """

    valid: pa.RecordBatch
    quarantine: pa.RecordBatch | None
    invalid_count: int


def _text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "backslashreplace")
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= _MAX_VALUE_TEXT else text[:_MAX_VALUE_TEXT] + "..."


def _to_text(array: pa.Array[Any]) -> pa.Array[Any]:
    """Return any array as strings (JSON text for nested values)."""
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_large_string(array.type):
        return pc.cast(array, pa.string())
    if not (
        pa.types.is_nested(array.type)
        or pa.types.is_binary(array.type)
        or pa.types.is_large_binary(array.type)
    ):
        try:
            return pc.cast(array, pa.string())
        except _CAST_ERRORS:
            pass
    return pa.array([None if v is None else _text(v) for v in array.to_pylist()], pa.string())


def _json_text(array: pa.Array[Any]) -> pa.Array[Any]:
    """Return values as JSON text (strings are taken to be JSON already)."""
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return pc.cast(array, pa.string())
    values = array.to_pylist()
    return pa.array(
        [
            None if v is None else json.dumps(v, default=str, ensure_ascii=False, sort_keys=True)
            for v in values
        ],
        pa.string(),
    )


def _cast_strategies(source: pa.DataType, target: pa.DataType) -> list[_Cast]:
    strategies: list[_Cast] = [lambda a: pc.cast(a, target, safe=True)]
    if pa.types.is_timestamp(target) and target.tz is not None and (pa.types.is_string(source)):
        naive = pa.timestamp(target.unit)
        # A timestamp without an offset is taken to be UTC.
        strategies.append(lambda a: pc.cast(pc.cast(a, naive, safe=True), target, safe=True))
    if pa.types.is_string(target) and (pa.types.is_nested(source) or pa.types.is_binary(source)):
        strategies.append(_to_text)
    if pa.types.is_boolean(target) and pa.types.is_string(source):
        strategies.append(lambda a: pc.cast(pc.utf8_lower(a), target, safe=True))
    return strategies


def _cast_bisect(
    array: pa.Array[Any],
    strategies: list[_Cast],
    target: pa.DataType,
    offset: int,
    bad: list[int],
) -> pa.Array[Any]:
    for strategy in strategies:
        try:
            result = strategy(array)
        except _CAST_ERRORS:
            continue
        return result if result.type == target else pc.cast(result, target)
    if len(array) == 1:
        bad.append(offset)
        return pa.nulls(1, target)  # type: ignore[call-overload,no-any-return]
    middle = len(array) // 2
    left = _cast_bisect(array.slice(0, middle), strategies, target, offset, bad)
    right = _cast_bisect(array.slice(middle), strategies, target, offset + middle, bad)
    return pa.concat_arrays([left, right])


def _readable(data_type: pa.DataType, field: pa.Field[Any]) -> str:
    declared = (field.metadata or {}).get(b"dativo.type")
    return declared.decode() if declared else str(data_type)


class BatchValidator:
    """Validate and coerce batches to a schema, batch by batch.

    Args:
        schema: The output Arrow schema; ``None`` takes the first batch's own types
            (columns entirely null there become strings).
        mode: ``strict``, ``warn`` or ``quarantine``.
        run_id: Written into quarantined rows.
    """

    def __init__(self, schema: pa.Schema | None, mode: ValidationMode, *, run_id: str = "") -> None:
        self.mode = mode
        self.run_id = run_id
        self.schema = schema
        self.report = ValidationReport(mode=mode)
        self._records_seen = 0

    @property
    def output_schema(self) -> pa.Schema | None:
        """Schema of the valid batches (nullable everywhere in ``warn`` mode)."""
        if self.schema is None:
            return None
        if self.mode == "warn":
            return pa.schema([f.with_nullable(True) for f in self.schema])
        return self.schema

    def quarantine_schema(self) -> pa.Schema:
        """Schema of quarantined rows: every column as text, plus the reason columns."""
        names = list(self.schema.names) if self.schema is not None else []
        fields: list[pa.Field[Any]] = [pa.field(n, pa.string()) for n in names]
        fields += [
            pa.field(n, pa.string() if n != "_dativo_record" else pa.int64()) for n in QUARANTINE_COLUMNS
        ]
        return pa.schema(fields)

    def _adopt(self, batch: pa.RecordBatch) -> None:
        fields = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in batch.schema]
        self.schema = pa.schema(fields)

    def validate(self, batch: pa.RecordBatch) -> ValidatedBatch:
        """Validate one batch.

        Args:
            batch: Records as read.

        Returns:
            The valid (coerced) rows, the quarantined rows, and the invalid count.

        Raises:
            ValidationError: In ``strict`` mode, when any record is invalid; the message
                is the run's summary so far and ``details`` holds the report, or when
                the batch's column names repeat.
        """
        check_column_names(batch.schema)
        if self.schema is None:
            self._adopt(batch)
        assert self.schema is not None
        rows = batch.num_rows
        first_record = self._records_seen
        self._records_seen += rows
        self.report.records_checked += rows
        extra = [n for n in batch.schema.names if n not in self.schema.names]
        self.report.dropped_columns.update(extra)

        columns: list[pa.Array[Any]] = []
        problems: list[tuple[str, str, list[int], str]] = []  # field, reason, rows, message template
        for target in self.schema:
            if target.name in batch.schema.names:
                source = batch.column(target.name)
                if isinstance(source, pa.ChunkedArray):
                    source = source.combine_chunks()
            else:
                source = pa.nulls(rows, target.type)
            is_json = (target.metadata or {}).get(b"dativo.type") == b"json"
            bad: list[int] = []
            if is_json:
                typed = _json_text(source)
            elif source.type == target.type:
                typed = source
            elif pa.types.is_null(source.type):
                typed = pa.nulls(rows, target.type)
            else:
                typed = _cast_bisect(source, _cast_strategies(source.type, target.type), target.type, 0, bad)
            if bad:
                problems.append(
                    (target.name, "invalid_type", bad, f"not a valid {_readable(target.type, target)}")
                )
            if not target.nullable and typed.null_count:
                bad_set = set(bad)
                nulls = pc.indices_nonzero(typed.is_null()).to_pylist()
                missing = [int(i) for i in nulls if i is not None and i not in bad_set]
                if missing:
                    problems.append((target.name, "missing_required", missing, "required value is missing"))
            columns.append(typed)

        output_schema = self.output_schema
        assert output_schema is not None
        if not problems:
            return ValidatedBatch(pa.RecordBatch.from_arrays(columns, schema=output_schema), None, 0)

        invalid_rows: dict[int, list[tuple[str, str]]] = {}
        candidates: list[tuple[int, str, str, str]] = []
        for name, reason, positions, message in problems:
            self.report.counts[(name, reason)] += len(positions)
            for position in positions:
                invalid_rows.setdefault(position, []).append((name, message))
            candidates += [(p, name, reason, message) for p in positions[:_MAX_EXAMPLES]]
        for position, name, reason, message in sorted(candidates)[
            : _MAX_EXAMPLES - len(self.report.examples)
        ]:
            value = batch.column(name)[position].as_py() if name in batch.schema.names else None
            self.report.examples.append(
                {
                    "record": first_record + position,
                    "field": name,
                    "reason": reason,
                    "message": message,
                    "value": None if value is None else _text(value),
                }
            )
        self.report.records_invalid += len(invalid_rows)
        if self.mode == "strict":
            raise ValidationError(
                f"validation failed (strict): {self.report.summary()}. Nothing was committed. Fix the source "
                "data or the job's schema, or set validation: warn or quarantine",
                details={"validation": self.report.to_dict()},
            )
        if self.mode == "warn":
            return ValidatedBatch(
                pa.RecordBatch.from_arrays(columns, schema=output_schema), None, len(invalid_rows)
            )

        mask = pa.array([i not in invalid_rows for i in range(rows)], pa.bool_())
        valid = pa.RecordBatch.from_arrays(columns, schema=output_schema).filter(mask)
        return ValidatedBatch(valid, self._quarantine(batch, invalid_rows, first_record), len(invalid_rows))

    def _quarantine(
        self, batch: pa.RecordBatch, invalid_rows: dict[int, list[tuple[str, str]]], first_record: int
    ) -> pa.RecordBatch:
        assert self.schema is not None
        positions = sorted(invalid_rows)
        take = pa.array(positions, pa.int64())
        arrays = []
        for name in self.schema.names:
            if name in batch.schema.names:
                arrays.append(_to_text(pc.take(batch.column(name), take)))
            else:
                arrays.append(pa.nulls(len(positions), pa.string()))
        reasons = ["; ".join(f"{f}: {m}" for f, m in invalid_rows[p]) for p in positions]
        fields = [",".join(dict.fromkeys(f for f, _ in invalid_rows[p])) for p in positions]
        arrays.append(pa.array(reasons, pa.string()))
        arrays.append(pa.array(fields, pa.string()))
        arrays.append(pa.array([first_record + p for p in positions], pa.int64()))
        arrays.append(pa.array([self.run_id] * len(positions), pa.string()))
        return pa.RecordBatch.from_arrays(arrays, schema=self.quarantine_schema())
