"""The small pieces: the rate limiter, the secret mask, body paths, schema inference and page conversion."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dativo_http import RateLimiter, SecretMask
from dativo_http._body_path import value_at
from dativo_http._page_batches import PageConverter
from dativo_http._schema_inference import infer_columns
from dativo_plugin_sdk import Column, ColumnType


def test_rate_limiter_spaces_requests() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(5, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        limiter.wait()
    assert waits == pytest.approx([0.2] * 5)
    now[0] += 10  # idle: no burst credit is kept beyond one request
    limiter.wait()
    assert len(waits) == 5
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_secret_mask_hides_values_and_secret_query_parameters() -> None:
    mask = SecretMask(lambda: ["s3cr3t", "ab"], ["api_key"])
    assert mask.text("token s3cr3t and ab") == "token *** and ab"  # too short to mask blindly
    assert mask.url("https://u:pw@api.test/x?api_key=zzz&limit=5") == "https://api.test/x?api_key=***&limit=5"


def test_value_at() -> None:
    body = {"meta": {"next": "c2"}, "data": [{"id": 1}, {"id": 2}]}
    assert value_at(body, "meta.next") == "c2"
    assert value_at(body, "data.-1.id") == 2
    assert value_at(body, "") is body
    assert value_at(body, "meta.missing.deeper") is None
    assert value_at(body, "data.7") is None


def test_infer_columns() -> None:
    records = [
        {"id": 1, "price": 1, "ok": True, "at": "2024-01-01T00:00:00Z", "day": "2024-01-01", "tags": ["a"]},
        {
            "id": 2,
            "price": 2.5,
            "ok": None,
            "at": "2024-01-02T00:00:00+02:00",
            "day": "2024-01-02",
            "n": None,
        },
    ]
    columns = {c.name: c for c in infer_columns(records, ["id"])}
    assert {n: c.type.value for n, c in columns.items()} == {
        "id": "integer",
        "price": "float",
        "ok": "boolean",
        "at": "timestamp",
        "day": "date",
        "tags": "json",
        "n": "string",
    }
    assert not columns["id"].nullable
    assert columns["price"].nullable


def test_page_converter_builds_arrow_or_hands_back_dicts() -> None:
    converter = PageConverter(
        [
            Column("id", ColumnType.INTEGER, nullable=False),
            Column("at", ColumnType.TIMESTAMP),
            Column("amount", ColumnType.FLOAT),
            Column("price", ColumnType.DECIMAL),
            Column("meta", ColumnType.JSON),
        ]
    )
    batch = converter.convert(
        [
            {
                "id": 1,
                "at": "2024-01-01T01:00:00+01:00",
                "amount": 3,
                "price": "1.5",
                "meta": {"b": 1},
                "extra": 1,
            }
        ]
    )
    assert isinstance(batch, pa.RecordBatch)
    assert batch.schema.names == ["id", "at", "amount", "price", "meta"]
    assert batch.column("at")[0].as_py().hour == 0
    assert batch.column("meta")[0].as_py() == '{"b": 1}'
    fallback = converter.convert([{"id": "not a number", "extra": 1}])
    assert fallback == [{"id": "not a number", "at": None, "amount": None, "price": None, "meta": None}]
