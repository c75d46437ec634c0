"""A partition: one independent slice of a reader's stream, extracted by its own reader instance."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["WHOLE_STREAM", "Partition"]

WHOLE_STREAM = "*"
"""The name of the one partition of a reader that does not split its stream (the default)."""

_MAX_NAME = 1024


@dataclass(frozen=True)
class Partition:
    """One independent slice of a stream (a file, a key range, a date), named stably across runs.

    A reader lists its partitions in :meth:`BaseReader.partitions`; the runtime builds one
    reader instance per partition, sets its ``partition`` attribute and calls
    ``extract`` with that partition's own saved state.

    Args:
        name: What the slice covers, stable across runs (``orders-2024.csv``, ``id:0-99999``):
            its state is saved and resumed under this name. 1 to 1024 characters.
        params: JSON-able values the reader needs to extract the slice (a path, key bounds).

    Raises:
        ValueError: If ``name`` is empty or too long.
        TypeError: If ``name`` is not a string or ``params`` is not a JSON-able mapping.

    Example:
        >>> Partition("2024-01.csv", {"path": "data/2024-01.csv"}).to_dict()
        {'name': '2024-01.csv', 'params': {'path': 'data/2024-01.csv'}}
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"a partition's name must be a string, got {type(self.name).__name__}")
        if not self.name or len(self.name) > _MAX_NAME:
            raise ValueError(f"a partition's name must be 1 to {_MAX_NAME} characters, got {len(self.name)}")
        if not isinstance(self.params, Mapping):
            kind = type(self.params).__name__
            raise TypeError(f"partition {self.name!r}: params must be a mapping, got {kind}")
        try:
            text = json.dumps(dict(self.params), allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"partition {self.name!r}: params must be JSON-able (str, int, float, bool, None, list, "
                f"dict): {exc}"
            ) from None
        object.__setattr__(self, "params", json.loads(text))

    @property
    def is_whole_stream(self) -> bool:
        """Whether this is the default single partition (the stream not split)."""
        return self.name == WHOLE_STREAM

    def to_dict(self) -> dict[str, Any]:
        """Return the partition as JSON data."""
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Partition:
        """Rebuild a partition from :meth:`to_dict` output.

        Raises:
            ValueError: If ``data`` has no usable name.
            TypeError: If its values have the wrong types.
        """
        return cls(name=data.get("name"), params=data.get("params") or {})  # type: ignore[arg-type]

    def __hash__(self) -> int:
        return hash(self.name)
