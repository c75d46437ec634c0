"""The conformance check of readers that split their stream into partitions (SDK 1.1).

It drives the reader as ``dativo-run`` does: one planning instance gets
``partition_states`` and lists ``partitions()``; each partition is then extracted by a new
instance whose ``partition`` (and ``partition_states``) are set before ``extract`` is called
with that partition's own :class:`State`. It verifies, in this order, and stops at the first
problem, naming the partition:

1. ``partitions()`` returns a non-empty list of :class:`Partition` objects with unique names,
   the whole-stream name not among several;
2. every partition's extract works on its own instance;
3. the partitions are disjoint and together the unpartitioned read (the whole-stream
   instance's extract), compared as multisets of records; a partition that yields the whole
   stream is reported as a reader ignoring ``self.partition``;
4. each partition resumes from its own state: extracted again from its own final state
   (an incremental reader) it yields nothing it yielded; extracted from an empty state while
   every other partition's state is final, it yields all its records again; and no extract
   changes another partition's state or the ``partition_states`` it was given.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from dativo_plugin_sdk import WHOLE_STREAM, Partition, Record, State

from ._checks import CheckFailedError, CheckSkippedError, describe_exception
from ._extract_run import ExtractRun, state_text
from ._reader_session import ReaderSession

__all__ = ["check_partitions"]

Row = tuple[tuple[str, str], ...]
States = Mapping[str, Mapping[str, Any]]


def _row(record: Record) -> Row:
    """A record as a hashable value, compared whole (a multiset of rows needs no primary key)."""
    return tuple(sorted((str(k), repr(v)) for k, v in record.items()))


def _rows(run: ExtractRun) -> tuple[Counter[Row], dict[Row, Record]]:
    counts: Counter[Row] = Counter()
    examples: dict[Row, Record] = {}
    for records in run.records:
        for record in records:
            row = _row(record)
            counts[row] += 1
            examples.setdefault(row, record)
    return counts, examples


def _frozen(states: States) -> Mapping[str, Mapping[str, Any]]:
    """A read-only copy of ``states`` to hand a reader (its inner dicts are copies too)."""
    return MappingProxyType({name: copy.deepcopy(dict(values)) for name, values in states.items()})


def _list_partitions(session: ReaderSession) -> list[Partition]:
    planner = session.construct(session.config)
    try:
        planner.partition_states = _frozen({})
        try:
            listed = planner.partitions()
        except Exception as exc:
            session.observe(exc)
            raise CheckFailedError(f"partitions() raised {describe_exception(exc)}") from None
    finally:
        session.close_quietly(planner)
    if not isinstance(listed, (list, tuple)):
        raise CheckFailedError(
            f"partitions() returned a {type(listed).__name__}; return a list of Partition objects",
            repr(listed),
        )
    for position, item in enumerate(listed):
        if not isinstance(item, Partition):
            raise CheckFailedError(
                f"partitions() returned a {type(item).__name__} at position {position}; return "
                "dativo_plugin_sdk.Partition objects (a stable name and JSON-able params)",
                repr(item),
            )
    if not listed:
        raise CheckFailedError(
            "partitions() returned no partition; a stream that does not split returns "
            "[Partition(WHOLE_STREAM)] (the default: do not override partitions())"
        )
    names = [p.name for p in listed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CheckFailedError(
            f"partitions() returned the partition name(s) {', '.join(map(repr, repeated))} more than once; "
            "each partition's state is saved under its name, so names must be unique",
            names,
        )
    if WHOLE_STREAM in names and len(names) > 1:
        raise CheckFailedError(
            f"partitions() returned the whole-stream partition {WHOLE_STREAM!r} among {len(names)}; it "
            "stands for the whole stream, so it overlaps every other partition: name each slice by what "
            "it covers",
            names,
        )
    return list(listed)


def _read(session: ReaderSession, partition: Partition, state: State, states: States, why: str) -> ExtractRun:
    try:
        return session.read(state, partition=partition, partition_states=states)
    except CheckFailedError as failure:
        raise CheckFailedError(
            f"partition {partition.name!r}, {why}: {failure.reason}", failure.offending
        ) from None


def _check_untouched(
    partition: Partition,
    given: States,
    expected: States,
    earlier: Mapping[str, State],
    snapshots: Mapping[str, Mapping[str, Any]],
) -> None:
    """Fail if extracting ``partition`` changed another partition's state or ``partition_states``."""
    for name, state in earlier.items():
        if state.to_dict() != snapshots[name]:
            raise CheckFailedError(
                f"extracting partition {partition.name!r} changed the state of partition {name!r} from "
                f"{state_text(snapshots[name])} to {state_text(state.to_dict())}: each partition's state "
                "is its own; set only the State passed to extract",
                {"partition": partition.name, "changed": name},
            )
    for name, values in expected.items():
        if dict(given.get(name, {})) != dict(values):
            raise CheckFailedError(
                f"extracting partition {partition.name!r} changed partition_states[{name!r}]; "
                "partition_states is what was committed, read-only: set only the State passed to extract",
                {"partition": partition.name, "changed": name},
            )


