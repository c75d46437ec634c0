"""The ``iceberg`` writer end to end: real ``dativo-run`` runs from CSV into an Iceberg table.

Every table is read back two ways, with pyiceberg's scan and with DuckDB over the data files
of the current snapshot, and must equal the source exactly. The crash tests run the real CLI
in a process that kills itself with ``SIGKILL`` at one point of the commit (before it, between
the catalog's metadata write and its pointer update, after it) and then run the job again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.conftest import clean_env

pytest.importorskip("pyiceberg.catalog.sql", reason="the iceberg tests need dativo-runtime[iceberg]")

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

SCHEMA = """
schema:
  - {name: order_id, type: integer, required: true}
  - {name: region, type: string}
  - {name: amount, type: decimal}
  - {name: ordered_at, type: timestamp}
"""


def orders(first: int, count: int) -> list[tuple[int, str, Decimal, dt.datetime]]:
    """Rows as the table must hold them: id, region, amount, UTC time."""
    base = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    return [
        (
            i,
            ("eu", "us", "apac")[i % 3],
            Decimal(f"{i % 97}.{i % 100:02d}"),
            base + dt.timedelta(hours=7 * i),
        )
        for i in range(first, first + count)
    ]


def write_orders(path: Path, rows: list[tuple[int, str, Decimal, dt.datetime]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["order_id,region,amount,ordered_at"]
    lines += [f"{i},{r},{a},{t.strftime('%Y-%m-%dT%H:%M:%SZ')}" for i, r, a, t in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def iceberg_job(
    write_job: Any,
    *,
    target: str = "",
    incremental: bool = True,
    schema: str = SCHEMA,
    warehouse: str = "./warehouse",
) -> Path:
    text = textwrap.dedent(
        """
        name: orders
        source:
          plugin: csv
          config: {path: data/*.csv}
        """
    )
    if incremental:
        text += "  incremental: {}\n"
    text += textwrap.dedent(
        f"""
        target:
          plugin: iceberg
          config:
            warehouse: {warehouse}
            table: analytics.orders
        """
    )
    text += textwrap.indent(textwrap.dedent(target).strip(), "    ") + "\n" if target.strip() else ""
    text += "sandbox: {backend: none}\n" + textwrap.dedent(schema)
    path: Path = write_job(text)
    return path


def catalog(warehouse: Path) -> SqlCatalog:
    return SqlCatalog("default", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=warehouse.as_uri())


def table_of(tmp_path: Path) -> Table:
    return catalog(tmp_path / "warehouse").load_table("analytics.orders")


def local(uri: str) -> str:
    return uri.removeprefix("file://")


def scanned(
    table: Table, columns: tuple[str, ...] = ("order_id", "region", "amount", "ordered_at")
) -> list[Any]:
    rows = table.scan(selected_fields=columns).to_arrow().sort_by("order_id").to_pylist()
    return [tuple(row[c] for c in columns) for row in rows]


def by_duckdb(table: Table, columns: str = "order_id, region, amount, ordered_at") -> list[Any]:
    files = [local(task.file.file_path) for task in table.scan().plan_files()]
    if not files:
        return []
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    return connection.execute(
        f"SELECT {columns} FROM read_parquet({files!r}, union_by_name = true) ORDER BY order_id"
    ).fetchall()


def expect_rows(table: Table, rows: list[tuple[int, str, Decimal, dt.datetime]]) -> None:
    assert scanned(table) == rows
    assert by_duckdb(table) == rows


def data_files_on_disk(tmp_path: Path) -> set[str]:
    return {str(p) for p in (tmp_path / "warehouse" / "analytics" / "orders" / "data").rglob("*.parquet")}


def referenced_files(table: Table) -> set[str]:
    return {local(task.file.file_path) for task in table.scan().plan_files()}


def run_ok(run_cli: Any, job: Path) -> dict[str, Any]:
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def snapshot_run_ids(table: Table) -> list[str | None]:
    return [
        s.summary.additional_properties.get("dativo.run-id") if s.summary else None for s in table.snapshots()
    ]


def test_two_appending_runs_commit_two_snapshots_named_by_their_runs(
    tmp_path: Path, run_cli: Any, write_job: Any
) -> None:
    job = iceberg_job(write_job)
    first, second = orders(1, 250), orders(251, 120)
    write_orders(tmp_path / "data" / "orders-1.csv", first)
    run1 = run_ok(run_cli, job)
    assert run1["records_written"] == 250
    write_orders(tmp_path / "data" / "orders-2.csv", second)
    run2 = run_ok(run_cli, job)
    assert run2["records_written"] == 120

    table = table_of(tmp_path)
    assert snapshot_run_ids(table) == [run1["run_id"], run2["run_id"]]
    assert [s.summary.operation.value for s in table.snapshots() if s.summary] == ["append", "append"]
    expect_rows(table, first + second)
    assert str(table.schema().find_field("amount").field_type) == "decimal(38, 9)"
    assert str(table.schema().find_field("ordered_at").field_type) == "timestamptz"
    assert table.schema().find_field("order_id").required

    # Nothing new: no snapshot. Nothing staged is left behind, nothing unreferenced.
    assert run_ok(run_cli, job)["records_written"] == 0
    table = table_of(tmp_path)
    assert len(table.snapshots()) == 2
    assert data_files_on_disk(tmp_path) == referenced_files(table)
    assert not list((tmp_path / "warehouse" / "_dativo" / "iceberg" / "staging").iterdir())

    listing = run_cli("files", "--config", str(job), "--json")
    assert listing.returncode == 0, listing.stderr
    files = json.loads(listing.stdout)
    assert [r["run_id"] for r in files["runs"]] == [run1["run_id"], run2["run_id"]]
    assert files["record_count"] == 370
    assert set(files["files"]) == referenced_files(table)
    assert files["location"] == str(tmp_path / "warehouse" / "analytics" / "orders")


def test_upsert_replaces_rows_by_key_in_one_snapshot(tmp_path: Path, run_cli: Any, write_job: Any) -> None:
    job = iceberg_job(
        write_job,
        incremental=False,
        target="write_mode: upsert\nprimary_key: [order_id]\npartition_by: [{column: region}]",
    )
    rows = orders(1, 60)
    write_orders(tmp_path / "data" / "orders.csv", rows)
    run1 = run_ok(run_cli, job)
    changed = [(i, r, a + Decimal("1000"), t) if i % 10 == 0 else (i, r, a, t) for i, r, a, t in rows]
    update = [row for row in changed if row[0] % 10 == 0] + orders(61, 5)
    write_orders(tmp_path / "data" / "orders.csv", update)
    run2 = run_ok(run_cli, job)
    assert run2["records_written"] == 11
    write_orders(tmp_path / "data" / "orders.csv", orders(66, 3))  # new keys only
    run3 = run_ok(run_cli, job)

    table = table_of(tmp_path)
    expect_rows(table, changed + orders(61, 8))
    # One snapshot per run, named by it: the first appends (nothing to replace), the second
    # overwrites (the rows of its keys go, its rows come), the third only adds new keys.
    assert snapshot_run_ids(table) == [run1["run_id"], run2["run_id"], run3["run_id"]]
    assert [s.summary.operation.value for s in table.snapshots() if s.summary] == [
        "append",
        "overwrite",
        "append",
    ]
    # The files that held replaced rows were rewritten and are no longer referenced; nothing is left over
    # but what earlier snapshots reference.
    referenced_ever = {
        local(entry.data_file.file_path)
        for snapshot in table.snapshots()
        for manifest in snapshot.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False)
    }
    assert data_files_on_disk(tmp_path) == referenced_ever
    assert not list((tmp_path / "warehouse" / "_dativo" / "iceberg" / "staging").iterdir())


def test_upsert_refuses_a_key_twice_in_one_run_and_commits_nothing(
    tmp_path: Path, run_cli: Any, write_job: Any
) -> None:
    job = iceberg_job(write_job, incremental=False, target="write_mode: upsert\nprimary_key: [order_id]")
    write_orders(tmp_path / "data" / "orders.csv", orders(1, 5) + orders(3, 1))
    result = run_cli("run", "--config", str(job))
    assert result.returncode == 65, result.stderr
    assert "appear more than once in this run" in result.stderr
    assert "Traceback" not in result.stderr
    assert table_of(tmp_path).snapshots() == []
    assert data_files_on_disk(tmp_path) == set()


def test_upsert_without_a_key_is_a_configuration_error(tmp_path: Path, run_cli: Any, write_job: Any) -> None:
    job = iceberg_job(write_job, incremental=False, target="write_mode: upsert")
    write_orders(tmp_path / "data" / "orders.csv", orders(1, 5))
    result = run_cli("run", "--config", str(job))
    assert result.returncode == 2
    assert "target.config.primary_key" in result.stderr
    assert "Traceback" not in result.stderr


def test_partition_transforms_write_one_partition_value_per_file(
    tmp_path: Path, run_cli: Any, write_job: Any
) -> None:
    job = iceberg_job(
        write_job,
        target="""
        partition_by:
          - {column: region}
          - {column: ordered_at, transform: day}
          - {column: order_id, transform: "bucket[4]"}
        """,
    )
    rows = orders(1, 200)
    write_orders(tmp_path / "data" / "orders.csv", rows)
    run_ok(run_cli, job)
    table = table_of(tmp_path)
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
        ("region", "identity"),
        ("ordered_at_day", "day"),
        ("order_id_bucket_4", "bucket[4]"),
    ]
    expect_rows(table, rows)
    from pyiceberg.transforms import BucketTransform
    from pyiceberg.types import LongType

    bucket = BucketTransform(4).transform(LongType())
    tasks = list(table.scan().plan_files())
    assert len(tasks) > 20
    for task in tasks:
        region, day, bucket_value = task.file.partition[0], task.file.partition[1], task.file.partition[2]
        path = local(task.file.file_path)
        assert f"/region={region}/" in path
        data = pq.read_table(path).to_pylist()
        assert {r["region"] for r in data} == {region}
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
        assert {(r["ordered_at"] - epoch).days for r in data} == {day}
        assert {bucket(r["order_id"]) for r in data} == {bucket_value}
    # Partition pruning works on what the writer declared.
    eu = table.scan(row_filter="region == 'eu'").to_arrow()
    assert sorted(eu.column("order_id").to_pylist()) == [r[0] for r in rows if r[1] == "eu"]


def test_a_new_column_is_added_to_the_table(tmp_path: Path, run_cli: Any, write_job: Any) -> None:
    job = iceberg_job(write_job)
    rows = orders(1, 20)
    write_orders(tmp_path / "data" / "orders-1.csv", rows)
    run_ok(run_cli, job)
    wider = iceberg_job(write_job, schema=SCHEMA + "  - {name: channel, type: string}\n")
    more = orders(21, 10)
    (tmp_path / "data" / "orders-2.csv").write_text(
        "order_id,region,amount,ordered_at,channel\n"
        + "".join(f"{i},{r},{a},{t.strftime('%Y-%m-%dT%H:%M:%SZ')},web{i}\n" for i, r, a, t in more)
    )
    run_ok(run_cli, wider)
    table = table_of(tmp_path)
    assert not table.schema().find_field("channel").required
    expect_rows(table, rows + more)
    columns = ("order_id", "channel")
    expected = [(r[0], None) for r in rows] + [(r[0], f"web{r[0]}") for r in more]
    assert scanned(table, columns) == expected
    assert by_duckdb(table, "order_id, channel") == expected


def test_an_incompatible_type_change_is_refused_and_nothing_is_committed(
    tmp_path: Path, run_cli: Any, write_job: Any
) -> None:
    job = iceberg_job(write_job)
    rows = orders(1, 20)
    write_orders(tmp_path / "data" / "orders-1.csv", rows)
    run_ok(run_cli, job)
    as_text = iceberg_job(
        write_job, schema=SCHEMA.replace("{name: order_id, type: integer", "{name: order_id, type: string")
    )
    write_orders(tmp_path / "data" / "orders-2.csv", orders(21, 10))
    result = run_cli("run", "--config", str(as_text))
    assert result.returncode == 2, result.stderr
    message = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(message) == 1
    assert "does not fit iceberg table analytics.orders" in message[0]
    assert "order_id" in message[0]
    assert "Traceback" not in result.stderr
    table = table_of(tmp_path)
    assert len(table.snapshots()) == 1
    assert str(table.schema().find_field("order_id").field_type) == "long"
    expect_rows(table, rows)
    assert data_files_on_disk(tmp_path) == referenced_files(table)


def test_int_widens_to_long_and_float_to_double(tmp_path: Path, run_cli: Any, write_job: Any) -> None:
    import pyarrow as pa

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    existing = catalog(warehouse)
    existing.create_namespace("analytics")
    narrow = pa.schema([pa.field("order_id", pa.int32()), pa.field("score", pa.float32())])
    created = existing.create_table("analytics.orders", schema=narrow)
    created.append(pa.table({"order_id": pa.array([1], pa.int32()), "score": pa.array([0.5], pa.float32())}))
    job = iceberg_job(
        write_job, schema="schema:\n  - {name: order_id, type: integer}\n  - {name: score, type: float}\n"
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "scores.csv").write_text("order_id,score\n2,0.1\n3,12345678901.25\n")
    run_ok(run_cli, job)
    table = table_of(tmp_path)
    assert str(table.schema().find_field("order_id").field_type) == "long"
    assert str(table.schema().find_field("score").field_type) == "double"
    got = table.scan().to_arrow().sort_by("order_id").to_pylist()
    assert got == [
        {"order_id": 1, "score": 0.5},
        {"order_id": 2, "score": 0.1},
        {"order_id": 3, "score": 12345678901.25},
    ]


CRASHING_RUN = """
import os, signal, sys
point = sys.argv[1]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "before-commit":
    from dativo_runtime.connectors._iceberg import IcebergWriter

    def commit_files(self, file_metadata):
        self._close_all()  # every staged file complete on disk, none committed
        die()

    IcebergWriter.commit_files = commit_files
elif point == "during-commit":
    from pyiceberg.catalog import MetastoreCatalog as Catalog

    write = Catalog._write_metadata

    def write_then_die(metadata, io, metadata_path):
        write(metadata, io, metadata_path)
        if metadata.snapshots:  # the commit's new metadata, before the catalog points at it
            die()

    Catalog._write_metadata = staticmethod(write_then_die)
elif point == "after-commit":
    from dativo_runtime.connectors._iceberg import IcebergWriter

    commit = IcebergWriter.commit_files

    def commit_then_die(self, file_metadata):
        commit(self, file_metadata)  # the snapshot is in the catalog; the state is not saved yet
        die()

    IcebergWriter.commit_files = commit_then_die
sys.argv = ["dativo-run", *sys.argv[2:]]
from dativo_runtime._cli._app import main
main()
"""


def crash(tmp_path: Path, job: Path, point: str) -> None:
    script = tmp_path / "crashing_run.py"
    script.write_text(CRASHING_RUN)
    process = subprocess.run(
        [sys.executable, str(script), point, "run", "--config", str(job)],
        cwd=tmp_path,
        env={**clean_env(), "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr


def test_a_run_killed_after_the_catalog_commit_is_not_committed_twice(
    tmp_path: Path, run_cli: Any, write_job: Any
) -> None:
    job = iceberg_job(write_job, target="partition_by: [{column: region}]")
    rows = orders(1, 300)
    write_orders(tmp_path / "data" / "orders-1.csv", rows)
    crash(tmp_path, job, "after-commit")
    table = table_of(tmp_path)
    assert len(table.snapshots()) == 1
    pending = list((tmp_path / "warehouse" / "_dativo" / "state").rglob("*.pending.json"))
    assert pending, "the run died before saving its state: its pending commit is left"

    rerun = run_ok(run_cli, job)
    assert rerun["records_written"] == 0  # its state was settled from the snapshot: nothing is read again
    table = table_of(tmp_path)
    assert len(table.snapshots()) == 1
    expect_rows(table, rows)
    assert data_files_on_disk(tmp_path) == referenced_files(table)
    assert not list((tmp_path / "warehouse" / "_dativo" / "state").rglob("*.pending.json"))


@pytest.mark.parametrize("point", ["before-commit", "during-commit"])
def test_a_run_killed_before_its_commit_leaves_nothing_and_the_rerun_cleans_up(
    tmp_path: Path, run_cli: Any, write_job: Any, point: str
) -> None:
    job = iceberg_job(write_job, target="partition_by: [{column: region}]")
    earlier = orders(1, 50)
    write_orders(tmp_path / "data" / "orders-1.csv", earlier)
    run_ok(run_cli, job)
    rows = orders(51, 300)
    write_orders(tmp_path / "data" / "orders-2.csv", rows)
    crash(tmp_path, job, point)
    table = table_of(tmp_path)
    assert len(table.snapshots()) == 1  # nothing of the killed run is visible
    expect_rows(table, earlier)
    orphans = data_files_on_disk(tmp_path) - referenced_files(table)
    assert orphans, "the killed run had staged data files"

    rerun = run_ok(run_cli, job)
    assert rerun["records_written"] == 300
    table = table_of(tmp_path)
    assert len(table.snapshots()) == 2
    expect_rows(table, earlier + rows)
    assert not (orphans & data_files_on_disk(tmp_path)), "the dead run's staged files were deleted"
    assert data_files_on_disk(tmp_path) == referenced_files(table)


def test_check_reports_the_catalog_and_the_warehouse(tmp_path: Path, run_cli: Any, write_job: Any) -> None:
    job = iceberg_job(write_job)
    write_orders(tmp_path / "data" / "orders.csv", orders(1, 3))
    result = run_cli("check", "--config", str(job), "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    bad = iceberg_job(write_job, target="catalog: {type: rest, uri: 'http://127.0.0.1:9'}")
    result = run_cli("check", "--config", str(bad))
    assert result.returncode == 75, (result.stdout, result.stderr)
    assert "iceberg catalog http://127.0.0.1:9" in result.stdout + result.stderr


def test_without_pyiceberg_the_run_says_what_to_install(tmp_path: Path, write_job: Any) -> None:
    job = iceberg_job(write_job)
    write_orders(tmp_path / "data" / "orders.csv", orders(1, 3))
    hide = "import sys; sys.modules['pyiceberg'] = None; sys.argv = ['dativo-run', 'run', '--config', sys.argv[1]]; "
    hide += "from dativo_runtime._cli._app import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", hide, str(job)],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'dativo-runtime[iceberg]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_warehouse_on_s3(
    tmp_path: Path, run_cli: Any, write_job: Any, s3: Any, aws_credentials: Any
) -> None:
    job = iceberg_job(
        write_job,
        warehouse=f"s3://{s3.bucket}/lake",
        target=f"""
        catalog: {{type: sql, uri: "sqlite:///catalog/catalog.db"}}
        endpoint_url: {s3.endpoint}
        region: us-east-1
        partition_by: [{{column: ordered_at, transform: month}}]
        """,
    )
    rows = orders(1, 120)
    write_orders(tmp_path / "data" / "orders.csv", rows)
    result = run_cli("run", "--config", str(job), "--json", env=aws_credentials)
    assert result.returncode == 0, (result.stdout, result.stderr)
    checked = run_cli("check", "--config", str(job), env=aws_credentials)
    assert checked.returncode == 0, (checked.stdout, checked.stderr)

    remote = SqlCatalog(
        "default",
        uri=f"sqlite:///{tmp_path}/catalog/catalog.db",
        warehouse=f"s3://{s3.bucket}/lake",
        **{
            "s3.endpoint": s3.endpoint,
            "s3.region": "us-east-1",
            "s3.access-key-id": aws_credentials["AWS_ACCESS_KEY_ID"],
            "s3.secret-access-key": aws_credentials["AWS_SECRET_ACCESS_KEY"],
        },
    ).load_table("analytics.orders")
    assert scanned(remote) == rows
    # DuckDB over the same data files, fetched from the bucket.
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    files = []
    for n, task in enumerate(remote.scan().plan_files()):
        key = task.file.file_path.removeprefix(f"s3://{s3.bucket}/")
        target = fetched / f"{n}.parquet"
        s3.download_file(s3.bucket, key, str(target))
        files.append(str(target))
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    got = connection.execute(
        f"SELECT order_id, region, amount, ordered_at FROM read_parquet({files!r}) ORDER BY order_id"
    ).fetchall()
    assert got == rows
    listed = s3.list_objects_v2(Bucket=s3.bucket, Prefix="lake/_dativo/iceberg/staging/").get("KeyCount", 0)
    assert listed == 0


def test_the_iceberg_demo_job_lands_the_example_orders(example_copy: Path, run_cli: Any) -> None:
    job = example_copy / "jobs" / "orders_csv_to_iceberg.yaml"
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 0, (result.stdout, result.stderr)
    warehouse = example_copy / "output" / "warehouse"
    table = catalog(warehouse).load_table("demo.orders")
    source = duckdb.sql(
        f"SELECT order_id, unit_price FROM read_csv('{example_copy / 'data' / 'orders.csv'}') ORDER BY order_id"
    ).fetchall()
    landed = table.scan(selected_fields=("order_id", "unit_price")).to_arrow().sort_by("order_id").to_pylist()
    assert [(r["order_id"], r["unit_price"]) for r in landed] == [(i, Decimal(str(p))) for i, p in source]
    assert [f.name for f in table.spec().fields] == ["ordered_at_day"]


@pytest.mark.parametrize(("case", "code"), [("missing bucket", 2), ("unreachable endpoint", 75)])
def test_check_maps_s3_errors_like_the_parquet_writer(
    *, tmp_path: Path, run_cli: Any, write_job: Any, s3: Any, aws_credentials: Any, case: str, code: int
) -> None:
    bucket = s3.bucket + ("-missing" if case == "missing bucket" else "")
    endpoint = "http://127.0.0.1:9" if case == "unreachable endpoint" else s3.endpoint
    job = iceberg_job(
        write_job,
        warehouse=f"s3://{bucket}/lake",
        target=f"""
        catalog: {{type: sql, uri: "sqlite:///catalog/catalog.db"}}
        endpoint_url: {endpoint}
        region: us-east-1
        """,
        schema=SCHEMA + "retry: {max_attempts: 1}\n",
    )
    write_orders(tmp_path / "data" / "orders.csv", orders(1, 3))
    result = run_cli("check", "--config", str(job), "--json", env=aws_credentials)
    assert result.returncode == code, (result.stdout, result.stderr)
    target = json.loads(result.stdout)["checks"][1]
    assert target["role"] == "target"
    assert f"s3://{bucket}/lake" in target["message"]
