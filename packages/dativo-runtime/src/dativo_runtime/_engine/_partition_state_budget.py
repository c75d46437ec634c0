"""The states of a sandboxed reader's partitions, held to what the next run can send back.

Each state a sandboxed reader reports is at most 1 MiB (checked as its message arrives,
:data:`~dativo_runtime._sandbox.host._worker_messages.MAX_STATE_BYTES`), but a stream may
have thousands of partitions, and the run keeps each one's last state until the commit
saves them all. The next run sends every saved partition state back to its worker in one
``partitions`` request, a control frame of at most 4 MiB. So the states of one stream's
partitions together, the saved ones this run does not replace included, are held to
:data:`~dativo_runtime._sandbox.host._worker_messages.MAX_PARTITION_STATES_BYTES` of JSON
(and :data:`~dativo_runtime._sandbox.host._worker_messages.MAX_PARTITION_STATES_CONTAINERS`
arrays and objects): checked as each state arrives, so the host never holds more, and once
more on the whole mapping before it is saved. A run that goes past fails with a
``PluginError`` before anything is committed, and its state is not saved.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dativo_plugin_sdk import ConfigurationError, PluginError
from dativo_runtime._sandbox._limits import format_bytes
from dativo_runtime._sandbox.host._worker_messages import (
    MAX_PARTITION_STATES_BYTES,
    MAX_PARTITION_STATES_CONTAINERS,
)

__all__ = ["PartitionStateBudget"]

_ADVICE = "keep cursors, not data, in the state"


def _encoded(value: Any) -> str:
    """The JSON text of ``value`` as a control frame carries it (compact, ASCII)."""
    try:
        return json.dumps(value, separators=(",", ":"), default=str)
    except (ValueError, RecursionError):
        return ""  # Not JSON at all: the state store refuses it when it is saved.


def _size(text: str) -> tuple[int, int]:
    """Bytes and containers (``[`` and ``{``, as the worker's decoder counts them) of ``text``."""
    return len(text), text.count("[") + text.count("{")


class PartitionStateBudget:
    """The JSON size of one stream's partition states: the saved ones, replaced as this run's arrive.

    Args:
        saved: The stream's committed partition states, by name.
        ref: The reader's reference, for messages.
        stream: The stream's state key, for messages.
    """

    def __init__(self, saved: Mapping[str, Mapping[str, Any]], *, ref: str, stream: str) -> None:
        self.saved = saved
        self.ref = ref
        self.stream = stream
        self._entries: dict[str, tuple[int, int]] = {}
        self._entry_bytes = 0
        self.containers = 1  # The mapping itself.
        for name, state in saved.items():
            self._count(name, state)

    @property
    def bytes(self) -> int:
        """The size of the states' JSON mapping, ``{"name":{...},...}``."""
        # Each entry is counted as '"name":{...},': the last one's comma stands for the closing brace.
        return 1 + self._entry_bytes if self._entries else 2

    def _count(self, name: str, state: Mapping[str, Any]) -> None:
        name_bytes, name_containers = _size(_encoded(name))
        state_bytes, state_containers = _size(_encoded(state))
        entry = (name_bytes + state_bytes + 2, name_containers + state_containers)
        before = self._entries.get(name, (0, 0))
        self._entries[name] = entry
        self._entry_bytes += entry[0] - before[0]
        self.containers += entry[1] - before[1]

    def _over(self, size: int, containers: int) -> str | None:
        if size > MAX_PARTITION_STATES_BYTES:
            return f"{format_bytes(size)} of JSON, more than {format_bytes(MAX_PARTITION_STATES_BYTES)}"
        if containers > MAX_PARTITION_STATES_CONTAINERS:
            return f"{containers} arrays and objects, more than {MAX_PARTITION_STATES_CONTAINERS}"
        return None

    def _details(self, size: int, containers: int, **extra: Any) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "stream": self.stream,
            "state_bytes": size,
            "state_containers": containers,
            "limit_bytes": MAX_PARTITION_STATES_BYTES,
            "limit_containers": MAX_PARTITION_STATES_CONTAINERS,
            **extra,
        }

    def check_saved(self) -> None:
        """Refuse saved partition states the reader's worker could not be sent (saved before this limit).

        Raises:
            ConfigurationError: Naming their size and ``dativo-run state reset``.
        """
        over = self._over(self.bytes, self.containers)
        if over is not None:
            raise ConfigurationError(
                f"the saved partition states of stream {self.stream!r} hold {over}, which a sandboxed "
                "reader cannot be sent in one request; reset the job's state (dativo-run state reset "
                "--config JOB.yaml --yes) so that its next run reads everything again",
                details=self._details(self.bytes, self.containers),
            )

    def add(self, partition: str, state: Mapping[str, Any]) -> None:
        """Count ``partition``'s newest state in place of its previous one.

        Raises:
            PluginError: If the stream's partition states now add up to more than the limit.
        """
        self._count(partition, state)
        over = self._over(self.bytes, self.containers)
        if over is not None:
            raise PluginError(
                f"plugin {self.ref!r}: the partition states of stream {self.stream!r} add up to {over}, "
                f"reached with partition {partition[:200]!r}; they must fit the one request that sends "
                f"them back to the reader's next run: {_ADVICE}",
                details=self._details(self.bytes, self.containers, partition=partition[:200]),
            )

    def check_to_save(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Check the partition states about to be saved: the saved ones, updated with ``states``.

        Raises:
            PluginError: If they hold more than the limit.
        """
        size, containers = _size(_encoded({**self.saved, **states}))
        over = self._over(size, containers)
        if over is not None:
            raise PluginError(
                f"plugin {self.ref!r}: the partition states of stream {self.stream!r} to save hold "
                f"{over}; they must fit the one request that sends them back to the reader's next run: "
                f"{_ADVICE}",
                details=self._details(size, containers),
            )
