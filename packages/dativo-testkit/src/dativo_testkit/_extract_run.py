"""One complete read of a reader under test: its batches, records and states."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dativo_plugin_sdk import Record
from dativo_plugin_sdk._arrow import as_arrow_table

__all__ = ["ExtractRun", "close_iterator", "record_count", "state_text"]

_STATE_TEXT_LIMIT = 120


@dataclass(frozen=True)
class ExtractRun:
    """A complete read: the batches, their records, and the state as each batch arrived."""

    batches: list[Any]
    records: list[list[Record]]
    states_at_batch: list[dict[str, Any]]
    initial_state: dict[str, Any]
    final_state: dict[str, Any]

    @property
    def record_count(self) -> int:
        """Records over all batches."""
        return sum(len(r) for r in self.records)


def state_text(values: Mapping[str, Any]) -> str:
    text = json.dumps(values, default=str)
    return text if len(text) <= _STATE_TEXT_LIMIT else text[: _STATE_TEXT_LIMIT - 3] + "..."


def close_iterator(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            pass


def record_count(batch: Any) -> int:
    if isinstance(batch, list):
        return len(batch)
    rows = getattr(batch, "num_rows", None)
    return int(rows) if isinstance(rows, int) else int(as_arrow_table(batch).num_rows)
