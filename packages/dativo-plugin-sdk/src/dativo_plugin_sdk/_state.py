"""Incremental state handed to ``BaseReader.extract``."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["State"]


class State:
    """Per-stream incremental state: a small JSON-serialisable key/value store.

    The runtime creates one ``State`` per stream and passes it to ``extract``. A plugin
    reads where it left off with :meth:`get` and records progress with :meth:`set` *after*
    yielding the batch the progress belongs to. The runtime snapshots the state each time
    it receives a batch and persists a snapshot only once that batch and every batch
    before it are committed, so a crash never skips records.

    Args:
        values: Initial values (from the previous run's saved state).
        stream: Name of the stream this state belongs to, if any.

    Raises:
        TypeError: If ``values`` is not JSON-serialisable.

    Example:
        >>> state = State({"cursor": "2024-01-01"}, stream="orders")
        >>> state.get("cursor")
        '2024-01-01'
        >>> state.set("cursor", "2024-02-01")
        >>> state.to_dict()
        {'cursor': '2024-02-01'}
    """

    def __init__(self, values: Mapping[str, Any] | None = None, *, stream: str | None = None) -> None:
        self.stream = stream
        self._values: dict[str, Any] = {}
        for key, value in (values or {}).items():
            self.set(key, value)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default``."""
        return copy.deepcopy(self._values.get(key, default))

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``.

        Raises:
            TypeError: If ``key`` is not a string or ``value`` is not JSON-serialisable.
        """
        if not isinstance(key, str):
            raise TypeError(f"state keys must be strings, got {type(key).__name__}")
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"state value for {key!r} must be JSON-serialisable (str, int, float, bool, None, "
                f"list, dict); got {type(value).__name__}. Convert datetimes with .isoformat()."
            ) from exc
        self._values[key] = json.loads(text)

    def update(self, values: Mapping[str, Any]) -> None:
        """Store every key of ``values``."""
        for key, value in values.items():
            self.set(key, value)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._values.pop(key, None)

    def to_dict(self) -> dict[str, Any]:
        """Return a deep copy of the values."""
        return copy.deepcopy(self._values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, stream: str | None = None) -> State:
        """Build a state from :meth:`to_dict` output."""
        return cls(data, stream=stream)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def keys(self) -> list[str]:
        """Return the stored keys.

        ``State`` defines no ``__len__`` on purpose: an empty state stays truthy, so
        ``if state:`` means "the runtime passed a state", never "the state is empty".
        """
        return list(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, State):
            return NotImplemented
        return self._values == other._values and self.stream == other.stream

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"State({self._values!r}, stream={self.stream!r})"
