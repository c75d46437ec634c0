"""Query the demo's Iceberg table: pyiceberg's scan, then DuckDB over the same data files.

Run after `dativo-run run --config examples/jobs/orders_csv_to_iceberg.yaml`:

    python examples/query_iceberg.py
"""

from __future__ import annotations

from pathlib import Path

import duckdb
from pyiceberg.catalog.sql import SqlCatalog

WAREHOUSE = Path(__file__).resolve().parent / "output" / "warehouse"

catalog = SqlCatalog("default", uri=f"sqlite:///{WAREHOUSE}/catalog.db", warehouse=WAREHOUSE.as_uri())
table = catalog.load_table("demo.orders")
orders = table.scan().to_arrow()
print(f"demo.orders: {orders.num_rows} rows in {len(table.snapshots())} snapshot(s)")
files = [task.file.file_path.removeprefix("file://") for task in table.scan().plan_files()]
by_region = duckdb.sql(
    f"SELECT region, count(*) AS orders, sum(quantity * unit_price) AS revenue "
    f"FROM read_parquet({files!r}) GROUP BY region ORDER BY region"
)
print(by_region)
