"""The built-in ``postgres`` reader: a table, a view or a query, read as Arrow through ADBC.

Rows never become Python objects: ADBC streams PostgreSQL's binary COPY output into Arrow
record batches, which are re-cut into ``batch_size`` rows; only the last row of a batch is
looked at, for the incremental state.

**Incremental reads** (``source.incremental`` with ``cursor_field``) return the rows after the
saved position in ``(cursor, primary key)`` order: ``WHERE (cursor, pk...) > (saved cursor,
saved pk...) ORDER BY cursor, pk...``. The primary key breaks ties, so rows sharing the
boundary's cursor value are neither read twice nor skipped, also when rows with that value
arrive after a run. The state is ``{"cursor": ..., "pk": [...]}``, set after each batch it
covers; the runtime saves it only with the commit. Rows whose cursor is null are not read by
an incremental job.

**Snapshots.** Each extraction (the whole stream, or one partition) runs in one read-only
REPEATABLE READ transaction, so all its batches come from one snapshot of the database.

**Partitions** (``partition_column``, an integer column): a full read splits the column's
``min..max`` into ``partitions`` (default 4) equal ranges, named by their bounds
(``id:[0,25000)``; the last one closed, ``id:[75000,99999]``). An incremental read splits by
remainder instead (``id%4=0`` ... ``id%4=3``): ranges move as the table grows, remainders
never do, so each partition resumes from its own state. Rows whose key is null are the
partition ``id:null``. When ``partitions`` changes, the saved positions of the other counts
go to every partition (``done`` in its params), which skips the rows they cover: nothing is
read twice or lost.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import (
    WHOLE_STREAM,
    BaseReader,
    Column,
    ColumnType,
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
    DiscoveredStream,
    DiscoveryResult,
    Partition,
    State,
    ValidationError,
)
from dativo_runtime._version import __version__
from dativo_runtime.connectors._check_results import result_from_error
from dativo_runtime.connectors._config_schemas import POSTGRES_CONFIG_SCHEMA
from dativo_runtime.connectors._options import PostgresOptions
from dativo_runtime.connectors._postgres_catalog import (
    Relation,
    list_relations,
    query_relation,
    split_table,
    suggest_cursor,
)
from dativo_runtime.connectors._postgres_connection import PostgresConnection
from dativo_runtime.connectors._postgres_types import ColumnPlan, quote_ident, quote_literal

__all__ = ["PostgresReader"]

_INTEGER_TYPES = ("int2", "int4", "int8")
_MAX_CLAIMS_SIZE = 48 * 1024  # under the host's 64 KiB limit on a partition's params


def _state_value(value: Any) -> Any:
    """A cursor or key value as JSON state: integers as they are, anything else as PostgreSQL text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return "\\x" + bytes(value).hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def _remainder_is(ident: str, modulo: int, remainder: int) -> str:
    """``column mod modulo = remainder``, with negative keys in the same ``0..modulo-1`` range."""
    return f"mod(mod({ident}::int8, {modulo}) + {modulo}, {modulo}) = {remainder}"


