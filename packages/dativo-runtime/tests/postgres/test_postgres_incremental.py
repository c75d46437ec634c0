"""Incremental reads of the ``postgres`` reader: cursor plus primary key, over several real runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError, State
from dativo_runtime.connectors import PostgresReader

from .conftest import PostgresServer, parquet_rows, write_job


@pytest.fixture
def events(postgres: PostgresServer) -> PostgresServer:
    postgres.execute(
        "DROP TABLE IF EXISTS public.events",
        "CREATE TABLE public.events (id serial PRIMARY KEY, updated_at timestamptz NOT NULL, payload text)",
        # Ten rows, three to a cursor value: every batch of four ends inside a group of ties.
        "INSERT INTO public.events (updated_at, payload) SELECT timestamptz '2024-05-01 00:00:00+00' "
        "+ (g / 3) * interval '1 minute', 'first-' || g FROM generate_series(0, 9) AS g",
    )
    return postgres


def _ids(server: PostgresServer) -> list[int]:
    return [row["id"] for row in server.rows("SELECT id FROM public.events ORDER BY id")]


def test_state_follows_each_batch_and_ties_at_the_boundary_are_kept(events: PostgresServer) -> None:
    config = {"dsn": events.dsn, "table": "public.events", "cursor_field": "updated_at", "incremental": {}}
    state = State(stream="events")
    batches = PostgresReader({**config, "batch_size": 4}).extract(state)
    try:
        first = next(batches)
        assert first.column("id").to_pylist() == [1, 2, 3, 4]
        assert state.to_dict() == {}  # set after the batch is yielded, as the SDK asks
        second = next(batches)
        # The state covers the first batch: its last row's cursor and key.
        assert state.to_dict() == {"cursor": "2024-05-01T00:01:00+00:00", "pk": [4]}
        rest = [i for batch in [second, *batches] for i in batch.column("id").to_pylist()]
        assert rest == [5, 6, 7, 8, 9, 10]
        assert state.to_dict() == {"cursor": "2024-05-01T00:03:00+00:00", "pk": [10]}
    finally:
        batches.close()  # An open extraction holds its snapshot (and a lock on the table).
    # Resuming from the middle of a group of ties reads the rest of the group, once.
    middle = State({"cursor": "2024-05-01T00:01:00+00:00", "pk": [4]}, stream="events")
    again = [i for b in PostgresReader(config).extract(middle) for i in b.column("id").to_pylist()]
    assert again == [5, 6, 7, 8, 9, 10]


def test_incremental_needs_a_cursor_and_a_tiebreaker(events: PostgresServer) -> None:
    with pytest.raises(ConfigurationError, match="needs cursor_field"):
        list(
            PostgresReader({"dsn": events.dsn, "table": "public.events", "incremental": {}}).extract(State())
        )
    events.execute("DROP TABLE IF EXISTS keyless", "CREATE TABLE keyless (at timestamptz, v text)")
    keyless = {"dsn": events.dsn, "table": "keyless", "cursor_field": "at", "incremental": {}}
    with pytest.raises(ConfigurationError, match="no primary key") as caught:
        list(PostgresReader(keyless).extract(State()))
    assert caught.value.details["field"] == "primary_key"
    assert list(PostgresReader({**keyless, "primary_key": ["v"]}).extract(State())) == []


@pytest.mark.parametrize("partitioned", [False, True], ids=["one-stream", "partitions"])
def test_runs_with_ties_inserted_between_them_lose_and_duplicate_nothing(
    events: PostgresServer, tmp_path: Path, dativo_run: Any, partitioned: bool
) -> None:
    job = write_job(
        tmp_path,
        "events",
        f"""
