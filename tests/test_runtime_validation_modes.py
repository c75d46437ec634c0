"""Records of the wrong type through ``dativo-run`` in each validation mode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest

ROWS = [
    ("1", "10", "2024-01-01T00:00:00Z", "true"),
    ("2", "ten", "2024-01-02T00:00:00Z", "false"),  # quantity is not an integer
    ("3", "30", "yesterday", "true"),  # not a timestamp
    ("", "40", "2024-01-04T00:00:00Z", "false"),  # required id missing
    ("5", "50", "2024-01-05T00:00:00Z", "maybe"),  # not a boolean
    ("6", "60", "2024-01-06T00:00:00Z", "true"),
]
VALID_IDS = [1, 6]


def make_job(tmp_path: Path, write_job: Any, mode: str, fmt: str = "csv") -> Path:
    if fmt == "csv":
        lines = ["id,quantity,at,paid"] + [",".join(r) for r in ROWS]
        (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    else:
        with (tmp_path / "in.jsonl").open("w") as handle:
            for id_, quantity, at, paid in ROWS:
                record: dict[str, Any] = {"id": int(id_) if id_ else None, "at": at, "paid": paid == "true"}
                record["quantity"] = int(quantity) if quantity.isdigit() else quantity
                if paid == "maybe":
                    record["paid"] = "maybe"
                handle.write(json.dumps(record) + "\n")
    return write_job(
        f"""
        name: typed-{mode}
        source: {{plugin: {fmt}, config: {{path: in.{fmt}}}}}
        target: {{plugin: parquet, config: {{path: out}}}}
        schema:
          - {{name: id, type: integer, required: true}}
          - {{name: quantity, type: integer}}
          - {{name: at, type: timestamp}}
          - {{name: paid, type: boolean}}
        validation: {mode}
        """
    )


def dataset_rows(folder: Path) -> list[dict[str, Any]]:
    if not folder.exists():
        return []
    return sorted(ds.dataset(folder, format="parquet").to_table().to_pylist(), key=lambda r: r.get("id") or 0)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_strict_fails_with_a_summary_and_commits_nothing(
    tmp_path: Path, write_job: Any, run_cli: Any, fmt: str
) -> None:
    job = make_job(tmp_path, write_job, "strict", fmt)
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 65, result.stderr
    summary = json.loads(result.stdout)
    counts = {(r["field"], r["reason"]): r["count"] for r in summary["validation"]["by_field"]}
    assert counts == {
        ("quantity", "invalid_type"): 1,
        ("at", "invalid_type"): 1,
        ("id", "missing_required"): 1,
        ("paid", "invalid_type"): 1,
    }
    assert summary["validation"]["examples"][0]["record"] == 1
    assert "4 of 6 records are invalid" in summary["error"]["message"]
    assert dataset_rows(tmp_path / "out") == []
    assert not list((tmp_path / "out").rglob("*.parquet"))
    assert not list((tmp_path / "out").rglob("_dativo/manifests/*.json"))
    human = run_cli("run", "--config", str(job))
    assert human.returncode == 65
    assert "invalid values" in human.stdout
    assert "quantity" in human.stdout
    assert "error: validation failed (strict)" in human.stderr


def test_warn_keeps_every_record_and_reports(tmp_path: Path, write_job: Any, run_cli: Any) -> None:
    job = make_job(tmp_path, write_job, "warn")
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["records_written"], summary["records_invalid"]) == (6, 4)
    rows = ds.dataset(tmp_path / "out", format="parquet").to_table().to_pylist()
    assert len(rows) == 6
    by_quantity = {r["quantity"]: r for r in rows}
    assert None in by_quantity
    assert by_quantity[10]["paid"] is True
    assert sum(1 for r in rows if r["id"] is None) == 1
    assert summary["validation"]["records_invalid"] == 4
    logs = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert all(event["level"] in ("DEBUG", "INFO", "WARNING", "ERROR") for event in logs)


def test_quarantine_sends_invalid_records_to_their_own_dataset(
    tmp_path: Path, write_job: Any, run_cli: Any
) -> None:
    job = make_job(tmp_path, write_job, "quarantine")
    result = run_cli("run", "--config", str(job), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["records_written"], summary["records_quarantined"]) == (2, 4)
    assert summary["quarantine_output"] == str(tmp_path / "out_quarantine")
    assert [r["id"] for r in dataset_rows(tmp_path / "out")] == VALID_IDS
    quarantined = duckdb.sql(
        f'SELECT id, quantity, "at", paid, _dativo_field, _dativo_reason FROM '
        f"read_parquet('{tmp_path}/out_quarantine/**/*.parquet') ORDER BY _dativo_record"
    ).fetchall()
    assert [(q[0], q[1], q[4]) for q in quarantined] == [
        ("2", "ten", "quantity"),
        ("3", "30", "at"),
        (None, "40", "id"),
        ("5", "50", "paid"),
    ]
    assert quarantined[1][2] == "yesterday"
    assert "not a valid timestamp" in quarantined[1][5]
    assert "required value is missing" in quarantined[2][5]
    by_pyarrow = ds.dataset(tmp_path / "out_quarantine", format="parquet").to_table()
    assert by_pyarrow.num_rows == 4
    assert set(by_pyarrow.column_names) >= {
        "_dativo_reason",
        "_dativo_field",
        "_dativo_record",
        "_dativo_run_id",
    }
