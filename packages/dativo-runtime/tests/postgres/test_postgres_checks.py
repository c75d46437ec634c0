"""``check`` and ``discover`` of the ``postgres`` reader against a real server, through the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dativo_runtime.connectors import PostgresReader

from .conftest import PostgresServer, free_port, write_job

WRONG_PASSWORD = "not-the-password-9d2e"


@pytest.fixture(scope="module")
def shop(postgres: PostgresServer) -> PostgresServer:
    postgres.execute(
        "DROP SCHEMA IF EXISTS sales CASCADE",
        "DROP TABLE IF EXISTS public.customers CASCADE",
        "CREATE SCHEMA sales",
        "CREATE TABLE public.customers (id int8 PRIMARY KEY, name text NOT NULL, modified_at timestamptz)",
        "CREATE TABLE sales.orders (region text, number int4, total numeric(10, 2) NOT NULL, "
        "created_at timestamp, updated_at timestamptz NOT NULL, PRIMARY KEY (region, number))",
        "CREATE VIEW sales.big_orders AS SELECT number, total FROM sales.orders WHERE total > 100",
    )
    return postgres


def _source(
    server: PostgresServer, *, port: int | None = None, password: str = "${PG_TEST_PASSWORD}", **extra: str
) -> str:
    lines = [
        f"host: {server.host}",
        f"port: {port or server.port}",
        f"user: {server.user}",
        f"password: {password}",
        f"dbname: {extra.pop('dbname', server.dbname)}",
        "connect_timeout: 5",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    return "\n".join(lines)


def test_discover_lists_every_table_and_view_of_the_schemas(shop: PostgresServer) -> None:
    found = PostgresReader({"dsn": shop.dsn, "schemas": ["public", "sales"]}).discover()
    streams = {s.name: s for s in found.objects}
    assert {"public.customers", "sales.orders", "sales.big_orders"} <= set(streams)
    orders = streams["sales.orders"]
    assert orders.type == "table"
    assert streams["sales.big_orders"].type == "view"
    assert orders.primary_key == ("region", "number")
    assert orders.cursor_field == "updated_at"
    assert streams["public.customers"].cursor_field == "modified_at"
    columns = {c.name: c for c in orders.schema}
    assert (columns["total"].type.value, columns["total"].nullable) == ("decimal", False)
    assert (columns["region"].type.value, columns["region"].nullable) == ("string", False)
    assert columns["created_at"].nullable
    assert columns["created_at"].description == "timestamp without time zone"
    only_public = {s.name for s in PostgresReader({"dsn": shop.dsn}).discover().objects}
    assert "public.customers" in only_public
    assert not any(n.startswith("sales.") for n in only_public)


def test_discover_through_the_cli_names_the_configured_table(
    shop: PostgresServer, tmp_path: Path, dativo_run: Any
) -> None:
    job = write_job(tmp_path, "orders", _source(shop, table="sales.orders"))
    done = dativo_run("discover", "--config", str(job), "--json")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "sales.orders" in done.stdout
    assert "updated_at" in done.stdout


@pytest.mark.parametrize(
    ("problem", "settings", "exit_code", "error_code", "server_says"),
    [
        ("wrong password", {"password": WRONG_PASSWORD}, 77, "AUTHENTICATION_FAILED", "password authentication failed"),
        ("unreachable host", {"port": "unused"}, 75, "CONNECTION_FAILED", "Connection refused"),
        ("unknown database", {"dbname": "no_such_db"}, 2, "CONFIGURATION_ERROR", 'database "no_such_db" does not exist'),
        ("unknown table", {"table": "public.no_such_table"}, 2, "CONFIGURATION_ERROR", 'relation "public.no_such_table" does not exist'),
        ("unknown column", {"table": "sales.orders", "cursor_field": "no_such_column"}, 2, "CONFIGURATION_ERROR", 'column "no_such_column" does not exist'),
    ],
)  # fmt: skip
def test_check_maps_the_servers_refusals_to_exit_codes(
    shop: PostgresServer,
    tmp_path: Path,
    dativo_run: Any,
    *,
    problem: str,
    settings: dict[str, str],
    exit_code: int,
    error_code: str,
    server_says: str,
) -> None:
    settings = dict(settings)
    port = free_port() if settings.pop("port", None) else None
    settings.setdefault("table", "public.customers")
    job = write_job(
        tmp_path, "check", _source(shop, port=port, **settings), extra="retry: {max_attempts: 1}\n"
    )
    done = dativo_run("check", "--config", str(job), "--json", timeout=120)
    assert done.exit_code == exit_code, (problem, done.stdout, done.stderr)
    source = next(c for c in done.document["checks"] if c["role"] == "source")
    assert (source["error_code"], source["exit_code"]) == (error_code, exit_code), (problem, source)
    assert server_says in source["message"], (problem, source)
    assert WRONG_PASSWORD not in done.stdout + done.stderr
    assert shop.password not in done.stdout + done.stderr
    human = dativo_run("check", "--config", str(job), timeout=120)
    assert human.exit_code == exit_code
    assert "Traceback" not in human.stdout + human.stderr
