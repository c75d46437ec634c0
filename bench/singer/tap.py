"""A minimal singer-sdk tap emitting the benchmark workload as Singer RECORD messages.

Usage::

    python bench/singer/tap.py --config CONFIG.json > messages.jsonl
    tap-dativo-bench --config CONFIG.json    # installed from the wheel of bench/singer (pyproject.toml)

``CONFIG.json`` holds ``n``, ``seed`` and ``batch_size``. The records are the same as the
Dativo bench plugins'; singer-sdk serialises them to JSON lines on stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

if __package__:
    # Installed as the package tap_dativo_bench (pyproject.toml here): workload.py is packaged beside it.
    from . import workload
else:
    # Run as a script: the workload lives in the plugin folder so that sandboxed plugins can import it too.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

    import workload  # found through the path set just above

_PROPERTY_TYPES: dict[str, Any] = {
    "integer": th.IntegerType,
    "string": th.StringType,
    "float": th.NumberType,
    "timestamp": th.DateTimeType,
    "boolean": th.BooleanType,
}


class RecordsStream(Stream):
    """The one stream of the tap: ``records``, keyed by ``id``."""

    name = "records"
    primary_keys = ("id",)
    schema = th.PropertiesList(
        *(
            th.Property(field, _PROPERTY_TYPES[kind], required=not nullable)
            for field, (kind, nullable) in workload.COLUMN_TYPES.items()
        )
    ).to_dict()

    def get_records(self, context: dict[str, Any] | None) -> Iterable[dict[str, Any]]:
        """Yield the workload's records one by one."""
        config = self.config
        for batch in workload.dict_batches(
            int(config["n"]), int(config.get("seed", 0)), int(config.get("batch_size", 10_000))
        ):
            yield from batch


class BenchTap(Tap):
    """Singer tap over the benchmark workload."""

    name = "tap-dativo-bench"
    config_jsonschema = th.PropertiesList(
        th.Property("n", th.IntegerType, required=True),
        th.Property("seed", th.IntegerType),
        th.Property("batch_size", th.IntegerType),
    ).to_dict()

    def discover_streams(self) -> list[Stream]:
        """Return the tap's one stream."""
        return [RecordsStream(self)]


def main() -> None:
    """Entry point of the ``tap-dativo-bench`` console script (the installed package)."""
    BenchTap.cli()


if __name__ == "__main__":
    main()
