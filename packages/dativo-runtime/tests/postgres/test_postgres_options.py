"""The ``postgres`` reader's options, type plans and error mapping, without a server."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from dativo_plugin_sdk import AuthenticationError, ConfigurationError, DativoConnectionError
from dativo_runtime.connectors._options import PostgresOptions
from dativo_runtime.connectors._postgres_catalog import split_table
from dativo_runtime.connectors._postgres_connection import connection_uri, map_driver_error, masked
from dativo_runtime.connectors._postgres_types import plan_column, quote_ident, quote_literal


class DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def options(**config: Any) -> PostgresOptions:
    return PostgresOptions.from_config({"dbname": "shop", "table": "orders", **config})


def test_the_options_need_a_server_and_one_source() -> None:
    with pytest.raises(ConfigurationError, match="needs dsn") as caught:
        PostgresOptions.from_config({"table": "orders"})
    assert caught.value.details["field"] == "dsn"
    with pytest.raises(ConfigurationError, match="not both"):
        PostgresOptions.from_config({"dsn": "postgresql://h/db", "host": "h"})
    with pytest.raises(ConfigurationError, match="either dsn or port, not both"):
        PostgresOptions.from_config({"dsn": "postgresql://h/db", "port": 6432})  # once silently ignored
    with pytest.raises(ConfigurationError, match=r"table .* or query .*not both"):
        options(query="select 1")
    with pytest.raises(ConfigurationError, match="unsupported_types"):
        options(unsupported_types="drop")
    assert options(incremental={"cursor_field": "updated_at"}).cursor_field == "updated_at"
    assert options(primary_key="a, b").primary_key == ("a", "b")
    assert (options().batch_size, options().partitions, options().schemas) == (100_000, 4, ("public",))


def test_the_uri_quotes_its_parts_and_messages_never_show_the_password() -> None:
    parts = options(host="db.internal", port=6432, user="in gest", password="p@ss:w/rd")
    assert connection_uri(parts) == "postgresql://in%20gest:p%40ss%3Aw%2Frd@db.internal:6432/shop"
    assert (
        masked("uri postgresql://x:p%40ss%3Aw%2Frd@h and p@ss:w/rd", parts)
        == "uri postgresql://x:***@h and ***"
    )
    dsn = PostgresOptions.from_config({"dsn": "postgresql://u:hunter22@h/db", "table": "t"})
    assert masked("failed for postgresql://u:hunter22@h/db", dsn) == "failed for postgresql://u:***@h/db"
    keywords = PostgresOptions.from_config({"dsn": "host=h password='se cret' dbname=db", "table": "t"})
    assert "se cret" not in masked("x se cret y", keywords)


@pytest.mark.parametrize(
    ("message", "sqlstate", "error"),
    [
        ('IO: [libpq] Failed to connect: FATAL:  password authentication failed for user "u"', None, AuthenticationError),
        ('IO: [libpq] Failed to connect: FATAL:  role "u" does not exist', None, AuthenticationError),
        ('IO: [libpq] Failed to connect: FATAL:  database "x" does not exist', None, ConfigurationError),
        ("IO: [libpq] Failed to connect: connection refused", None, DativoConnectionError),
        ('NOT_FOUND: Failed to prepare query: ERROR:  relation "t" does not exist\nLINE 1: x\n   ^\nQuery was: x', "42P01", ConfigurationError),
        ("IO: terminating connection due to administrator command", "57P01", DativoConnectionError),
        ("IO: could not serialize access", "40001", DativoConnectionError),
    ],
)  # fmt: skip
def test_driver_failures_become_dativo_errors(
    message: str, sqlstate: str | None, error: type[Exception]
) -> None:
    mapped = map_driver_error(DriverError(message, sqlstate), options(password="pw-1234"), doing="connecting")
    assert type(mapped) is error
    assert "LINE 1" not in mapped.message
    assert "Query was" not in mapped.message
    assert "IO:" not in mapped.message
    assert mapped.retryable == (error is DativoConnectionError)


def test_type_plans_cast_where_adbc_differs() -> None:
    assert plan_column("u", "uuid").select == '"u"::text'
    assert plan_column("j", "jsonb").column_type.value == "json"
    price = plan_column("p", "numeric", typmod=(12 << 16) + 2 + 4)
    assert price.arrow_type == pa.decimal128(12, 2)
    assert price.column_type.value == "decimal"
    assert price.fix(pa.array(["1.50", None])).to_pylist()[0] == pytest.approx(1.5)
    with pytest.raises(ConfigurationError, match="wider than Dativo's decimal"):
        plan_column("p", "numeric", typmod=(38 << 16) + 12 + 4)
    assert plan_column("ids", "_uuid", element="uuid").select == '"ids"::text[]'
    assert plan_column("i", "interval", unsupported="text").select == '"i"::text'
    naive = plan_column("t", "timestamp")
    fixed = naive.fix(pa.array([0], pa.timestamp("us")))
    assert fixed.type == pa.timestamp("us", tz="UTC")


def test_identifiers_and_literals_are_quoted() -> None:
    assert quote_ident('we"ird') == '"we""ird"'
    assert quote_literal("it's \\ here") == "E'it''s \\\\ here'"
    with pytest.raises(ConfigurationError):
        quote_literal("nul\x00")
    assert split_table("orders") == ("public", "orders")
    assert split_table('sales."Order.Items"') == ("sales", "Order.Items")
    with pytest.raises(ConfigurationError):
        split_table("a.b.c")


def test_without_the_driver_the_reader_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from dativo_runtime.connectors import PostgresReader

    real = importlib.import_module

    def no_driver(name: str, package: str | None = None) -> Any:
        if name.startswith("adbc_driver_postgresql"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_driver)
    reader = PostgresReader({"dsn": "postgresql://u:pw-5678@127.0.0.1:1/db", "table": "t"})
    result = reader.check_connection()
    assert not result.success
    assert result.error_code == "CONFIGURATION_ERROR"
    assert "pip install 'dativo-runtime[postgres]'" in result.message
    with pytest.raises(ConfigurationError, match=r"dativo-runtime\[postgres\]"):
        list(reader.extract())


@pytest.mark.parametrize(
    ("config", "uri", "network"),
    [
        ({"host": "/run/pg", "port": 5433, "user": "u"}, "postgresql://u@/shop?host=%2Frun%2Fpg&port=5433", False),
        ({"host": "db", "user": "u"}, "postgresql://u@db:5432/shop", True),
        ({"dsn": "postgresql://u@/shop?host=/run/pg", "dbname": None}, "postgresql://u@/shop?host=/run/pg", False),
        ({"dsn": "postgresql://%2Frun%2Fpg/shop", "dbname": None}, "postgresql://%2Frun%2Fpg/shop", False),
        ({"dsn": "host=/run/pg dbname=shop", "dbname": None}, "host=/run/pg dbname=shop", False),
        ({"dsn": "host=db dbname=shop", "dbname": None}, "host=db dbname=shop", True),
        ({"dsn": "postgresql://u@db1,/run/pg/shop", "dbname": None}, "postgresql://u@db1,/run/pg/shop", True),
    ],
)  # fmt: skip
def test_a_unix_socket_folder_as_host_needs_no_network(
    config: dict[str, Any], uri: str, network: bool
) -> None:
    parsed = options(**config)
    assert connection_uri(parsed) == uri
    assert parsed.needs_network() is network
