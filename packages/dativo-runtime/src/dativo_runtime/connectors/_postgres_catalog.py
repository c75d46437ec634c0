"""What the postgres reader learns from ``pg_catalog``: relations, their columns and primary keys.

One query lists every column of every table, view and materialized view of the schemas
asked for (domains resolved to their base type, arrays to their element); a second lists
primary keys. A ``query`` source is described by the Arrow schema of its empty result,
whose fields carry the PostgreSQL type (ADBC's ``POSTGRESQL:type`` metadata).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime.connectors._postgres_connection import PostgresConnection
from dativo_runtime.connectors._postgres_types import ColumnPlan, plan_column, quote_literal

__all__ = ["Relation", "RelationColumn", "list_relations", "query_relation", "suggest_cursor"]

_CURSOR_NAME = re.compile(r"^(updated|modified|changed|last_modified|last_updated)(_at|_on|_time|_ts)?$")

_COLUMNS_SQL = """
SELECT n.nspname AS schema_name, c.relname AS relation, c.relkind::text AS kind,
       a.attname AS column_name, a.attnum AS position, NOT a.attnotnull AS nullable,
       format_type(a.atttypid, a.atttypmod) AS sql_type,
       bt.typname AS typname,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
       et.typname AS element, bt.typtype = 'e' AS is_enum
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname IN ({schemas}) {only}
  AND NOT c.relispartition
ORDER BY n.nspname, c.relname, a.attnum
"""

_KEYS_SQL = """
SELECT n.nspname AS schema_name, c.relname AS relation, a.attname AS column_name, k.ord AS ord
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE con.contype = 'p' AND n.nspname IN ({schemas}) {only}
ORDER BY n.nspname, c.relname, k.ord
"""

_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}


@dataclass(frozen=True)
class RelationColumn:
    """One column as the catalog describes it."""

    name: str
    typname: str
    sql_type: str
    typmod: int = -1
    element: str | None = None
    is_enum: bool = False
    nullable: bool = True

    def plan(self, *, unsupported: str, relation: str) -> ColumnPlan:
        """How to read it (:func:`~._postgres_types.plan_column`)."""
        return plan_column(
            self.name,
            self.typname,
            typmod=self.typmod,
            sql_type=self.sql_type,
            element=self.element,
            is_enum=self.is_enum,
            unsupported=unsupported,
            relation=relation,
        )


@dataclass
class Relation:
    """A table, a view or a query: its columns and primary key."""

    schema: str
    name: str
    kind: str
    columns: list[RelationColumn] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        """``schema.name`` as the user writes it."""
        return f"{self.schema}.{self.name}" if self.schema else self.name


def split_table(table: str) -> tuple[str, str]:
    """``schema.name`` (or ``name``, in ``public``) as ``(schema, name)``; quotes are honoured."""
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."]+)', table)
    names = [quoted.replace('""', '"') if quoted else bare.strip() for quoted, bare in parts]
    if len(names) == 1:
        return "public", names[0]
    if len(names) == 2:
        return names[0], names[1]
    raise ConfigurationError(
        f"table {table!r} is not schema.name (public.orders)", details={"field": "table"}
    )


def list_relations(
    conn: PostgresConnection, schemas: Sequence[str], *, only: tuple[str, str] | None = None
) -> list[Relation]:
    """The tables and views of ``schemas`` (or the one relation ``only``), with their keys."""
    in_schemas = ", ".join(quote_literal(s) for s in (only[:1] if only else schemas))
    where = f"AND c.relname = {quote_literal(only[1])}" if only else ""
    relations: dict[tuple[str, str], Relation] = {}
    for row in conn.rows(_COLUMNS_SQL.format(schemas=in_schemas, only=where), doing="reading the catalog"):
        key = (row["schema_name"], row["relation"])
        relation = relations.setdefault(key, Relation(key[0], key[1], _KINDS.get(row["kind"], "table")))
        relation.columns.append(
            RelationColumn(
                name=row["column_name"],
                typname=row["typname"],
                sql_type=row["sql_type"],
                typmod=int(row["typmod"]) if row["typmod"] is not None else -1,
                element=row["element"],
                is_enum=bool(row["is_enum"]),
                nullable=bool(row["nullable"]),
            )
        )
    for row in conn.rows(_KEYS_SQL.format(schemas=in_schemas, only=where), doing="reading primary keys"):
        relation_of = relations.get((row["schema_name"], row["relation"]))
        if relation_of is not None:
            relation_of.primary_key.append(row["column_name"])
    return list(relations.values())


def query_relation(conn: PostgresConnection, query: str) -> Relation:
    """Describe a ``query`` source from the typed, empty result of ``SELECT * FROM (query) LIMIT 0``."""
    cursor = conn.execute(f"SELECT * FROM ({query}) AS q LIMIT 0", doing="describing the query")
    try:
        schema = cursor.fetch_record_batch().schema
    finally:
        cursor.close()
    relation = Relation("", "query", "query")
    for arrow_field in schema:
        metadata = arrow_field.metadata or {}
        typname = metadata.get(b"POSTGRESQL:type", b"text").decode()
        typmod = int(metadata.get(b"POSTGRESQL:typmod", b"-1").decode() or -1)
        # ADBC names an array type as pg_type does: its element's name after an underscore.
        element = typname[1:] if typname.startswith("_") else None
        shown = f"{element}[]" if element else typname
        relation.columns.append(RelationColumn(arrow_field.name, typname, shown, typmod, element))
    return relation


def suggest_cursor(relation: Relation) -> str | None:
    """A timestamp column named like ``updated_at`` or ``modified_at``, if the relation has one."""
    for column in relation.columns:
        if column.typname in ("timestamp", "timestamptz", "date") and _CURSOR_NAME.match(column.name.lower()):
            return column.name
    return None