def _rechunk(reader: Any, size: int) -> Iterator[pa.RecordBatch]:
    """The reader's batches re-cut into batches of ``size`` rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    schema = reader.schema
    for batch in reader:
        if not batch.num_rows:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count < size:
            continue
        table = pa.Table.from_batches(pending, schema=schema)
        start = 0
        while count - start >= size:
            yield table.slice(start, size).combine_chunks().to_batches()[0]
            start += size
        rest = table.slice(start)
        pending = rest.combine_chunks().to_batches() if rest.num_rows else []
        count = rest.num_rows
    if count:
        yield pa.Table.from_batches(pending, schema=schema).combine_chunks().to_batches()[0]


class PostgresReader(BaseReader):
    """Read a PostgreSQL table, view or query as Arrow batches (ADBC; ``dativo-runtime[postgres]``).

    Config: ``dsn`` (or ``host``, ``port``, ``user``, ``password``, ``dbname``), ``table`` or
    ``query``, ``schemas`` (for ``discover``), ``batch_size``, ``partition_column`` and
    ``partitions``, ``cursor_field`` and ``primary_key``, ``unsupported_types``,
    ``connect_timeout``; :class:`~._options.PostgresOptions` checks them.
    """

    __version__ = __version__
    requires_sdk = ">=1.1,<2"
    supports_incremental = True
    config_schema = POSTGRES_CONFIG_SCHEMA

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.options = PostgresOptions.from_config(config)

    # Connections and the source -------------------------------------------------------

    def _connect(self) -> PostgresConnection:
        return PostgresConnection(self.options)

    @property
    def _source_sql(self) -> str:
        if self.options.query:
            return f"({self.options.query}) AS q"
        assert self.options.table
        schema, name = split_table(self.options.table)
        return f"{quote_ident(schema)}.{quote_ident(name)}"

    @property
    def _what(self) -> str:
        return f"table {self.options.table}" if self.options.table else "the query"

    def _named_columns(self) -> list[str]:
        names = [self.options.cursor_field, self.options.partition_column, *self.options.primary_key]
        return list(dict.fromkeys(n for n in names if n))

    def _relation(self, conn: PostgresConnection) -> Relation:
        """The source's columns; the server's own message when a table or named column is missing."""
        if not self.options.table and not self.options.query:
            raise ConfigurationError(
                "the postgres reader needs table (schema.name) or query (select ...) to read",
                details={"field": "table"},
            )
        named = self._named_columns()
        probe = ", ".join(quote_ident(n) for n in named) if named else "*"
        conn.execute(f"SELECT {probe} FROM {self._source_sql} LIMIT 0", doing=f"reading {self._what}").close()
        if self.options.query:
            return query_relation(conn, self.options.query)
        assert self.options.table
        found = list_relations(conn, (), only=split_table(self.options.table))
        if not found:
            raise ConfigurationError(
                f"table {self.options.table!r} is not a table or view the reader can see",
                details={"field": "table"},
            )
        return found[0]

    def _plans(self, relation: Relation) -> list[ColumnPlan]:
        return [
            column.plan(
                unsupported=self.options.unsupported_types, relation=relation.qualified or "the query"
            )
            for column in relation.columns
        ]

    def _primary_key(self, relation: Relation) -> list[str]:
        return list(self.options.primary_key) or list(relation.primary_key)

    def _stream_name(self) -> str:
        return self.options.stream or (self.options.table or "query")

    # The reader contract --------------------------------------------------------------

    def check_connection(self) -> ConnectionTestResult:
        """Connect, and check the table or query and every column the config names."""
        try:
            with self._connect() as conn:
                if not self.options.table and not self.options.query:
                    conn.rows("SELECT 1 AS ok", doing="checking the connection")
                    return ConnectionTestResult(True, "connected to PostgreSQL")
                relation = self._relation(conn)
                self._plans(relation)
                self._check_columns(relation)
        except DativoError as exc:
            return result_from_error(exc)
        return ConnectionTestResult(
            True,
            f"connected to PostgreSQL; {self._what} has {len(relation.columns)} column(s)",
            details={"columns": len(relation.columns)},
        )

    def _check_columns(self, relation: Relation) -> None:
        names = {c.name for c in relation.columns}
        if self.options.partition_column:
            column = next(c for c in relation.columns if c.name == self.options.partition_column)
            if column.typname not in _INTEGER_TYPES:
                raise ConfigurationError(
                    f"partition_column {column.name!r} is {column.sql_type}; "
                    "key ranges need an integer column",
                    details={"field": "partition_column"},
                )
        missing = [n for n in self._primary_key(relation) if n not in names]
        if missing:
            raise ConfigurationError(
                f"primary_key names {', '.join(missing)}, not columns of {self._what}",
                details={"field": "primary_key"},
            )

    def discover(self) -> DiscoveryResult:
        """The configured table or query, else every table and view of ``schemas``."""
        with self._connect() as conn:
            if self.options.table or self.options.query:
                relations = [self._relation(conn)]
            else:
                relations = list_relations(conn, self.options.schemas)
        streams = [self._stream(relation) for relation in relations]
        return DiscoveryResult(objects=streams, metadata={"schemas": list(self.options.schemas)})

    def _stream(self, relation: Relation) -> DiscoveredStream:
        columns = []
        for column in relation.columns:
            try:
                plan = column.plan(unsupported=self.options.unsupported_types, relation=relation.qualified)
                columns.append(
                    Column(column.name, plan.column_type, column.nullable, description=plan.sql_type)
                )
            except ConfigurationError:
                columns.append(
                    Column(
                        column.name,
                        ColumnType.STRING,
                        column.nullable,
                        description=f"{column.sql_type} (unsupported)",
                    )
                )
        names = {c.name for c in columns}
        configured = bool(self.options.table or self.options.query)
        cursor = self.options.cursor_field if configured else None
        cursor = cursor if cursor in names else suggest_cursor(relation)
        primary_key = list(self._primary_key(relation) if configured else relation.primary_key)
        name = self._stream_name() if configured else relation.qualified
        return DiscoveredStream(
            name=name,
            schema=tuple(columns),
            type=relation.kind,
            primary_key=tuple(k for k in primary_key if k in names),
            cursor_field=cursor,
        )

    def partitions(self) -> list[Partition]:
        """Key ranges of ``partition_column``, or its remainders when incremental; one stream without it.

        A full read splits the column's ``min..max`` into ranges (index-friendly). An
        incremental read splits by ``mod(column, partitions)``, whose names never change for a
        fixed count, so each partition resumes from its own state however the table grows.
        Rows whose key is null form a partition of their own.
        """
        column = self.options.partition_column
        if not column:
            return [Partition(WHOLE_STREAM)]
        ident = quote_ident(column)
        with self._connect() as conn:
            relation = self._relation(conn)
            self._check_columns(relation)
            bounds = conn.rows(
                f"SELECT min({ident})::int8 AS lo, max({ident})::int8 AS hi, "
                f"bool_or({ident} IS NULL) AS nulls FROM {self._source_sql}",
                doing=f"finding the range of {column}",
            )[0]
        count = self.options.partitions
        if self.options.incremental:
            claims = self._claims_of_other_splits(column, count)
            parts = [
                Partition(
                    f"{column}%{count}={r}",
                    {"modulo": count, "remainder": r} | ({"done": claims} if claims else {}),
                )
                for r in range(count)
            ]
        else:
            parts = self._ranges(column, bounds["lo"], bounds["hi"])
        if bounds["nulls"]:
            parts.append(Partition(f"{column}:null", {"null": True}))
        return parts or [Partition(WHOLE_STREAM)]

    def _claims_of_other_splits(self, column: str, count: int) -> list[dict[str, Any]]:
        """The saved positions of remainder partitions of another ``partitions`` count.

        Each says "the rows with this remainder up to this cursor and key were read". Every
        partition skips the rows any of them covers besides its own position (which may be
        older: a count used before, then changed, then used again), so changing
        ``partitions`` neither re-reads nor loses a row.

        Raises:
            ConfigurationError: If they are too many to hand to the partitions (reset the state).
        """
        prefix = f"{column}%"
        claims: list[dict[str, Any]] = []
        for name, saved in sorted(self.partition_states.items()):
            modulo, _, remainder = name[len(prefix) :].partition("=")
            if not name.startswith(prefix) or not (modulo.isdigit() and remainder.isdigit()):
                continue
            if int(modulo) == count or saved.get("cursor") is None:
                continue
            claims.append(
                {
                    "modulo": int(modulo),
                    "remainder": int(remainder),
                    "cursor": saved["cursor"],
                    "pk": saved.get("pk"),
                }
            )
        if len(json.dumps(claims, default=str)) > _MAX_CLAIMS_SIZE:
            raise ConfigurationError(
                f"the job's state holds {len(claims)} partitions of an earlier partitions count, too many "
                f"to carry over to {count} partitions; keep the earlier count, or reset the state "
                "(dativo-run state reset) and read again into an empty target",
                details={"field": "partitions"},
            )
        return claims

    def _ranges(self, column: str, lo: int | None, hi: int | None) -> list[Partition]:
        """``min..max`` in ``partitions`` equal ranges named by their bounds, the last one closed."""
        if lo is None or hi is None:
            return []
        ranges: list[Partition] = []
        span = hi - lo + 1
        width = math.ceil(span / min(self.options.partitions, span))
        start = lo
        while start <= hi:
            end = start + width
            if end > hi:
                ranges.append(
                    Partition(f"{column}:[{start},{hi}]", {"from": start, "to": hi, "closed": True})
                )
            else:
                ranges.append(Partition(f"{column}:[{start},{end})", {"from": start, "to": end}))
            start = end
        return ranges

    def _partition_filter(self) -> str | None:
        if self.partition.is_whole_stream or not self.options.partition_column:
            return None
        ident = quote_ident(self.options.partition_column)
        params = self.partition.params
        if params.get("null"):
            return f"{ident} IS NULL"
        if "modulo" in params:
            return _remainder_is(ident, int(params["modulo"]), int(params["remainder"]))
        upper = "<=" if params.get("closed") else "<"
        return f"{ident} >= {int(params['from'])} AND {ident} {upper} {int(params['to'])}"

    def _order(self, relation: Relation) -> list[str]:
        """The incremental order: the cursor, then the primary key as its tiebreaker."""
        cursor = self.options.cursor_field
        if not cursor:
            raise ConfigurationError(
                "the job is incremental, so the postgres reader needs cursor_field (updated_at)",
                details={"field": "cursor_field"},
            )
        if cursor not in {c.name for c in relation.columns}:
            raise ConfigurationError(
                f"cursor_field {cursor!r} is not a column of {self._what}", details={"field": "cursor_field"}
            )
        key = [k for k in self._primary_key(relation) if k != cursor]
        if not key and cursor not in self._primary_key(relation):
            raise ConfigurationError(
                f"{self._what} has no primary key, which incremental reads need to break ties between "
                "rows with the same cursor value; set primary_key (columns that identify a row)",
                details={"field": "primary_key"},
            )
        return [cursor, *key]

    def _position(self, relation: Relation, order: list[str], saved: Mapping[str, Any]) -> list[str] | None:
        """The SQL literals of a saved position's cursor and key, if there is one."""
        saved_cursor, saved_key = saved.get("cursor"), saved.get("pk")
        if saved_cursor is None:
            return None
        values = [saved_cursor, *(saved_key or [])]
        if len(values) != len(order):
            raise ConfigurationError(
                f"the saved state {dict(saved)} does not match the cursor and key ({', '.join(order)}); "
                "the job's cursor_field or primary_key changed: reset the state (dativo-run state reset)",
                details={"field": "cursor_field"},
            )
        types = {c.name: c.sql_type for c in relation.columns}
        literals = [
            str(v)
            if isinstance(v, int) and not isinstance(v, bool)
            else f"{quote_literal(str(v))}::{types[n]}"
            for n, v in zip(order, values, strict=True)
        ]
        return literals

    def _after(self, relation: Relation, order: list[str], state: State) -> str | None:
        """``(cursor, pk...) > (saved...)`` for the saved position, if there is one."""
        position = self._position(relation, order, state.to_dict())
        if position is None:
            return None
        return f"({', '.join(quote_ident(n) for n in order)}) > ({', '.join(position)})"

    def _not_done(self, relation: Relation, order: list[str], claims: list[dict[str, Any]]) -> list[str]:
        """Conditions skipping the rows that saved positions of another split already cover."""
        ident = quote_ident(self.options.partition_column or "")
        columns = ", ".join(quote_ident(n) for n in order)
        conditions = []
        for claim in claims:
            position = self._position(relation, order, claim) or []
            remainder = _remainder_is(ident, int(claim["modulo"]), int(claim["remainder"]))
            conditions.append(f"NOT ({remainder} AND ({columns}) <= ({', '.join(position)}))")
        return conditions

    def _furthest(
        self,
        conn: PostgresConnection,
        relation: Relation,
        order: list[str],
        positions: list[Mapping[str, Any]],
    ) -> dict[str, Any]:
        """The greatest of saved positions, compared as PostgreSQL compares the cursor and key."""
        rows = ", ".join(
            f"({', '.join([str(index), *literals])})"
            for index, literals in enumerate(self._position(relation, order, p) for p in positions)
            if literals is not None
        )
        names = ", ".join(["i", *(f"c{n}" for n in range(len(order)))])
        found = conn.rows(
            f"SELECT i FROM (VALUES {rows}) AS v({names}) ORDER BY "
            + ", ".join(f"c{n} DESC" for n in range(len(order)))
            + " LIMIT 1",
            doing="comparing the saved positions",
        )
        best = positions[int(found[0]["i"])]
        return {"cursor": best["cursor"], "pk": list(best.get("pk") or [])}

    def extract(self, state: State | None = None) -> Iterator[pa.RecordBatch]:
        """Yield the table's (or the partition's) rows in batches of ``batch_size``.

        Raises:
            ConfigurationError: A missing table or column, an unsupported type, an
                incremental job without a cursor or a tiebreaker.
            DativoConnectionError: The server is unreachable or the connection broke (retryable).
        """
        incremental = self.options.incremental and state is not None
        with self._connect() as conn, conn.snapshot():
            relation = self._relation(conn)
            plans = self._plans(relation)
            where = [f for f in (self._partition_filter(),) if f]
            order: list[str] = []
            claims: list[dict[str, Any]] = []
            if incremental:
                assert state is not None
                order = self._order(relation)
                where.append(f"{quote_ident(order[0])} IS NOT NULL")
                after = self._after(relation, order, state)
                if after:
                    where.append(after)
                claims = list(self.partition.params.get("done") or [])
                where += self._not_done(relation, order, claims)
            sql = f"SELECT {', '.join(p.select for p in plans)} FROM {self._source_sql}"
            if where:
                sql += " WHERE " + " AND ".join(where)
            if order:
                sql += " ORDER BY " + ", ".join(quote_ident(n) for n in order)
            cursor = conn.execute(sql, doing=f"reading {self._what}")
            try:
                reader = cursor.fetch_record_batch()
                for raw in _rechunk(reader, self.options.batch_size):
                    batch = self._fixed(raw, plans)
                    yield batch
                    if incremental:
                        assert state is not None
                        last = batch.num_rows - 1
                        state.set("cursor", _state_value(batch.column(order[0])[last].as_py()))
                        state.set("pk", [_state_value(batch.column(n)[last].as_py()) for n in order[1:]])
            finally:
                cursor.close()
            if claims:
                # The partition now holds a position of its own: every row of it up to the
                # furthest of the positions it was handed is read (before this run or in it).
                assert state is not None
                furthest = self._furthest(conn, relation, order, [*claims, state.to_dict()])
                state.set("cursor", furthest["cursor"])
                state.set("pk", furthest["pk"])

    def _fixed(self, batch: pa.RecordBatch, plans: list[ColumnPlan]) -> pa.RecordBatch:
        if not any(p.needs_fix for p in plans):
            return batch
        arrays = []
        for plan, array in zip(plans, batch.columns, strict=True):
            try:
                arrays.append(plan.fix(array))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValidationError(
                    f"column {plan.name!r} ({plan.sql_type}) has a value that is not "
                    f"a {plan.arrow_type}: {exc}",
                    details={"column": plan.name},
                ) from None
        return pa.RecordBatch.from_arrays(arrays, names=[p.name for p in plans])
