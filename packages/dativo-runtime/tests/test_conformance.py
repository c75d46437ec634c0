"""The built-in connectors pass the testkit's conformance suite, like any third-party plugin."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dativo_runtime.connectors import CsvReader, JsonlReader, ParquetWriter
from dativo_testkit import run_conformance

ORDERS = Path(__file__).resolve().parents[3] / "examples" / "data" / "orders.csv"


def assert_passed(report: object) -> None:
    failed = [(c.name, c.reason) for c in report.failed]  # type: ignore[attr-defined]
    assert not failed, failed


def test_csv_reader_conformance(tmp_path: Path) -> None:
    shutil.copy(ORDERS, tmp_path / "orders.csv")
    report = run_conformance(
        CsvReader, config={"path": str(tmp_path / "orders.csv"), "block_size": "4k"}, bad_config={"path": 5}
    )
    assert_passed(report)


def test_jsonl_reader_conformance(tmp_path: Path) -> None:
    with (tmp_path / "events.jsonl").open("w") as handle:
        for i in range(300):
            handle.write(json.dumps({"id": i, "name": f"n{i}", "amount": i * 1.5}) + "\n")
    report = run_conformance(
        JsonlReader,
        config={"path": str(tmp_path / "events.jsonl"), "block_size": "2k"},
        bad_config={"path": ""},
    )
    assert_passed(report)


@pytest.mark.parametrize("compression", ["snappy", "zstd"])
def test_parquet_writer_conformance(tmp_path: Path, compression: str) -> None:
    out = tmp_path / "out"
    report = run_conformance(
        ParquetWriter,
        config={"path": str(out), "compression": compression},
        bad_config={"path": ""},
        read_back=out,
        hypothesis_examples=10,
    )
    assert_passed(report)


def test_iceberg_writer_conformance(tmp_path: Path) -> None:
    pytest.importorskip("pyiceberg.catalog.sql", reason="the iceberg writer needs dativo-runtime[iceberg]")
    from dativo_runtime.connectors import IcebergWriter

    report = run_conformance(
        IcebergWriter,
        config={"warehouse": str(tmp_path / "wh"), "table": "lake.orders"},
        bad_config={"warehouse": ""},
        hypothesis_examples=10,
    )
    assert_passed(report)
