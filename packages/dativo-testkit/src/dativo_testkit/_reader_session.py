"""The reader conformance checks' shared state and the checks themselves, one method each."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from dativo_plugin_sdk import (
    BaseReader,
    Column,
    ColumnType,
    DativoError,
    DiscoveredStream,
    DiscoveryResult,
    Partition,
    Record,
    State,
    is_arrow_batch,
    records_from_batch,
)

from ._checks import (
    CheckFailedError,
    CheckSkippedError,
    PluginSession,
    describe_exception,
    error_round_trip_problem,
)
from ._extract_run import ExtractRun, close_iterator, record_count, state_text
from ._record_validation import find_schema_violations
from ._resources import ResourceSnapshot
from ._work_meter import BatchWork, OpcodeCounter, process_counters, reading_overhead

__all__ = ["ReaderSession"]

_LATER_BATCHES = 5  # batches after the first that the streaming check observes
_FIRST_BATCH_OPERATIONS_CAP = 1_000_000


class ReaderSession(PluginSession):
    """State shared by the reader checks of one run.

    Args:
        plugin_class: The reader class.
        config: A valid config.
        bad_config: Invalid configs (each must be rejected); may be empty.
        stream: The stream to check, or ``None`` for the first one discovered.
        timeout: Each check's time limit in seconds.
    """

    base_class = BaseReader

    def __init__(
        self, plugin_class: type[Any], config: Any, bad_config: Any, stream: str | None, timeout: float
    ) -> None:
        super().__init__(plugin_class, config, bad_config, timeout)
        self.stream_name = stream
        self._stream: DiscoveredStream | None = None
        self._run: ExtractRun | None = None

    @property
    def stream(self) -> DiscoveredStream:
        """The stream under test (set by the discover check)."""
        assert self._stream is not None, "reader.discover runs first"
        return self._stream

    @property
    def run(self) -> ExtractRun:
        """The complete read (set by the extract check)."""
        assert self._run is not None, "reader.extract_yields_batches runs first"
        return self._run

    def _identity(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        key = self.stream.primary_key
        if key:
            return tuple(repr(record.get(k)) for k in key)
        return tuple(sorted(f"{k}={v!r}" for k, v in record.items()))

    def _start_extract(self, reader: Any, state: State) -> Iterator[Any]:
        try:
            result = reader.extract(state=state)
        except Exception as exc:
            self.observe(exc)
            raise CheckFailedError(
                f"extract raised {describe_exception(exc)} before yielding anything"
            ) from None
        if isinstance(result, (list, tuple)):
            raise CheckFailedError(
                f"extract returned a {type(result).__name__} of {len(result)} batches instead of yielding "
                "them: write extract as a generator ('yield batch') so batches stream as they are read"
            )
        if not isinstance(result, Iterator):
            raise CheckFailedError(
                f"extract returned a {type(result).__name__}, not an iterator of batches; make it a generator"
            )
        return result

    def _records_of(self, batch: Any, index: int) -> list[Record]:
        if isinstance(batch, list):
            for position, record in enumerate(batch):
                if not isinstance(record, Mapping):
                    raise CheckFailedError(
                        f"batch {index} holds a {type(record).__name__} at position {position}; a batch is a "
                        "list of dict records or an Arrow object",
                        record,
                    )
            return [dict(r) for r in batch]
        if is_arrow_batch(batch):
            try:
                return records_from_batch(batch)
            except ImportError as exc:
                raise CheckSkippedError(f"extract yields Arrow data; {exc}") from None
        raise CheckFailedError(
            f"batch {index} is a {type(batch).__name__}; yield lists of dict records or Arrow objects "
            "(pyarrow Table or RecordBatch)",
            batch,
        )

    def _next(self, iterator: Iterator[Any], done: int) -> Any:
        """Return the next batch, or ``StopIteration`` as a sentinel; failures fail the check."""
        try:
            return next(iterator)
        except StopIteration:
            return StopIteration
        except Exception as exc:
            self.observe(exc)
            untyped = "" if isinstance(exc, DativoError) else " (not a DativoError)"
            raise CheckFailedError(
                f"extract raised {describe_exception(exc)}{untyped} after {done} batches"
            ) from None

    def read(
        self,
        state: State,
        *,
        partition: Partition | None = None,
        partition_states: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ExtractRun:
        """Read the whole stream, or one partition of it, from ``state`` with a fresh reader.

        Args:
            state: The state ``extract`` is called with.
            partition: Set as the new reader's ``partition`` before ``extract``, as the
                runtime does; ``None`` leaves the default, the whole stream.
            partition_states: Set as the new reader's ``partition_states`` first.
        """
        reader = self.construct(self.config)
        iterator: Iterator[Any] | None = None
        try:
            if partition_states is not None:
                reader.partition_states = partition_states
            if partition is not None:
                reader.partition = partition
            initial = state.to_dict()
            iterator = self._start_extract(reader, state)
            batches: list[Any] = []
            records: list[list[Record]] = []
            states: list[dict[str, Any]] = []
            while (batch := self._next(iterator, len(batches))) is not StopIteration:
                states.append(state.to_dict())
                records.append(self._records_of(batch, len(batches)))
                batches.append(batch)
            return ExtractRun(batches, records, states, initial, state.to_dict())
        finally:
            close_iterator(iterator)
            self.close_quietly(reader)

    # The checks -----------------------------------------------------------------------

    def check_discover(self) -> str:
        reader = self.construct(self.config)
        try:
            result = reader.discover()
        except Exception as exc:
            self.observe(exc)
            raise CheckFailedError(f"discover raised {describe_exception(exc)}") from None
        finally:
            self.close_quietly(reader)
        if not isinstance(result, DiscoveryResult):
            raise CheckFailedError(
                f"discover returned a {type(result).__name__}, not a DiscoveryResult", result
            )
        streams = list(result.objects)
        if not streams:
            raise CheckFailedError(
                "discover returned no stream; return a DiscoveryResult with at least one DiscoveredStream"
            )
        for stream in streams:
            if not isinstance(stream, DiscoveredStream):
                raise CheckFailedError(
                    f"discover listed a {type(stream).__name__}, not a DiscoveredStream", stream
                )
            _check_stream(stream)
        names = [s.name for s in streams]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise CheckFailedError(
                f"discover returned stream names more than once: {', '.join(repeated)}; names must be unique",
                names,
            )
        try:
            json.dumps(result.to_dict(), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise CheckFailedError(
                f"the discovery result is not JSON-serialisable ({exc}); keep metadata to plain JSON values"
            ) from None
        if self.stream_name is not None and self.stream_name not in names:
            raise CheckFailedError(
                f"no stream named {self.stream_name!r} was discovered; discovered: {', '.join(names)}"
            )
        self._stream = result.stream(self.stream_name) if self.stream_name else streams[0]
        chosen = self.stream
        return (
            f"{len(streams)} stream(s) ({', '.join(names)}); checking {chosen.name!r}: "
            f"{len(chosen.schema)} columns, primary key {list(chosen.primary_key)}, "
            f"cursor {chosen.cursor_field!r}"
        )

    def check_extract_yields_batches(self) -> str:
        run = self.read(State(stream=self.stream.name))
        if not run.batches:
            raise CheckFailedError(
                "extract yielded no batch; give the harness a config whose source has records"
            )
        if not run.record_count:
            raise CheckFailedError(
                f"extract yielded {len(run.batches)} empty batches; give the harness a source that has "
                "records"
            )
        self._run = run
        shapes = sorted({"Arrow" if is_arrow_batch(b) else "dict lists" for b in run.batches})
        return f"yielded {len(run.batches)} batches, {run.record_count} records ({' and '.join(shapes)})"

    def check_records_match_schema(self) -> str:
        stream = self.stream
        for index, batch in enumerate(self.run.batches):
            try:
                violations = find_schema_violations(batch, stream.schema, limit=5)
            except ImportError as exc:
                raise CheckSkippedError(str(exc)) from None
            if violations:
                first = violations[0]
                records = self.run.records[index]
                offending: Any = (
                    records[first.record_index]
                    if first.record_index < len(records)
                    else {first.column: first.value}
                )
                more = f" ({len(violations) - 1} more problems in this batch)" if len(violations) > 1 else ""
                raise CheckFailedError(
                    f"batch {index}, {first}{more}: records must match the discovered schema of stream "
                    f"{stream.name!r} (types and required columns)",
                    offending,
                )
        return f"all {self.run.record_count} records match the schema of {stream.name!r}"

    def check_primary_keys_unique(self) -> str:
        key = self.stream.primary_key
        if not key:
            raise CheckSkippedError(f"stream {self.stream.name!r} declares no primary key")
        seen: dict[tuple[str, ...], tuple[int, int]] = {}
        for b, records in enumerate(self.run.records):
            for r, record in enumerate(records):
                values = [record.get(k) for k in key]
                if any(v is None for v in values):
                    raise CheckFailedError(
                        f"batch {b}, record {r}: primary key {list(key)} is null; primary keys must be "
                        "non-null",
                        record,
                    )
                identity = self._identity(record)
                if identity in seen:
                    b0, r0 = seen[identity]
                    shown = dict(zip(key, values, strict=True))
                    raise CheckFailedError(
                        f"primary key {shown} appears twice (batch {b0} record {r0}, batch {b} record {r}); "
                        "primary keys must be unique within a read",
                        record,
                    )
                seen[identity] = (b, r)
        return f"{self.run.record_count} records: primary key {list(key)} non-null and unique"

    def check_extract_streams(self) -> str:
        reader = self.construct(self.config)
        iterator: Iterator[Any] | None = None
        try:
            iterator = self._start_extract(reader, State(stream=self.stream.name))
            first_counter = OpcodeCounter(_FIRST_BATCH_OPERATIONS_CAP)
            try:
                first = first_counter.measure_next(iterator)
            except StopIteration:
                raise CheckFailedError(
                    "extract yielded no batch this time, though the first read did"
                ) from None
            except Exception as exc:
                self.observe(exc)
                raise CheckFailedError(
                    f"extract raised {describe_exception(exc)} before its first batch"
                ) from None
            cap = 100 * max(record_count(first), 100)
            overhead = reading_overhead()
            before = process_counters()
            operations = records = batches = 0
            for _ in range(_LATER_BATCHES):
                counter = OpcodeCounter(cap)
                try:
                    batch = counter.measure_next(iterator)
                except StopIteration:
                    break
                except Exception as exc:
                    self.observe(exc)
                    raise CheckFailedError(
                        f"extract raised {describe_exception(exc)} after {batches + 1} batches"
                    ) from None
                operations += counter.count
                records += record_count(batch)
                batches += 1
            work = process_counters().since(before)
        finally:
            close_iterator(iterator)
            self.close_quietly(reader)
        if not batches:
            raise CheckSkippedError(
                "extract yielded a single batch, so streaming cannot be observed; give the harness "
                "a source with more records than one batch holds"
            )
        reads = None
        if work.read_syscalls is not None and overhead.read_syscalls is not None:
            reads = work.read_syscalls - overhead.read_syscalls
        measured = BatchWork(first_counter.count, batches, records, operations, work.arrow_bytes, reads)
        evidence = measured.streaming_evidence()
        if evidence:
            return (
                f"after the first batch, {batches} more batches ({records} records) took "
                f"{', '.join(evidence)}: batches are produced as they are pulled"
            )
        raise CheckFailedError(
            f"the first batch took {first_counter.count} Python operations, then {batches} more batches "
            f"({records} records) came with only {operations}, no Arrow allocation and no read: they were "
            "already in memory, so the source was read whole before the first batch. Yield each batch as "
            "soon as it is read"
        )

    def _require_incremental(self) -> None:
        if getattr(self.plugin_class, "supports_incremental", False):
            return
        run = self.run
        written = next((s for s in (*run.states_at_batch, run.final_state) if s != run.initial_state), None)
        if written is not None:
            raise CheckFailedError(
                f"{self.name} calls state.set(...) during extract (the state became {state_text(written)}) "
                "but does not declare supports_incremental = True, so dativo-run refuses "
                "source.incremental for it and its state is never used. Add 'supports_incremental = True' "
                "to the class (these incremental checks then verify the resume), or stop calling state.set",
                written,
            )
        raise CheckSkippedError(f"{self.name} does not declare supports_incremental = True")

    def check_incremental_final_state(self) -> str:
        self._require_incremental()
        run = self.run
        first = {self._identity(r) for records in run.records for r in records}
        again = self.read(State(run.final_state, stream=self.stream.name))
        repeated = [r for records in again.records for r in records if self._identity(r) in first]
        if repeated:
            hint = (
                " The state stayed empty: call state.set(...) after yielding each batch."
                if not run.final_state
                else " Resume strictly after the saved cursor."
            )
            raise CheckFailedError(
                f"reading again from the final state {state_text(run.final_state)} yielded "
                f"{len(repeated)} of the {run.record_count} records already read.{hint}",
                repeated[0],
            )
        return (
            f"reading again from the final state {state_text(run.final_state)} yielded no record "
            f"already read ({again.record_count} new)"
        )

    def check_incremental_resume(self) -> str:
        self._require_incremental()
        run = self.run
        count = len(run.batches)
        middle = [
            j for j in range(1, count) if run.states_at_batch[j] not in (run.initial_state, run.final_state)
        ]
        if not middle:
            why = (
                "extract yielded a single batch"
                if count < 2
                else "the state never held an intermediate value (it changed only at the end of the read)"
            )
            raise CheckSkippedError(f"no intermediate state to resume from: {why}")
        j = min(middle, key=lambda i: abs(i - count / 2))
        saved = run.states_at_batch[j]
        expected_records = [r for records in run.records[j:] for r in records]
        expected = Counter(self._identity(r) for r in expected_records)
        resumed = self.read(State(saved, stream=self.stream.name))
        got_records = [r for records in resumed.records for r in records]
        got = Counter(self._identity(r) for r in got_records)
        where = f"the state saved when batch {j} of {count} arrived ({state_text(saved)})"
        missing = expected - got
        if missing:
            lost = next(r for r in expected_records if self._identity(r) in missing)
            raise CheckFailedError(
                f"resuming from {where} lost {sum(missing.values())} of the {len(expected_records)} "
                "remaining records: the state already covered records the runtime had not received. "
                "Call state.set(...) after the yield of the batch it covers, never before",
                lost,
            )
        extra = got - expected
        if extra:
            repeated = next(r for r in got_records if self._identity(r) in extra)
            raise CheckFailedError(
                f"resuming from {where} yielded {sum(extra.values())} records outside the remaining "
                f"{len(expected_records)}: records the state already covered came again",
                repeated,
            )
        return f"resuming from {where} yielded exactly the {len(expected_records)} remaining records"

    def _first_batches(self, reader: Any) -> None:
        name = self._stream.name if self._stream is not None else None
        iterator = iter(reader.extract(state=State(stream=name)))
        try:
            for _ in range(2):
                next(iterator, None)
        finally:
            close_iterator(iterator)

    def check_errors_are_dativo_errors(self) -> str:
        exercised = 0
        for index, bad_config in enumerate(self.bad_configs, start=1):
            which = self.bad_config_label(index)
            try:
                reader = self.construct(bad_config)
            except Exception:
                reader = None  # judged by reader.rejects_bad_config
            if reader is None:
                continue
            try:
                for what, call in (
                    ("discover", reader.discover),
                    ("extract", lambda reader=reader: self._first_batches(reader)),
                ):
                    try:
                        call()
                    except DativoError as exc:
                        self.observe(exc)
                    except Exception as exc:
                        raise CheckFailedError(
                            f"with {which}, {what} raised the untyped {describe_exception(exc)}; "
                            "raise a DativoError subclass (ConfigurationError, AuthenticationError, "
                            "ConnectionError...) so the runtime knows whether to retry"
                        ) from None
            finally:
                self.close_quietly(reader)
            exercised += 1
        provoked = ""
        if exercised:
            which = "the bad config" if len(self.bad_configs) == 1 else f"{exercised} constructed bad configs"
            provoked = f"; with {which}, discover and extract raised nothing untyped"
        errors = list(self.observed_errors)
        for error in errors:
            problem = error_round_trip_problem(error)
            if problem is not None:
                raise CheckFailedError(
                    f"{problem}: errors must cross the sandbox boundary intact", repr(error)
                )
        if not errors and not self.bad_configs:
            raise CheckSkippedError(
                "no error was raised during the run and no bad config was given to provoke one"
            )
        kinds = ", ".join(sorted({type(e).__name__ for e in errors})) or "none"
        return f"{len(errors)} error(s) raised ({kinds}) survive to_dict() as JSON and pickling{provoked}"

    def check_close_releases_resources(self) -> str:
        before = ResourceSnapshot.take()
        reader = self.construct(self.config)

        def read_all() -> None:
            for _ in reader.extract(state=State(stream=self.stream.name)):
                pass

        leaks = self.exercise_then_close(reader, (reader.check_connection, reader.discover, read_all), before)
        if leaks:
            parts = []
            if leaks.threads:
                parts.append(f"threads still running: {', '.join(leaks.threads)}")
            if leaks.fds:
                parts.append(f"descriptors still open: {'; '.join(leaks.fds)}")
            raise CheckFailedError(
                f"after close(), {' and '.join(parts)}. Stop the threads you started and close files and "
                "sockets in close()",
                {"threads": list(leaks.threads), "fds": list(leaks.fds)},
            )
        note = "" if before.fds is not None else " (this platform cannot list descriptors: threads only)"
        return f"a full read then close() left no thread or file descriptor behind{note}"


def _check_stream(stream: DiscoveredStream) -> None:
    if not stream.schema:
        raise CheckFailedError(
            f"stream {stream.name!r} has an empty schema; declare its columns", stream.to_dict()
        )
    names = []
    for column in stream.schema:
        if not isinstance(column, Column) or not isinstance(column.type, ColumnType):
            raise CheckFailedError(
                f"stream {stream.name!r} has a column that is not a Column with a ColumnType", repr(column)
            )
        names.append(column.name)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CheckFailedError(
            f"stream {stream.name!r} repeats column names: {', '.join(repeated)}", stream.to_dict()
        )
    missing = [k for k in stream.primary_key if k not in names]
    if missing:
        raise CheckFailedError(
            f"stream {stream.name!r}: primary key column(s) {missing} are not in its schema", stream.to_dict()
        )
    if stream.cursor_field is not None and stream.cursor_field not in names:
        raise CheckFailedError(
            f"stream {stream.name!r}: cursor field {stream.cursor_field!r} is not in its schema",
            stream.to_dict(),
        )
