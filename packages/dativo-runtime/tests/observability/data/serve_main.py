"""Runs `serve` the way `dativo-run serve` will, with the fake `dativo-run run` as each job's process.

Usage: python serve_main.py JOB_DIR PORT_FILE FAKE_RUN_SCRIPT GRACE_SECONDS
"""

from __future__ import annotations

import sys
from pathlib import Path

from dativo_runtime._observability import configure_logging
from dativo_runtime._serve import SubprocessJobRunner, serve


def main() -> int:
    job_dir, port_file, fake_script, grace = sys.argv[1:5]
    configure_logging(fmt="json")

    def on_listening(host: str, port: int) -> None:
        tmp = Path(port_file + ".tmp")
        tmp.write_text(str(port), encoding="utf-8")
        tmp.rename(port_file)

    return serve(
        job_dir,
        0,
        host="127.0.0.1",
        runner=SubprocessJobRunner([sys.executable, fake_script, "run"], kill_after=5.0, poll_interval=0.05),
        max_parallel=4,
        max_per_tenant=1,
        grace_period=float(grace),
        abort_grace=10.0,
        tick_interval=0.2,
        on_listening=on_listening,
    )


if __name__ == "__main__":
    sys.exit(main())
