"""Stands in for `dativo-run run --config JOB --metrics-file FILE --result-file FILE` in the serve tests.

Reads `fake:` from the job file (`sleep` seconds, `records`, `exit_code`), appends
`start`/`end`/`aborted` lines to the file named by $FAKE_RUN_LOG, writes its metrics with
the real RunMetrics and its result as the real RunResult document, and on SIGTERM stops
early, writes `aborted` and exits 143 without writing metrics or a result for the
unfinished work (an abort commits nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml

from dativo_runtime import RunResult, RunStatus
from dativo_runtime._observability import RunMetrics, write_metrics_file


def log(line: str) -> None:
    path = os.environ["FAKE_RUN_LOG"]
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line} {os.getpid()} {time.time():.3f}\n".encode())
    finally:
        os.close(fd)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--config", required=True)
    parser.add_argument("--metrics-file", required=True)
    parser.add_argument("--result-file", required=True)
    args = parser.parse_args()
    job = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    fake = job.get("fake") or {}
    job_id = f"{job.get('tenant', 'default')}/{job['name']}"
    aborted = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal aborted
        aborted = True

    signal.signal(signal.SIGTERM, on_term)
    log(f"start {job_id}")
    deadline = time.monotonic() + float(fake.get("sleep", 0.1))
    while time.monotonic() < deadline and not aborted:
        time.sleep(0.02)
    if aborted:
        log(f"aborted {job_id}")
        return 143
    metrics = RunMetrics()
    handle = metrics.for_job(job.get("tenant", "default"), job["name"])
    handle.run_started()
    records = int(fake.get("records", 5))
    handle.batch("main", records_read=records, records_written=records, bytes_written=records * 10)
    exit_code = int(fake.get("exit_code", 0))
    handle.run_finished("success" if exit_code == 0 else "failed", 0.1)
    write_metrics_file(metrics, args.metrics_file, tenant=job.get("tenant", "default"), job=job["name"])
    result = RunResult(
        run_id=f"fake-{os.getpid()}",
        tenant=job.get("tenant", "default"),
        job=job["name"],
        status=RunStatus.SUCCEEDED if exit_code == 0 else RunStatus.FAILED,
        exit_code=exit_code,
        records_read=records,
        records_written=records,
        bytes_written=records * 10,
        batches=1,
    )
    Path(args.result_file).write_text(json.dumps(result.to_record()), encoding="utf-8")
    log(f"end {job_id}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
