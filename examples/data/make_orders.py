"""Regenerate orders.csv deterministically: ``python examples/data/make_orders.py``."""

from __future__ import annotations

import csv
from pathlib import Path

REGIONS = ["eu-west", "eu-north", "us-east", "us-west", "ap-south"]
PRODUCTS = ["widget", "gadget", "gizmo", "doohickey", "sprocket", "flange"]
STATUSES = ["paid", "shipped", "delivered", "refunded"]
COLUMNS = ["order_id", "customer_id", "region", "product", "quantity", "unit_price", "status", "ordered_at"]


def rows(count: int = 300) -> list[list[object]]:
    """The orders, a pure function of their index."""
    result: list[list[object]] = []
    for i in range(1, count + 1):
        day, hour, minute = 1 + (i * 7) % 28, (i * 5) % 24, (i * 17) % 60
        result.append(
            [
                1000 + i,
                500 + (i * 37) % 120,
                REGIONS[i % 5],
                PRODUCTS[(i * 3) % 6],
                1 + (i * 11) % 9,
                f"{(i * 13) % 200 + 4.99:.2f}",
                STATUSES[(i * 7) % 4],
                f"2024-03-{day:02d}T{hour:02d}:{minute:02d}:00Z",
            ]
        )
    return result


def main() -> None:
    """Write orders.csv beside this script."""
    with (Path(__file__).parent / "orders.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows())


if __name__ == "__main__":
    main()
