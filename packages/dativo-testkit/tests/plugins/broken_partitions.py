"""Partitioned readers that each break one partition rule; ``reader.partitions`` must catch every one.

Each class names its ``FLAGGED_BY`` check and, in ``SAYS``, words its failure must contain;
every other check passes or is skipped. All are ``MockPartitionedReader`` with one thing
changed, run with ``CONFIG``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dativo_plugin_sdk import Partition, State
from dativo_testkit import MockPartitionedReader

GOOD = {"partitions": 3, "records_per_partition": 20, "batch_size": 6}
BAD = {"partitions": 0}

_SEEN_STATES: list[State] = []


class _Broken(MockPartitionedReader):
    FLAGGED_BY = "reader.partitions"
    CONFIG = GOOD
    BAD_CONFIG = BAD
    SAYS: tuple[str, ...] = ()


class DuplicateNamePartitionsReader(_Broken):
    """Names every partition after the stream, so their states would overwrite each other."""

    SAYS = ("'mock_partitioned' more than once", "names must be unique")

    def partitions(self) -> list[Partition]:
        return [Partition(self.stream_name, p.params) for p in super().partitions()]


class DictPartitionsReader(_Broken):
    """Returns plain dicts instead of Partition objects."""

    SAYS = ("returned a dict at position 0", "Partition objects")

    def partitions(self) -> list[Any]:
        return [p.to_dict() for p in super().partitions()]


class OverlappingPartitionsReader(_Broken):
    """Each partition's range runs one id into the next partition's."""

    SAYS = ("partitions 'ids:1-20' and 'ids:21-40' both yielded this record", "disjoint")

    def partitions(self) -> list[Partition]:
        listed = super().partitions()
        last = listed[-1].params["end"]
        return [Partition(p.name, {**p.params, "end": min(p.params["end"] + 1, last)}) for p in listed]


class MissingRecordsPartitionsReader(_Broken):
    """Each partition's range stops one id short, so three records belong to no partition."""

    SAYS = ("3 of the 60 records of the unpartitioned read are in no partition (3 listed",)

    def partitions(self) -> list[Partition]:
        return [Partition(p.name, {**p.params, "end": p.params["end"] - 1}) for p in super().partitions()]


class PartitionIgnoredReader(_Broken):
    """Reads its range in __init__, before the runtime sets self.partition: every partition is everything."""

    SAYS = ("partition 'ids:1-20' yielded the whole stream", "ignores self.partition")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._planned = self.partition

    def extract(self, state: State | None = None) -> Iterator[Any]:
        self.partition = self._planned
        yield from super().extract(state)


class OtherPartitionsStateReader(_Broken):
    """Resumes from the highest cursor any partition saved, as if the stream had one cursor."""

    SAYS = (
        "partition 'ids:1-20', extracted from an empty state while every other partition's state was final",
        "resumed from another partition's state",
    )

    def extract(self, state: State | None = None) -> Iterator[Any]:
        cursors = [s["id"] for s in self.partition_states.values() if "id" in s]
        if state is not None and "id" not in state and cursors:
            state.set("id", max(cursors))
        yield from super().extract(state)


class StateCrossWritingReader(_Broken):
    """Keeps every State it was given and advances all of them, another partition's included."""

    SAYS = ("extracting partition 'ids:21-40' changed the state of partition 'ids:1-20'",)

    def extract(self, state: State | None = None) -> Iterator[Any]:
        if state is not None:
            _SEEN_STATES.append(state)
        for batch in super().extract(state):
            yield batch
            for seen in _SEEN_STATES:
                seen.set("id", batch[-1]["id"])


class PartitionResumeIgnoredReader(_Broken):
    """Honours the state of the whole stream but restarts a partition from its first id every time."""

    SAYS = ("partition 'ids:1-20', extracted again from its own final state", "already yielded")

    def extract(self, state: State | None = None) -> Iterator[Any]:
        if self.partition.is_whole_stream:
            yield from super().extract(state)
            return
        for batch in super().extract(State(stream=state.stream if state else None)):
            yield batch
            if state is not None:
                state.set("id", batch[-1]["id"])
