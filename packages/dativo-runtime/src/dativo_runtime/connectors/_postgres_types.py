"""How each PostgreSQL type is read: the SQL that selects it, its Dativo type, its Arrow fix-up.

ADBC's own mapping is Arrow-native and kept where it fits (integers, floats, booleans,
text, date, timestamp, bytea, arrays of those). Where it differs from what Dativo stores,
the select casts in SQL (``uuid``, ``json``, ``time``, enums to text; ``numeric`` to text,
then to ``decimal128(p, s)`` in Arrow, column by column, never row by row). A type Dativo has
no exact type for is refused with its column and type named, or read as text when the job
says ``unsupported_types: text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dativo_plugin_sdk import ColumnType, ConfigurationError

__all__ = ["ColumnPlan", "plan_column", "quote_ident", "quote_literal"]

_INTEGERS = {"int2", "int4", "int8"}
_FLOATS = {"float4", "float8"}
_TEXTS = {"text", "varchar", "bpchar", "name", "char", "citext"}
_AS_TEXT = {"uuid": ColumnType.STRING, "time": ColumnType.STRING, "timetz": ColumnType.STRING}
_AS_JSON = {"json", "jsonb"}
# Array elements ADBC reads natively into Arrow lists; other elements are cast to text[].
_NATIVE_ELEMENTS = _INTEGERS | _FLOATS | _TEXTS | {"bool", "date", "timestamp", "timestamptz", "bytea"}
_TEXT_ELEMENTS = {"uuid", "json", "jsonb", "numeric", "time", "timetz"}
# What Dativo's ``decimal`` holds: decimal128(38, 9).
_MAX_SCALE = 9
_MAX_INTEGER_DIGITS = 29


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier in double quotes, inner double quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A string literal that reads the same whatever ``standard_conforming_strings`` says."""
    if "\x00" in value:
        raise ConfigurationError("a value sent to PostgreSQL may not contain a NUL character")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is read.

    Args:
        name: The column's name.
        sql_type: Its type as PostgreSQL prints it (``numeric(12,2)``, ``integer[]``).
        select: The select-list expression that reads it.
        column_type: Its Dativo column type (what ``discover`` reports and the job writes).
        arrow_type: The Arrow type the text it is selected as converts to, if any (numerics).
        timezone_utc: Whether a timestamp without time zone is labelled UTC.
    """

    name: str
    sql_type: str
    select: str
    column_type: ColumnType
    arrow_type: pa.DataType | None = None
    timezone_utc: bool = False

    def fix(self, array: pa.Array[Any]) -> pa.Array[Any]:
        """Convert one column of a batch as read to the type this plan promises."""
        if self.arrow_type is not None:
            return pc.cast(array, self.arrow_type)
        if self.timezone_utc and pa.types.is_timestamp(array.type) and array.type.tz is None:
            return pc.cast(array, pa.timestamp(array.type.unit, tz="UTC"))
        return array

    @property
    def needs_fix(self) -> bool:
        """Whether :meth:`fix` changes anything."""
        return self.arrow_type is not None or self.timezone_utc


def _numeric(typmod: int) -> tuple[int, int] | None:
    if typmod < 4:
        return None
    return ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF


def plan_column(
    name: str,
    typname: str,
    *,
    typmod: int = -1,
    sql_type: str | None = None,
    element: str | None = None,
    is_enum: bool = False,
    unsupported: str = "error",
    relation: str = "",
) -> ColumnPlan:
    """Decide how to read a column of type ``typname``.

    Args:
        name: The column's name.
        typname: The type's ``pg_type.typname`` (a domain's base type).
        typmod: Its type modifier (numeric precision and scale), -1 when unset.
        sql_type: The type as ``format_type`` prints it, for messages; ``typname`` by default.
        element: For an array, its element's ``typname``.
        is_enum: Whether the type is an enum.
        unsupported: ``error`` or ``text`` (the config's ``unsupported_types``).
        relation: The table or query, for messages.

    Returns:
        The column's plan.

    Raises:
        ConfigurationError: For a type Dativo cannot hold exactly, unless ``unsupported`` is
            ``text``.
    """
    shown = sql_type or typname
    ident = quote_ident(name)
    if typname in _INTEGERS:
        return ColumnPlan(name, shown, ident, ColumnType.INTEGER)
    if typname in _FLOATS:
        return ColumnPlan(name, shown, ident, ColumnType.FLOAT)
    if typname == "bool":
        return ColumnPlan(name, shown, ident, ColumnType.BOOLEAN)
    if typname in _TEXTS:
        return ColumnPlan(name, shown, ident, ColumnType.STRING)
    if typname == "date":
        return ColumnPlan(name, shown, ident, ColumnType.DATE)
    if typname in ("timestamp", "timestamptz"):
        return ColumnPlan(name, shown, ident, ColumnType.TIMESTAMP, timezone_utc=typname == "timestamp")
    if typname == "bytea":
        return ColumnPlan(name, shown, ident, ColumnType.BINARY)
    if typname in _AS_JSON:
        return ColumnPlan(name, shown, f"{ident}::text", ColumnType.JSON)
    if typname in _AS_TEXT or is_enum:
        return ColumnPlan(name, shown, f"{ident}::text", _AS_TEXT.get(typname, ColumnType.STRING))
    problem = f"type {shown}"
    if typname == "numeric":
        bounds = _numeric(typmod)
        if bounds is not None:
            precision, scale = bounds
            if scale <= _MAX_SCALE and precision - scale <= _MAX_INTEGER_DIGITS:
                arrow = pa.decimal128(precision, scale)
                return ColumnPlan(name, shown, f"{ident}::text", ColumnType.DECIMAL, arrow_type=arrow)
            problem = (
                f"type {shown}, wider than Dativo's decimal (at most {_MAX_INTEGER_DIGITS} digits before "
                f"the point and {_MAX_SCALE} after)"
            )
        else:
            problem = f"type {shown} without a precision and scale (Dativo's decimal needs numeric(p, s))"
    elif element is not None:
        if element in _NATIVE_ELEMENTS:
            return ColumnPlan(name, shown, ident, ColumnType.JSON)
        if element in _TEXT_ELEMENTS:
            return ColumnPlan(name, shown, f"{ident}::text[]", ColumnType.JSON)
    if unsupported == "text":
        return ColumnPlan(name, shown, f"{ident}::text", ColumnType.STRING)
    where = f" of {relation}" if relation else ""
    raise ConfigurationError(
        f"column {name!r}{where} has {problem}, which the postgres reader does not read; "
        "cast it in a query (query: select ..., col::text as col ...), or set unsupported_types: text "
        "to read every such column as text",
        details={"field": "unsupported_types", "column": name, "type": shown},
    )
