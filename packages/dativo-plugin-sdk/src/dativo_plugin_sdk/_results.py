"""Result types returned by ``check_connection`` and ``discover``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._schema import DiscoveredStream

__all__ = ["ConnectionTestResult", "DiscoveryResult"]


@dataclass
class ConnectionTestResult:
    """Outcome of a connection check.

    Args:
        success: Whether the source or target is reachable with the given config.
        message: One human sentence on the outcome (what to fix when it failed).
        error_code: Machine-readable code when it failed (e.g. ``AUTHENTICATION_FAILED``).
        details: JSON-serialisable context (never secrets).
        retryable: Whether checking again later may succeed.
    """

    success: bool
    message: str
    error_code: str | None = None
    details: dict[str, Any] | None = None
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-serialisable data."""
        return {
            "success": self.success,
            "message": self.message,
            "error_code": self.error_code,
            "details": dict(self.details) if self.details else {},
            "retryable": self.retryable,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConnectionTestResult:
        """Build a result from :meth:`to_dict` output."""
        return cls(
            success=bool(data["success"]),
            message=str(data.get("message", "")),
            error_code=data.get("error_code"),
            details=dict(data.get("details") or {}) or None,
            retryable=bool(data.get("retryable", False)),
        )


@dataclass
class DiscoveryResult:
    """What a reader found: its streams and free-form metadata.

    Args:
        objects: The discovered streams (:class:`DiscoveredStream` or their dicts).
        metadata: JSON-serialisable context about the source (server version...).

    Raises:
        ValueError: If two streams share a name.
    """

    objects: list[DiscoveredStream] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        objects: Sequence[DiscoveredStream | Mapping[str, Any]] = self.objects or []
        self.objects = [
            o if isinstance(o, DiscoveredStream) else DiscoveredStream.from_dict(o) for o in objects
        ]
        names = [o.name for o in self.objects]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate stream names in discovery result: {', '.join(duplicates)}")
        self.metadata = dict(self.metadata or {})

    def stream(self, name: str) -> DiscoveredStream:
        """Return the stream called ``name``.

        Raises:
            KeyError: If no stream has that name.
        """
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-serialisable data."""
        return {"objects": [o.to_dict() for o in self.objects], "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiscoveryResult:
        """Build a result from :meth:`to_dict` output."""
        return cls(
            objects=[DiscoveredStream.from_dict(o) for o in data.get("objects") or []],
            metadata=dict(data.get("metadata") or {}),
        )
