"""Partitions under the real sandboxes: one worker per partition at once, hostile partition lists refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from dativo_runtime import parse_job, run_job
from dativo_runtime._sandbox._base import Sandbox

PLUGINS = Path(__file__).resolve().parents[1] / "data" / "partitioned_plugins.py"


def _job(tmp_path: Path, backend: str, reader: str, config: dict[str, Any], parallelism: int = 2) -> Any:
    return parse_job(
        {
            "tenant": "t",
            "name": "j",
            "source": {
                "plugin": f"{PLUGINS}:{reader}",
                "config": config,
                "incremental": {},
                "parallelism": parallelism,
            },
            "target": {"plugin": "parquet", "config": {"path": "out"}},
            "sandbox": {"backend": backend},
            "state": {"uri": str(tmp_path / "state")},
            "retry": {"max_attempts": 1},
        },
        base_dir=tmp_path,
    )


def test_each_partition_runs_in_a_sandbox_worker_of_its_own(backend: Sandbox, tmp_path: Path) -> None:
    result = run_job(
        _job(
            tmp_path, backend.name, "RangesReader", {"ranges": 4, "size": 10, "delay_s": 0.25, "trace": True}
        )
    )
    assert result.succeeded, result.error
    assert result.sandbox["source"] == backend.name
    rows = ds.dataset(tmp_path / "out", format="parquet").to_table().to_pylist()
    assert sorted(r["id"] for r in rows) == list(range(40))
    # Two workers at once (parallelism 2), each partition wholly in one of them.
    by_partition = {
        r["partition"]: {x["worker"] for x in rows if x["partition"] == r["partition"]} for r in rows
    }
    assert all(len(workers) == 1 for workers in by_partition.values())
    assert len(set().union(*by_partition.values())) == 2
    again = run_job(_job(tmp_path, backend.name, "RangesReader", {"ranges": 4, "size": 10}))
    assert again.succeeded, again.error
    assert again.records_read == 0


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not-a-list", "not a list of Partition objects"),
        ("duplicates", "listed partition 'a' twice"),
        ("too-many", "at most 50000"),
        ("wrong-items", "a list of Partition objects"),
    ],
)
def test_a_hostile_partition_list_fails_the_run_cleanly(
    process_backend: Sandbox, tmp_path: Path, kind: str, message: str
) -> None:
    result = run_job(_job(tmp_path, "process", "BadPartitionsReader", {"kind": kind}))
    assert not result.succeeded
    assert result.exit_code == 1
    assert result.error is not None
    assert result.error.error_code == "PLUGIN_ERROR"
    assert message in result.error.message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.parquet"))