def _check_cover(
    session: ReaderSession, partitions: Sequence[Partition], runs: Mapping[str, ExtractRun]
) -> int:
    whole, whole_examples = _rows(session.run)
    union: Counter[Row] = Counter()
    owners: dict[Row, list[str]] = {}
    examples = dict(whole_examples)
    for partition in partitions:
        counts, found = _rows(runs[partition.name])
        if len(partitions) > 1 and whole and counts == whole:
            raise CheckFailedError(
                f"partition {partition.name!r} yielded the whole stream (all {sum(whole.values())} records "
                "of the unpartitioned read): the reader ignores self.partition. The runtime sets "
                "self.partition on a new instance after constructing it and before extract: read it in "
                "extract and yield only that slice"
            )
        union += counts
        for row in counts:
            owners.setdefault(row, []).append(partition.name)
            examples.setdefault(row, found[row])
    extra = union - whole
    if extra:
        row = next(r for r in union if r in extra)
        names = owners[row]
        if len(names) > 1:
            raise CheckFailedError(
                f"partitions {names[0]!r} and {names[1]!r} both yielded this record: partitions must be "
                f"disjoint ({sum(extra.values())} records more than the unpartitioned read in all)",
                examples[row],
            )
        raise CheckFailedError(
            f"partition {names[0]!r} yielded a record the unpartitioned read (a whole-stream instance's "
            f"extract) does not have ({sum(extra.values())} such records in all): together the partitions "
            "must be exactly the stream",
            examples[row],
        )
    missing = whole - union
    if missing:
        row = next(r for r in whole if r in missing)
        raise CheckFailedError(
            f"{sum(missing.values())} of the {sum(whole.values())} records of the unpartitioned read are in "
            f"no partition ({len(partitions)} listed; the first such record is shown): together the "
            "partitions must be the whole stream",
            examples[row],
        )
    return sum(whole.values())


def _check_resume(
    session: ReaderSession, partitions: Sequence[Partition], runs: Mapping[str, ExtractRun]
) -> None:
    stream = session.stream.name
    finals = {p.name: runs[p.name].final_state for p in partitions}
    incremental = bool(getattr(session.plugin_class, "supports_incremental", False))
    for partition in partitions:
        name = partition.name
        first, examples = _rows(runs[name])
        if incremental:
            given = _frozen(finals)
            state = State(copy.deepcopy(finals[name]), stream=stream)
            why = f"extracted again from its own final state {state_text(finals[name])}"
            again, _ = _rows(_read(session, partition, state, given, why))
            _check_untouched(partition, given, finals, {}, {})
            repeated = [row for row in again if row in first]
            if repeated:
                raise CheckFailedError(
                    f"partition {name!r}, {why}, yielded {sum(again[r] for r in repeated)} of the "
                    f"{sum(first.values())} records it had already yielded: resume strictly after the "
                    "cursor saved in the partition's own State",
                    examples[repeated[0]],
                )
        others = {n: s for n, s in finals.items() if n != name}
        given = _frozen(others)
        why = "extracted from an empty state while every other partition's state was final"
        fresh, _ = _rows(_read(session, partition, State(stream=stream), given, why))
        _check_untouched(partition, given, others, {}, {})
        lost = first - fresh
        if lost:
            row = next(r for r in first if r in lost)
            raise CheckFailedError(
                f"partition {name!r}, {why}, yielded {sum(fresh.values())} of its "
                f"{sum(first.values())} records: it resumed from another partition's state. A "
                "partition resumes only from the State passed to its extract",
                examples[row],
            )


def check_partitions(session: ReaderSession) -> str:
    """Check a partitioned reader: listing, disjoint and complete partitions, each resuming on its own.

    Skipped when ``partitions()`` returns the one whole-stream partition (the default).
    """
    partitions = _list_partitions(session)
    if len(partitions) == 1 and partitions[0].name == WHOLE_STREAM:
        raise CheckSkippedError(
            f"{session.name}.partitions() returns the one whole-stream partition: the reader does not "
            "split its stream"
        )
    stream = session.stream.name
    runs: dict[str, ExtractRun] = {}
    states: dict[str, State] = {}
    snapshots: dict[str, dict[str, Any]] = {}
    empty: States = {}
    for partition in partitions:
        given = _frozen(empty)
        state = State(stream=stream)
        runs[partition.name] = _read(session, partition, state, given, "extracted from an empty state")
        _check_untouched(partition, given, empty, states, snapshots)
        states[partition.name] = state
        snapshots[partition.name] = state.to_dict()
    total = _check_cover(session, partitions, runs)
    _check_resume(session, partitions, runs)
    incremental = bool(getattr(session.plugin_class, "supports_incremental", False))
    resumed = (
        "each yields nothing again from its own final state and everything from an empty one"
        if incremental
        else "each yields everything from an empty state whatever the others' states"
    )
    return (
        f"{len(partitions)} partitions, each on its own instance, disjoint and together the "
        f"{total} records of the unpartitioned read; {resumed}"
    )
