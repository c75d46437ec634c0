"""The ``postgres`` reader passes the testkit's conformance suite, like every built-in connector."""

from __future__ import annotations

from dativo_runtime.connectors import PostgresReader
from dativo_testkit import run_conformance

from .conftest import PostgresServer


def test_postgres_reader_conformance(postgres: PostgresServer) -> None:
    postgres.execute(
        "DROP TABLE IF EXISTS public.conformance",
        "CREATE TABLE public.conformance (id int8 PRIMARY KEY, name text, amount numeric(10, 2), "
        "updated_at timestamptz NOT NULL)",
        "INSERT INTO public.conformance SELECT g, 'n' || g, g * 0.5, timestamptz '2024-01-01 00:00+00' "
        "+ (g / 7) * interval '1 hour' FROM generate_series(1, 300) AS g",
    )
    config = {"dsn": postgres.dsn, "table": "public.conformance", "batch_size": 64}
    incremental = {"cursor_field": "updated_at", "incremental": {}}
    # A full read has no cursor to resume from: the incremental checks apply to the incremental config.
    full_read = ("reader.incremental_final_state", "reader.incremental_resume")
    # The partitions check resumes each partition from its own state: an incremental config's.
    partitioned = {"partition_column": "id", "partitions": 3}
    for extra, skip in (
        ({}, full_read),
        (partitioned, (*full_read, "reader.partitions")),
        (incremental, ()),
        ({**incremental, **partitioned}, ()),
    ):
        report = run_conformance(
            PostgresReader, config={**config, **extra}, bad_config={**config, "batch_size": 0}, skip=skip
        )
        failed = [(c.name, c.reason) for c in report.failed]
        assert not failed, (extra, failed)
        assert not {"reader.extract_yields_batches", "reader.discover"} & {c.name for c in report.skipped}
