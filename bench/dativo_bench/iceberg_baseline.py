"""The ``iceberg-pyiceberg`` candidate: pyiceberg's own ``append`` of the workload as one Arrow table.

Usage: ``python iceberg_baseline.py --n N --seed S --batch-size B --out DIR``; prints
``{"rows": N}``. It builds the Arrow table from ``plugins/workload.py`` (the batches the
bench's Arrow plugin yields), opens a sql catalog on ``DIR/catalog.db`` with the warehouse
``DIR/warehouse``, creates ``bench.records`` from the table's schema and appends the table in
one call. A script of its own because the harness never imports pyarrow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

import workload  # found through the path set just above


def append_workload(n: int, seed: int, batch_size: int, out: Path) -> int:
    """Create ``bench.records`` in a fresh sql catalog under ``out`` and append ``n`` rows."""
    import pyarrow as pa
    from pyiceberg.catalog.sql import SqlCatalog

    table = pa.Table.from_batches(workload.arrow_batches(n, seed, batch_size), schema=workload.arrow_schema())
    warehouse = out / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog("default", uri=f"sqlite:///{out / 'catalog.db'}", warehouse=warehouse.as_uri())
    catalog.create_namespace("bench")
    iceberg_table = catalog.create_table("bench.records", schema=table.schema)
    iceberg_table.append(table)
    return table.num_rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=workload.DEFAULT_BATCH_SIZE)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = append_workload(args.n, args.seed, args.batch_size, args.out.resolve())
    print(json.dumps({"rows": rows}))
