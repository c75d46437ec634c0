"""Column types, columns and discovered streams: the vocabulary of schemas."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Column", "ColumnType", "DiscoveredStream"]


class ColumnType(str, enum.Enum):
    """The column types a plugin may declare.

    Each maps to one Arrow/Parquet type in the runtime:

    ========== ================================= =====================================
    type       Python values                      Arrow / Parquet
    ========== ================================= =====================================
    string     ``str``                            ``string``
    integer    ``int`` (64-bit signed)            ``int64``
    float      ``float`` (``int`` accepted)       ``float64``
    boolean    ``bool``                           ``bool``
    timestamp  ``datetime`` (aware, or ISO 8601)  ``timestamp[us, tz=UTC]``
    date       ``date`` (or ``YYYY-MM-DD``)       ``date32``
    decimal    ``Decimal`` (or numeric string)    ``decimal128(38, 9)``
    binary     ``bytes``                          ``binary``
    json       any JSON-serialisable value        ``string`` holding JSON text
    ========== ================================= =====================================
    """

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    DATE = "date"
    DECIMAL = "decimal"
    BINARY = "binary"
    JSON = "json"

    def __str__(self) -> str:
        return self.value


def _column_type(value: ColumnType | str) -> ColumnType:
    try:
        return ColumnType(value)
    except ValueError:
        allowed = ", ".join(t.value for t in ColumnType)
        raise ValueError(f"unknown column type {value!r}; use one of: {allowed}") from None


@dataclass(frozen=True)
class Column:
    """One column of a stream's schema.

    Args:
        name: Column name, unique within the stream.
        type: A :class:`ColumnType` or its string value (``"integer"``...).
        nullable: Whether the column may hold nulls (a required column is not nullable).
        description: Optional human description.

    Raises:
        ValueError: If ``name`` is empty or ``type`` is not a known column type.
    """

    name: str
    type: ColumnType
    nullable: bool = True
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"column name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "type", _column_type(self.type))
        object.__setattr__(self, "nullable", bool(self.nullable))

    def to_dict(self) -> dict[str, Any]:
        """Return the column as JSON-serialisable data."""
        data: dict[str, Any] = {"name": self.name, "type": self.type.value, "nullable": self.nullable}
        if self.description is not None:
            data["description"] = self.description
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        """Build a column from :meth:`to_dict` output (``required: true`` means not nullable)."""
        nullable = data.get("nullable")
        if nullable is None:
            nullable = not data.get("required", False)
        return cls(
            name=data["name"],
            type=data["type"],
            nullable=bool(nullable),
            description=data.get("description"),
        )


def _to_columns(schema: Sequence[Column | Mapping[str, Any]]) -> tuple[Column, ...]:
    columns = tuple(c if isinstance(c, Column) else Column.from_dict(c) for c in schema)
    names = [c.name for c in columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate column names in schema: {', '.join(duplicates)}")
    return columns


@dataclass(frozen=True)
class DiscoveredStream:
    """A stream (table, endpoint, file set) that a reader can extract.

    Args:
        name: Stream name, unique within a discovery result.
        schema: The stream's columns (:class:`Column` objects or their dicts).
        type: What kind of object it is (``"table"``, ``"endpoint"``, ``"file"``...).
        primary_key: Columns that identify a record; each must be in ``schema``.
        cursor_field: Column that orders records for incremental reads; must be in ``schema``.

    Raises:
        ValueError: If the name is empty, column names repeat, or the primary key or
            cursor field names a column the schema does not have.
    """

    name: str
    schema: tuple[Column, ...] = ()
    type: str = "table"
    primary_key: tuple[str, ...] = ()
    cursor_field: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"stream name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "schema", _to_columns(self.schema))
        pk = self.primary_key
        object.__setattr__(self, "primary_key", (pk,) if isinstance(pk, str) else tuple(pk or ()))
        names = {c.name for c in self.schema}
        if self.schema:
            missing = [k for k in self.primary_key if k not in names]
            if missing:
                raise ValueError(f"stream {self.name!r}: primary key column(s) {missing} not in schema")
            if self.cursor_field is not None and self.cursor_field not in names:
                raise ValueError(f"stream {self.name!r}: cursor field {self.cursor_field!r} not in schema")

    def column(self, name: str) -> Column:
        """Return the column called ``name``.

        Raises:
            KeyError: If the stream has no such column.
        """
        for c in self.schema:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the stream as JSON-serialisable data."""
        return {
            "name": self.name,
            "type": self.type,
            "schema": [c.to_dict() for c in self.schema],
            "primary_key": list(self.primary_key),
            "cursor_field": self.cursor_field,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiscoveredStream:
        """Build a stream from :meth:`to_dict` output."""
        schema = data.get("schema") or []
        if isinstance(schema, Mapping):  # {"columns": [...]} is accepted too
            schema = schema.get("columns") or []
        return cls(
            name=data["name"],
            schema=tuple(schema),
            type=data.get("type", "table"),
            primary_key=tuple(data.get("primary_key") or ()),
            cursor_field=data.get("cursor_field"),
        )
