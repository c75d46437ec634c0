"""What the host accepts as a reader's partitions: checked, bounded, never trusted."""

from __future__ import annotations

from typing import Any

from dativo_plugin_sdk import Partition, PluginError

__all__ = ["MAX_PARTITIONS", "checked_partitions"]

MAX_PARTITIONS = 50_000
"""The most partitions one reader may list in one run."""

_MAX_PARAMS_CHARS = 64 * 1024


def _refused(ref: str, why: str) -> PluginError:
    return PluginError(
        f"plugin {ref!r}: partitions() {why}",
        details={"ref": ref, "method": "partitions"},
    )


def checked_partitions(value: Any, ref: str) -> list[Partition]:
    """Rebuild the partitions a reader listed, refusing anything malformed.

    Args:
        value: What the reader (or its worker) returned: ``Partition`` objects or their dicts.
        ref: The plugin, for messages.

    Returns:
        The partitions, in the reader's order.

    Raises:
        PluginError: If the value is not a list of partitions, lists more than
            :data:`MAX_PARTITIONS`, repeats a name, or a partition's params are too large.
    """
    if not isinstance(value, list):
        raise _refused(ref, f"returned {type(value).__name__}, not a list of Partition objects")
    if len(value) > MAX_PARTITIONS:
        raise _refused(ref, f"listed {len(value)} partitions; at most {MAX_PARTITIONS} are allowed")
    partitions: list[Partition] = []
    names: set[str] = set()
    for index, item in enumerate(value):
        try:
            partition = item if isinstance(item, Partition) else Partition.from_dict(item)
        except (AttributeError, TypeError, ValueError) as exc:
            raise _refused(ref, f"item {index} is not a valid partition: {exc}") from None
        if len(str(partition.params)) > _MAX_PARAMS_CHARS:
            raise _refused(
                ref, f"partition {partition.name!r} has params over {_MAX_PARAMS_CHARS} characters"
            )
        if partition.name in names:
            raise _refused(ref, f"listed partition {partition.name!r} twice; names must be unique")
        names.add(partition.name)
        partitions.append(partition)
    return partitions
