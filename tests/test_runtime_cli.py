"""End to end through the ``dativo-run`` command: the example jobs, read back by pyarrow and DuckDB."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds

EXPECTED_COLUMNS = [
    "order_id",
    "customer_id",
    "region",
    "product",
    "quantity",
    "unit_price",
    "status",
    "ordered_at",
]


def source_orders(folder: Path) -> list[dict[str, Any]]:
    with (folder / "data" / "orders.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        {
            "order_id": int(r["order_id"]),
            "customer_id": int(r["customer_id"]),
            "region": r["region"],
            "product": r["product"],
            "quantity": int(r["quantity"]),
            "unit_price": decimal.Decimal(r["unit_price"]),
            "status": r["status"],
            "ordered_at": dt.datetime.fromisoformat(r["ordered_at"].replace("Z", "+00:00")),
        }
        for r in rows
    ]


def read_with_pyarrow(folder: Path) -> list[dict[str, Any]]:
    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    return sorted(table.to_pylist(), key=lambda r: r["order_id"])


def read_with_duckdb(folder: Path) -> list[tuple[Any, ...]]:
    columns = ", ".join(EXPECTED_COLUMNS)
    query = f"SELECT {columns} FROM read_parquet('{folder}/**/*.parquet', hive_partitioning=true) ORDER BY order_id"
    return duckdb.sql(query).fetchall()


def test_main_example_job_end_to_end(example_copy: Path, run_cli: Any) -> None:
    job = example_copy / "jobs" / "orders_csv_to_parquet.yaml"
    result = run_cli("run", "--config", str(job))
    assert result.returncode == 0, result.stderr
    output = example_copy / "output" / "orders"
    assert "succeeded" in result.stdout
    assert "read 300" in result.stdout
    assert "written 300" in result.stdout
    assert str(output) in result.stdout

    expected = source_orders(example_copy)
    assert len(expected) == 300
    by_pyarrow = read_with_pyarrow(output)
    assert [{k: r[k] for k in EXPECTED_COLUMNS} for r in by_pyarrow] == expected
    assert {r["ingest_date"] for r in by_pyarrow} == {dt.datetime.now(dt.timezone.utc).date().isoformat()}
    by_duckdb = read_with_duckdb(output)
    assert by_duckdb == [tuple(r[c] for c in EXPECTED_COLUMNS) for r in expected]
    partitions = {p.parent.name for p in output.rglob("*.parquet")}
    assert partitions == {f"region={r}" for r in {o["region"] for o in expected}}

    # Incremental by file time: a second run finds nothing new and the dataset is unchanged.
    again = run_cli("run", "--config", str(job), "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["status"], summary["records_read"], summary["records_written"]) == ("succeeded", 0, 0)
    assert len(read_with_duckdb(output)) == 300


def test_run_json_summary_and_structured_logs(example_copy: Path, run_cli: Any) -> None:
    job = example_copy / "jobs" / "orders_csv_to_parquet.yaml"
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 0
    assert summary["records_written"] == 300
    assert summary["validation"]["records_invalid"] == 0
    assert len(summary["files"]) == 5
    assert all(Path(f).exists() for f in summary["files"])
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert logs, "no log lines on stderr"
    run_logs = [entry for entry in logs if entry["logger"] == "dativo.run"]
    assert {(e["tenant"], e["job"], e["run_id"]) for e in run_logs} == {
        ("demo", "orders_csv_to_parquet", summary["run_id"])
    }
    listed = run_cli("files", "--config", str(job), "--json")
    assert sorted(json.loads(listed.stdout)["files"]) == sorted(summary["files"])


def test_example_plugin_job(example_copy: Path, run_cli: Any) -> None:
    job = example_copy / "jobs" / "numbers_plugin_to_parquet.yaml"
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 0, result.stderr
    output = example_copy / "output" / "numbers"
    table = ds.dataset(output, format="parquet").to_table()
    assert sorted(table.column("id").to_pylist()) == list(range(1000))
    assert all(r["square"] == r["id"] ** 2 for r in table.to_pylist())
    rows = duckdb.sql(f"SELECT count(*), sum(square) FROM read_parquet('{output}/**/*.parquet')").fetchall()
    assert rows == [(1000, sum(i * i for i in range(1000)))]


def test_job_dir_runs_every_job_and_reports_the_worst_code(example_copy: Path, run_cli: Any) -> None:
    jobs = example_copy / "jobs"
    ok = run_cli("run", "--job-dir", str(jobs), "--json")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert [j["job"] for j in report["jobs"]] == [
        "numbers_plugin_to_parquet",
        "orders_csv_to_iceberg",
        "orders_csv_to_parquet",
    ]
    (jobs / "broken.yaml").write_text("name: broken\nsource: {plugin: csv}\n")
    mixed = run_cli("run", "--job-dir", str(jobs), "--json")
    assert mixed.returncode == 2
    statuses = {
        j.get("job") or Path(j["job_file"]).name: j["status"] for j in json.loads(mixed.stdout)["jobs"]
    }
    assert statuses == {
        "broken.yaml": "failed",
        "numbers_plugin_to_parquet": "succeeded",
        "orders_csv_to_iceberg": "succeeded",
        "orders_csv_to_parquet": "succeeded",
    }


def test_check_validate_discover_schema_plugins(example_copy: Path, run_cli: Any) -> None:
    job = str(example_copy / "jobs" / "orders_csv_to_parquet.yaml")
    check = run_cli("check", "--config", job, "--json")
    assert check.returncode == 0, check.stderr
    assert [c["success"] for c in json.loads(check.stdout)["checks"]] == [True, True]
    validate = run_cli("validate", "--config", job, "--json")
    assert validate.returncode == 0, validate.stderr
    plan = json.loads(validate.stdout)
    assert plan["ok"]
    assert {s["step"] for s in plan["steps"]} >= {
        "source plugin",
        "target plugin",
        "stream",
        "state",
    }
    assert not list((example_copy / "output").glob("**/*.parquet"))
    discover = run_cli("discover", "--config", job, "--json")
    assert discover.returncode == 0, discover.stderr
    stream = json.loads(discover.stdout)["objects"][0]
    assert [c["name"] for c in stream["schema"]] == EXPECTED_COLUMNS
    human = run_cli("discover", "--connector", "csv", "--set", f"path={example_copy / 'data' / 'orders.csv'}")
    assert human.returncode == 0
    assert "order_id" in human.stdout
    schema = run_cli("schema")
    assert json.loads(schema.stdout)["properties"]["validation"]["enum"] == ["strict", "warn", "quarantine"]
    listed = run_cli("plugins", "list")
    assert listed.returncode == 0
    assert "parquet" in listed.stdout
    inspected = run_cli(
        "plugins",
        "inspect",
        str(example_copy / "plugins" / "arrow_reader.py") + ":ArrowNumbersReader",
        "--json",
    )
    assert inspected.returncode == 0, inspected.stderr
    info = json.loads(inspected.stdout)
    assert (info["plugin_version"], info["compatible"], info["role"]) == ("1.0.0", True, "reader")
    assert "incremental" in info["capabilities"]


def test_output_location_is_relative_to_the_job_file_not_the_working_directory(
    example_copy: Path, run_cli: Any, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    job = example_copy / "jobs" / "orders_csv_to_parquet.yaml"
    result = run_cli("run", "--config", str(job), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert list((example_copy / "output" / "orders").rglob("*.parquet"))
    assert not list(elsewhere.iterdir())


def test_installed_entry_point_plugins_are_usable_by_name(
    tmp_path: Path, run_cli: Any, write_job: Any
) -> None:
    site = tmp_path / "site"
    package = site / "acme_plugins"
    package.mkdir(parents=True)
    shutil.copy(
        Path(__file__).resolve().parent.parent / "examples" / "plugins" / "arrow_reader.py",
        package / "reader.py",
    )
    (package / "__init__.py").write_text("")
    dist = site / "acme_plugins-1.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugins\nVersion: 1.0.0\n")
    (dist / "entry_points.txt").write_text(
        "[dativo.plugins]\nacme-numbers = acme_plugins.reader:ArrowNumbersReader\n"
    )
    env = {"PYTHONPATH": str(site)}
    listed = run_cli("plugins", "list", "--json", env=env)
    assert {
        "name": "acme-numbers",
        "kind": "entry_point",
        "target": "acme_plugins.reader:ArrowNumbersReader",
        "distribution": "acme-plugins 1.0.0",
    } in json.loads(listed.stdout)["plugins"]
    job = write_job(
        """
        name: by-name
        source: {plugin: acme-numbers, config: {count: 25, batch_size: 10}}
        target: {plugin: parquet, config: {path: out}}
        sandbox: {backend: none}
        """
    )
    result = run_cli("run", "--config", str(job), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert ds.dataset(tmp_path / "out", format="parquet").to_table().num_rows == 25


def test_validate_refuses_what_run_refuses_before_moving_data(
    tmp_path: Path, run_cli: Any, write_job: Any, test_plugins: Path
) -> None:
    job = write_job(
        f"""\
        tenant: acme
        name: not_incremental
        source:
          plugin: {test_plugins}:CrashingReader
          incremental: {{}}
        target: {{plugin: parquet, config: {{path: ./out}}}}
        sandbox: {{backend: none}}
        """
    )
    validate = run_cli("validate", "--config", str(job), "--json")
    run = run_cli("run", "--config", str(job), "--json")
    assert (validate.returncode, run.returncode) == (2, 2), (validate.stdout, run.stderr)
    failed = [s for s in json.loads(validate.stdout)["steps"] if not s["ok"]]
    assert failed[0]["step"] == "source plugin"
    message = json.loads(run.stdout)["error"]["message"]
    assert "source.incremental is set" in message
    assert failed[0]["message"] == message
    assert not list((tmp_path / "out").glob("*.parquet"))
