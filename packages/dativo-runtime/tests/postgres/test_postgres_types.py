"""Every PostgreSQL type the ``postgres`` reader supports, read as Arrow and through a real run to Parquet."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime.connectors import PostgresReader

from .conftest import PostgresServer, parquet_rows, write_job

UTC = dt.timezone.utc

CREATE = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE public.all_types (
    id int4 PRIMARY KEY, small int2, big int8, price numeric(12, 3), ratio real, score float8,
    flag boolean, note text, code varchar(10), fixed char(3), day date, at timestamp, at_tz timestamptz,
    clock time, ident uuid, doc json, docb jsonb, blob bytea, ints int4[], words text[], feeling mood,
    amount positive, span interval
)
"""
INSERT = """
INSERT INTO public.all_types VALUES
 (1, -32768, 9223372036854775807, 123456789.125, 1.5, 2.25, true, 'héllo ''quoted''', 'v', 'ab',
  '2024-02-29', '2024-03-01 12:34:56.789012', '2024-03-01 12:34:56.5+02', '23:59:59.999999',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": 1,  "a": [true]}', '{"b": 1, "a": [true]}',
  '\\x00ff10', ARRAY[1, NULL, 3], ARRAY['x', 'y z'], 'happy', 7, '1 day 02:00:00'),
 (2, 0, -1, -0.001, -0.25, -1e300, false, '', 'w', 'xyz', '1970-01-01', '1999-12-31 23:59:59',
  '2000-01-01 00:00:00+00', '00:00:00', '00000000-0000-0000-0000-000000000000', '[]', 'null',
  '\\x', '{}', '{}', 'sad', 1, '-3 months'),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL)
"""

NULLABLE = [
    "small", "big", "price", "ratio", "score", "flag", "note", "code", "fixed", "day", "at", "at_tz",
    "clock", "ident", "doc", "docb", "blob", "ints", "words", "feeling", "amount", "span",
]  # fmt: skip

# What each row must become in the Parquet files of a run with discovery: Dativo's types
# (decimal128(38, 9), timestamps in UTC, json as text, arrays as JSON text).
EXPECTED = [
    {
        "id": 1, "small": -32768, "big": 9223372036854775807, "price": Decimal("123456789.125"),
        "ratio": 1.5, "score": 2.25, "flag": True, "note": "héllo 'quoted'", "code": "v", "fixed": "ab ",
        "day": dt.date(2024, 2, 29), "at": dt.datetime(2024, 3, 1, 12, 34, 56, 789012, tzinfo=UTC),
        "at_tz": dt.datetime(2024, 3, 1, 10, 34, 56, 500000, tzinfo=UTC), "clock": "23:59:59.999999",
        "ident": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "doc": '{"b": 1,  "a": [true]}',
        "docb": '{"a": [true], "b": 1}', "blob": b"\x00\xff\x10", "ints": "[1, null, 3]",
        "words": '["x", "y z"]', "feeling": "happy", "amount": 7, "span": "1 day 02:00:00",
    },
    {
        "id": 2, "small": 0, "big": -1, "price": Decimal("-0.001"), "ratio": -0.25, "score": -1e300,
        "flag": False, "note": "", "code": "w", "fixed": "xyz", "day": dt.date(1970, 1, 1),
        "at": dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), "at_tz": dt.datetime(2000, 1, 1, tzinfo=UTC),
        "clock": "00:00:00", "ident": "00000000-0000-0000-0000-000000000000", "doc": "[]", "docb": "null",
        "blob": b"", "ints": "[]", "words": "[]", "feeling": "sad", "amount": 1, "span": "-3 mons",
    },
    {"id": 3, **dict.fromkeys(NULLABLE)},
]  # fmt: skip


@pytest.fixture(scope="module")
def all_types(postgres: PostgresServer) -> PostgresServer:
    postgres.execute(
        "DROP TABLE IF EXISTS public.all_types", "DROP DOMAIN IF EXISTS positive", "DROP TYPE IF EXISTS mood"
    )
    postgres.execute(*[s for s in CREATE.split(";") if s.strip()], INSERT)
    return postgres


