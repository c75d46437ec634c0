"""The connectorx and dlt candidates of the ``postgres`` section, one per process.

Usage: ``python postgres_baselines.py {connectorx,connectorx-p2,dlt} DSN OUT``; prints
``{"rows": N}``. ``connectorx-p2`` reads with ``partition_on="id", partition_num=2`` (two
connections, two threads): what this machine gives a two-way read of the table.
A script of its own (no package imports) because the harness never imports pyarrow.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def _run_connectorx(dsn: str, out: Path, partitions: int = 1) -> int:
    import connectorx as cx
    import pyarrow.parquet as pq

    split = {"partition_on": "id", "partition_num": partitions} if partitions > 1 else {}
    table = cx.read_sql(dsn, "SELECT * FROM public.records", return_type="arrow", **split)
    pq.write_table(table, out / "part-0.parquet", compression="snappy")
    return int(table.num_rows)


def _run_dlt(dsn: str, out: Path) -> int:
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt
    from dlt.sources.sql_database import sql_table

    url = "postgresql+psycopg2://" + dsn.removeprefix("postgresql://")
    records = sql_table(credentials=url, schema="public", table="records", backend="pyarrow")
    pipeline = dlt.pipeline(
        pipeline_name="dativo_bench_pg",
        pipelines_dir=str(out / "_dlt_pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=(out / "data").as_uri()),
        dataset_name="bench",
    )
    info = pipeline.run(records, loader_file_format="parquet")
    info.raise_on_failed_jobs()
    rows: int = pipeline.last_trace.last_normalize_info.row_counts["records"]
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A baseline of the postgres section.")
    parser.add_argument("kind", choices=("connectorx", "connectorx-p2", "dlt"))
    parser.add_argument("dsn")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kind == "dlt":
        rows = _run_dlt(args.dsn, args.out)
    else:
        rows = _run_connectorx(args.dsn, args.out, 2 if args.kind == "connectorx-p2" else 1)
    print(json.dumps({"rows": rows}))