dsn: postgresql://{events.user}:${{PG_TEST_PASSWORD}}@{events.host}:{events.port}/{events.dbname}
table: public.events
cursor_field: updated_at
batch_size: 4
"""
        + ("partition_column: id\npartitions: 3\n" if partitioned else ""),
        source_extra="incremental: {}\n" + ("parallelism: 2\n" if partitioned else ""),
    )
    written: list[dict[str, Any]] = []
    per_run = []
    inserts = [
        # Ties with the last committed cursor value (a later key), and newer rows.
        "INSERT INTO public.events (updated_at, payload) VALUES ('2024-05-01 00:03:00+00', 'tie-a'), "
        "('2024-05-01 00:03:00+00', 'tie-b'), ('2024-05-01 00:04:00+00', 'newer')",
        # Only ties again: the saved cursor stays, the key moves on.
        "INSERT INTO public.events (updated_at, payload) VALUES ('2024-05-01 00:04:00+00', 'tie-c'), "
        "('2024-05-01 00:04:00+00', 'tie-d')",
        None,
    ]
    for insert in [None, *inserts]:
        if insert:
            events.execute(insert)
        done = dativo_run("run", "--config", str(job), "--json")
        assert done.exit_code == 0, done.stdout + done.stderr
        rows = parquet_rows(done.document["files"])
        per_run.append(len(rows))
        written += rows
    assert per_run == [10, 3, 2, 0]
    ids = sorted(row["id"] for row in written)
    assert ids == _ids(events)  # every row once: nothing lost, nothing twice
    state = dativo_run("state", "show", "--config", str(job), "--json")
    assert '"pk"' in state.stdout
    assert "2024-05-01T00:04:00+00:00" in state.stdout
    if partitioned:
        assert all(f"id%3={r}" in state.stdout for r in range(3)), state.stdout


def test_each_extraction_runs_in_a_read_only_repeatable_read_transaction(events: PostgresServer) -> None:
    query = (
        "select current_setting('transaction_isolation') as isolation, "
        "current_setting('transaction_read_only') as read_only"
    )
    with PostgresReader({"dsn": events.dsn, "query": query}) as reader:
        rows = [row for batch in reader.extract() for row in batch.to_pylist()]
    assert rows == [{"isolation": "repeatable read", "read_only": "on"}]


def test_changing_the_partition_count_between_runs_loses_and_duplicates_nothing(
    events: PostgresServer, tmp_path: Path, dativo_run: Any
) -> None:
    def job(partitions: int) -> Path:
        return write_job(
            tmp_path,
            "events",
            f"""
dsn: postgresql://{events.user}:${{PG_TEST_PASSWORD}}@{events.host}:{events.port}/{events.dbname}
table: public.events
cursor_field: updated_at
batch_size: 4
partition_column: id
partitions: {partitions}
""",
            source_extra="incremental: {}\nparallelism: 2\n",
        )

    written: list[dict[str, Any]] = []
    per_run = []
    steps = [
        (3, None),
        # Rows of only some remainders move on, so the old partitions' positions differ.
        (2, "UPDATE public.events SET updated_at = '2024-05-01 00:05:00+00' WHERE id IN (3, 6)"),
        (2, None),
        (5, "INSERT INTO public.events (updated_at, payload) VALUES ('2024-05-01 00:05:00+00', 'tie'), "
         "('2024-05-01 00:06:00+00', 'newer')"),
        (5, None),
        (3, "UPDATE public.events SET updated_at = '2024-05-01 00:07:00+00' WHERE id = 1"),
        (3, None),
    ]  # fmt: skip
    for partitions, change in steps:
        if change:
            events.execute(change)
        done = dativo_run("run", "--config", str(job(partitions)), "--json")
        assert done.exit_code == 0, done.stdout + done.stderr
        rows = parquet_rows(done.document["files"])
        per_run.append(sorted(row["id"] for row in rows))
        written += rows
    assert per_run == [list(range(1, 11)), [3, 6], [], [11, 12], [], [1], []]
    latest = {row["id"]: row["updated_at"] for row in written}  # the last version of each row
    assert sorted(latest) == _ids(events)