def _read(config: dict[str, Any]) -> pa.Table:
    with PostgresReader(config) as reader:
        return pa.Table.from_batches(list(reader.extract()))


def test_the_reader_yields_arrow_types_of_the_columns(all_types: PostgresServer) -> None:
    table = _read({"dsn": all_types.dsn, "table": "public.all_types", "unsupported_types": "text"})
    types = {f.name: f.type for f in table.schema}
    assert types["small"] == pa.int16()
    assert types["id"] == pa.int32()
    assert types["big"] == pa.int64()
    assert types["price"] == pa.decimal128(12, 3)
    assert types["ratio"] == pa.float32()
    assert types["score"] == pa.float64()
    assert types["at"] == pa.timestamp("us", tz="UTC")
    assert types["at_tz"] == pa.timestamp("us", tz="UTC")
    assert types["day"] == pa.date32()
    assert types["blob"] == pa.binary()
    assert pa.types.is_list(types["ints"])
    assert types["ints"].value_type == pa.int32()
    assert pa.types.is_list(types["words"])
    assert types["words"].value_type == pa.string()
    for name in ("clock", "ident", "doc", "docb", "feeling", "span"):
        assert types[name] == pa.string(), name
    rows = sorted(table.to_pylist(), key=lambda r: r["id"])
    assert rows[0]["ints"] == [1, None, 3]
    assert rows[1]["ints"] == []
    assert rows[2]["ints"] is None
    assert rows[0]["price"] == Decimal("123456789.125")
    assert rows[0]["at_tz"] == dt.datetime(2024, 3, 1, 10, 34, 56, 500000, tzinfo=UTC)


def test_an_unsupported_type_is_named_unless_the_job_reads_it_as_text(all_types: PostgresServer) -> None:
    with pytest.raises(ConfigurationError, match=r"'span' of public.all_types has type interval") as caught:
        _read({"dsn": all_types.dsn, "table": "public.all_types"})
    assert caught.value.details["field"] == "unsupported_types"
    all_types.execute("DROP TABLE IF EXISTS loose", "CREATE TABLE loose (id int, amount numeric)")
    with pytest.raises(ConfigurationError, match="numeric without a precision and scale"):
        _read({"dsn": all_types.dsn, "table": "loose"})
    all_types.execute("INSERT INTO loose VALUES (1, 12345678901234567890.123456789012)")
    text = _read({"dsn": all_types.dsn, "table": "loose", "unsupported_types": "text"})
    assert text.to_pylist() == [{"id": 1, "amount": "12345678901234567890.123456789012"}]


def test_a_query_source_reads_its_columns_with_the_same_types(all_types: PostgresServer) -> None:
    table = _read(
        {"dsn": all_types.dsn, "query": "select id, price, ident, ints from public.all_types where id < 3"}
    )
    assert table.schema.field("price").type == pa.decimal128(12, 3)
    assert sorted(table.column("ident").to_pylist()) == [
        "00000000-0000-0000-0000-000000000000",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ]


def test_every_type_round_trips_through_a_run_to_parquet(
    all_types: PostgresServer, tmp_path: Path, dativo_run: Any
) -> None:
    job = write_job(
        tmp_path,
        "all_types",
        f"""
dsn: postgresql://{all_types.user}:${{PG_TEST_PASSWORD}}@{all_types.host}:{all_types.port}/{all_types.dbname}
table: public.all_types
unsupported_types: text
batch_size: 2
""",
    )
    done = dativo_run("run", "--config", str(job), "--json")
    assert done.exit_code == 0, done.stdout + done.stderr
    result = done.document
    assert result["records_written"] == 3
    assert all_types.password not in done.stdout + done.stderr
    rows = sorted(parquet_rows(result["files"]), key=lambda r: r["id"])
    assert rows == EXPECTED
    # JSON columns hold the server's text: json as written, jsonb normalised, both valid JSON.
    assert json.loads(rows[0]["doc"]) == json.loads(rows[0]["docb"])
