"""Key-range partitions of the ``postgres`` reader, a parallel run, and a run under the process sandbox."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import WHOLE_STREAM, ConfigurationError, State
from dativo_runtime.connectors import PostgresReader

from .conftest import PostgresServer, parquet_rows, write_job

ROWS = 1000


@pytest.fixture(scope="module")
def items(postgres: PostgresServer) -> PostgresServer:
    postgres.execute(
        "DROP TABLE IF EXISTS public.items",
        "CREATE TABLE public.items (id int8 PRIMARY KEY, bucket int4, label text, price numeric(8, 2))",
        f"INSERT INTO public.items SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE g % 7 END, 'item ' || g, "
        f"g * 1.25 FROM generate_series(1, {ROWS}) AS g",
    )
    return postgres


def _source(server: PostgresServer, **extra: Any) -> str:
    lines = [
        f"dsn: postgresql://{server.user}:${{PG_TEST_PASSWORD}}@{server.host}:{server.port}/{server.dbname}",
        "table: public.items",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    return "\n".join(lines)


def test_ranges_are_named_by_their_bounds_and_cover_the_table_once(items: PostgresServer) -> None:
    config = {"dsn": items.dsn, "table": "public.items", "partition_column": "id", "partitions": 4}
    parts = PostgresReader(config).partitions()
    assert [p.name for p in parts] == ["id:[1,251)", "id:[251,501)", "id:[501,751)", "id:[751,1000]"]
    assert [p.name for p in PostgresReader(config).partitions()] == [p.name for p in parts]  # stable
    seen: list[int] = []
    for part in parts:
        reader = PostgresReader(config)
        reader.partition = part
        seen += [i for batch in reader.extract() for i in batch.column("id").to_pylist()]
    assert sorted(seen) == list(range(1, ROWS + 1))


def test_rows_with_a_null_key_get_a_partition_of_their_own(items: PostgresServer) -> None:
    config = {"dsn": items.dsn, "table": "public.items", "partition_column": "bucket", "partitions": 3}
    parts = PostgresReader(config).partitions()
    assert [p.name for p in parts] == ["bucket:[0,3)", "bucket:[3,6)", "bucket:[6,6]", "bucket:null"]
    total = 0
    for part in parts:
        reader = PostgresReader(config)
        reader.partition = part
        total += sum(batch.num_rows for batch in reader.extract())
    assert total == ROWS


def test_incremental_partitions_are_remainders_whose_names_never_move(items: PostgresServer) -> None:
    assert PostgresReader({"dsn": items.dsn, "table": "public.items"}).partitions()[0].name == WHOLE_STREAM
    incremental = {
        "dsn": items.dsn,
        "table": "public.items",
        "partition_column": "bucket",
        "partitions": 3,
        "cursor_field": "id",
        "incremental": {},
    }
    parts = PostgresReader(incremental).partitions()
    assert [p.name for p in parts] == ["bucket%3=0", "bucket%3=1", "bucket%3=2", "bucket:null"]
    seen: list[int] = []
    for part in parts:
        reader = PostgresReader(incremental)
        reader.partition = part
        state = State()
        seen += [i for batch in reader.extract(state) for i in batch.column("id").to_pylist()]
        assert state.get("cursor") is not None
    assert sorted(seen) == list(range(1, ROWS + 1))
    with pytest.raises(ConfigurationError, match="key ranges need an integer column"):
        PostgresReader({"dsn": items.dsn, "table": "public.items", "partition_column": "label"}).partitions()


def test_a_run_with_parallelism_2_writes_exactly_the_table(
    items: PostgresServer, tmp_path: Path, dativo_run: Any
) -> None:
    job = write_job(
        tmp_path,
        "items",
        _source(items, partition_column="id", partitions=4, batch_size=100),
        source_extra="parallelism: 2",
    )
    done = dativo_run("run", "--config", str(job), "--json")
    assert done.exit_code == 0, done.stdout + done.stderr
    result = done.document
    assert sorted(p["name"] for p in result["partitions"]) == sorted(
        ["id:[1,251)", "id:[251,501)", "id:[501,751)", "id:[751,1000]"]
    )
    rows = parquet_rows(result["files"])
    assert sorted(r["id"] for r in rows) == list(range(1, ROWS + 1))
    assert sorted(rows, key=lambda r: r["id"]) == [
        {
            "id": g,
            "bucket": None if g % 10 == 0 else g % 7,
            "label": f"item {g}",
            "price": Decimal(g) * Decimal("1.25"),
        }
        for g in range(1, ROWS + 1)
    ]


def test_under_the_process_sandbox_the_built_in_reader_runs_in_the_runtime(
    items: PostgresServer, tmp_path: Path, dativo_run: Any
) -> None:
    # A built-in connector is the runtime's own code and runs in its process in every mode
    # (docs/sandboxing.md), so it reaches a server on 127.0.0.1 that a sandboxed plugin
    # could not, with or without sandbox.network.
    job = write_job(
        tmp_path,
        "sandboxed",
        _source(items, batch_size=300),
        extra="sandbox: {backend: process, network: false}\n",
    )
    done = dativo_run("run", "--config", str(job), "--json")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert done.document["sandbox"]["source"] == "none"
    assert sorted(r["id"] for r in parquet_rows(done.document["files"])) == list(range(1, ROWS + 1))


def test_the_reader_class_runs_sandboxed_over_the_servers_unix_socket(
    items: PostgresServer, tmp_path: Path, dativo_run: Any
) -> None:
    # Referenced by its class, the reader is a plugin like any other and runs in the sandbox,
    # with no network at all: the server's unix socket folder, mounted read-only, is its
    # only way out (docs/connectors.md, "Isolating the postgres reader").
    job = tmp_path / "isolated.yaml"
    job.write_text(
        "name: isolated\n"
        "source:\n"
        "  plugin: dativo_runtime.connectors:PostgresReader\n"
        "  config:\n"
        f"    dsn: postgresql://{items.user}@/{items.dbname}?host={items.socket_dir}&port={items.port}\n"
        "    table: public.items\n"
        "    partition_column: id\n"
        "  parallelism: 2\n"
        "target: {plugin: parquet, config: {path: out/isolated}}\n"
        f"sandbox: {{backend: process, network: false, read_only_paths: [{items.socket_dir}]}}\n"
    )
    done = dativo_run("run", "--config", str(job), "--json")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert done.document["sandbox"]["source"] == "process"
    assert len(done.document["partitions"]) == 4
    assert sorted(r["id"] for r in parquet_rows(done.document["files"])) == list(range(1, ROWS + 1))
