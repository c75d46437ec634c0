"""The baseline candidates, each run by the harness as a fresh process.

Usage::

    python bench/baselines.py generator       --n N --seed S --batch-size B
    python bench/baselines.py pyarrow-dicts   --n N --seed S --batch-size B --out DIR
    python bench/baselines.py pyarrow-columns --n N --seed S --batch-size B --out DIR
    python bench/baselines.py dlt             --n N --seed S --batch-size B --out DIR

Each prints one JSON line (``{"rows": ...}``) on success. The harness times the whole
process (interpreter start and imports included) and reads the Parquet back itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# The workload lives in the plugin folder so that sandboxed plugins can import it too.
sys.path.insert(0, str(Path(__file__).resolve().parent / "plugins"))

import workload  # found through the path set just above

PARQUET_FILE = "part-0.parquet"
"""File name the pyarrow baselines write inside ``--out``."""


def run_generator(n: int, seed: int, batch_size: int) -> int:
    """Produce the dict batches and drop them: the cost of the source alone."""
    rows = 0
    for batch in workload.dict_batches(n, seed, batch_size):
        rows += len(batch)
    return rows


def run_pyarrow_dicts(n: int, seed: int, batch_size: int, out: Path) -> int:
    """The floor: ``RecordBatch.from_pylist`` per dict batch into one ``ParquetWriter``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = workload.arrow_schema()
    rows = 0
    with pq.ParquetWriter(out / PARQUET_FILE, schema, compression="snappy") as writer:
        for batch in workload.dict_batches(n, seed, batch_size):
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
            rows += len(batch)
    return rows


def run_pyarrow_columns(n: int, seed: int, batch_size: int, out: Path) -> int:
    """The ceiling: record batches built from columns into one ``ParquetWriter``."""
    import pyarrow.parquet as pq

    rows = 0
    with pq.ParquetWriter(out / PARQUET_FILE, workload.arrow_schema(), compression="snappy") as writer:
        for batch in workload.arrow_batches(n, seed, batch_size):
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def run_dlt(n: int, seed: int, batch_size: int, out: Path) -> int:
    """dlt: the dict batches through a pipeline to the filesystem destination as Parquet."""
    # Offline and self-contained: no telemetry, and dlt's working folders inside the run's folder.
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt

    @dlt.resource(name="records", write_disposition="append")
    def records() -> object:
        yield from workload.dict_batches(n, seed, batch_size)

    pipeline = dlt.pipeline(
        pipeline_name="dativo_bench",
        pipelines_dir=str(out / "_dlt_pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=(out / "data").as_uri()),
        dataset_name="bench",
        progress="log" if os.environ.get("DATIVO_BENCH_VERBOSE") else None,
    )
    info = pipeline.run(records(), loader_file_format="parquet")
    info.raise_on_failed_jobs()
    return n


def main(argv: list[str] | None = None) -> int:
    """Run one baseline and print ``{"rows": N}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", choices=("generator", "pyarrow-dicts", "pyarrow-columns", "dlt"))
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=workload.DEFAULT_BATCH_SIZE)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.candidate == "generator":
        rows = run_generator(args.n, args.seed, args.batch_size)
    else:
        if args.out is None:
            parser.error(f"{args.candidate} needs --out DIR")
        args.out = args.out.resolve()
        args.out.mkdir(parents=True, exist_ok=True)
        run = {"pyarrow-dicts": run_pyarrow_dicts, "pyarrow-columns": run_pyarrow_columns, "dlt": run_dlt}
        rows = run[args.candidate](args.n, args.seed, args.batch_size, args.out)
    print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
