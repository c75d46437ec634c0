"""The conformance checks for writers (``BaseWriter`` subclasses)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import BaseWriter, Column, ColumnType, Record, ValidationError

from ._checks import (
    CheckFailedError,
    CheckSkippedError,
    ConformanceCheck,
    PluginSession,
    RegisteredCheck,
    describe_exception,
)
from ._hypothesis_storage import private_hypothesis_storage
from ._read_back import RecordComparison, compare_records, new_records, read_output_folder
from ._records import WRONG_VALUES, build_records
from ._resources import ResourceSnapshot
from ._strategies import batch_strategy

__all__ = ["WRITER_CHECKS", "ReadBack", "WriterSession"]

ReadBack = Callable[[Mapping[str, Any]], Iterable[Mapping[str, Any]]]
"""A hook returning every record currently committed to the target the config points at."""

_BATCH_SIZE = 10
_SEED = 7


class _RoundTripMismatchError(Exception):
    def __init__(self, records: list[Record], comparison: RecordComparison) -> None:
        super().__init__("round trip mismatch")
        self.records = records
        self.comparison = comparison


class _RoundTripRaisedError(Exception):
    def __init__(self, records: list[Record], error: Exception) -> None:
        super().__init__(describe_exception(error))
        self.records = records
        self.error = error


def _arrow_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def _is_local_path(path: str) -> bool:
    return "://" not in path


def read_back_hook(read_back: ReadBack | str | os.PathLike[str] | None) -> ReadBack | None:
    """Turn a ``read_back`` argument into a hook (a folder becomes :func:`read_output_folder`)."""
    if read_back is None or callable(read_back):
        return read_back
    folder = Path(read_back)
    return lambda config: read_output_folder(folder)


class WriterSession(PluginSession):
    """State shared by the writer checks of one run.

    Args:
        plugin_class: The writer class.
        config: A valid config.
        bad_config: Invalid configs (each must be rejected); may be empty.
        schema: The columns written.
        read_back: Hook reading back what the target holds, or ``None``.
        timeout: Each check's time limit in seconds.
        hypothesis_examples: Generated batches in the property-based round trip.
    """

    base_class = BaseWriter

    def __init__(
        self,
        plugin_class: type[Any],
        config: Any,
        bad_config: Any,
        *,
        schema: Sequence[Column],
        read_back: ReadBack | None,
        timeout: float,
        hypothesis_examples: int,
    ) -> None:
        super().__init__(plugin_class, config, bad_config, timeout)
        self.schema = tuple(schema)
        self.read_back = read_back
        self.hypothesis_examples = hypothesis_examples

    def construct(self, config: Any) -> Any:
        """Build a writer with ``config`` and the session's schema."""
        try:
            return self.plugin_class(config=config, schema=self.schema)
        except Exception as exc:
            self.observe(exc)
            raise

    def _read(self) -> list[Record]:
        if self.read_back is None:
            raise CheckSkippedError(
                "no way to read the target back: pass read_back= (a hook or the output folder), "
                "or --output-folder on the command line"
            )
        try:
            return [dict(r) for r in self.read_back(self.config)]
        except Exception as exc:
            raise CheckFailedError(f"the read_back hook raised {describe_exception(exc)}") from None

    def _write(self, writer: Any, batch: Any, count: int, file_counter: int) -> list[dict[str, Any]]:
        try:
            entries = writer.write_batch(records=batch, file_counter=file_counter)
        except Exception as exc:
            self.observe(exc)
            raise CheckFailedError(
                f"write_batch raised {describe_exception(exc)} for a batch of {count} valid records"
            ) from None
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
            raise CheckFailedError(
                f"write_batch returned a {type(entries).__name__}; return a list of file metadata dicts",
                entries,
            )
        for entry in entries:
            problems = [
                key
                for key, kind in (("path", str), ("record_count", int), ("size_bytes", int))
                if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool)
            ]
            if problems:
                raise CheckFailedError(
                    f"write_batch returned metadata without a valid {', '.join(problems)}; each entry needs "
                    "path (str), record_count (int) and size_bytes (int)",
                    entry,
                )
        written = sum(int(e["record_count"]) for e in entries)
        if written != count:
            raise CheckFailedError(
                f"write_batch metadata counts {written} records for a batch of {count}", entries
            )
        return [dict(e) for e in entries]

    def _commit(self, writer: Any, metadata: list[dict[str, Any]]) -> None:
        try:
            summary = writer.commit_files(file_metadata=metadata)
        except Exception as exc:
            self.observe(exc)
            raise CheckFailedError(f"commit_files raised {describe_exception(exc)}") from None
        try:
            json.dumps(summary, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise CheckFailedError(
                f"commit_files returned a summary that is not JSON-serialisable ({exc})", repr(summary)
            ) from None
        if not isinstance(summary, Mapping):
            raise CheckFailedError(
                f"commit_files returned a {type(summary).__name__}; return a dict summary", summary
            )

    def _batches(self) -> tuple[list[list[Record]], list[Any]]:
        records = [
            build_records(self.schema, _BATCH_SIZE, seed=_SEED, start=i * _BATCH_SIZE) for i in range(2)
        ]
        shaped: list[Any] = list(records)
        if _arrow_available():
            from dativo_plugin_sdk._arrow import records_to_arrow

            shaped[1] = records_to_arrow(records[1], self.schema)
        return records, shaped

    # The checks -----------------------------------------------------------------------

    def check_round_trip(self) -> str:
        before = self._read()
        records, shaped = self._batches()
        writer = self.construct(self.config)
        try:
            metadata: list[dict[str, Any]] = []
            for counter, (batch_records, batch) in enumerate(zip(records, shaped, strict=True)):
                metadata += self._write(writer, batch, len(batch_records), counter)
            early = new_records(before, self._read())
            if early:
                raise CheckFailedError(
                    f"{len(early)} records were visible before commit_files: stage what write_batch "
                    "writes and publish it only in commit_files",
                    early[0],
                )
            self._commit(writer, metadata)
        finally:
            self.close_quietly(writer)
        written = [r for batch in records for r in batch]
        comparison = compare_records(self.schema, written, new_records(before, self._read()))
        if comparison.missing:
            raise CheckFailedError(
                f"{len(comparison.missing)} of the {len(written)} records written and committed were "
                "not read back as written",
                {"written": comparison.missing[0], "unmatched_read_back": list(comparison.unexpected[:1])},
            )
        if comparison.unexpected:
            raise CheckFailedError(
                f"{len(comparison.unexpected)} records read back were never written", comparison.unexpected[0]
            )
        shapes = "a dict list and an Arrow table" if not isinstance(shaped[1], list) else "two dict lists"
        return f"wrote {len(written)} records as {shapes}, committed {len(metadata)} file(s), read all back"

    def check_abort_discards(self) -> str:
        before = self._read() if self.read_back is not None else None
        records, _ = self._batches()
        writer = self.construct(self.config)
        try:
            metadata: list[dict[str, Any]] = []
            for counter, batch in enumerate(records):
                metadata += self._write(writer, batch, len(batch), counter)
            for attempt in ("abort()", "a second abort()"):
                try:
                    writer.abort()
                except Exception as exc:
                    self.observe(exc)
                    raise CheckFailedError(
                        f"{attempt} raised {describe_exception(exc)}; abort must be safe to call twice"
                    ) from None
        finally:
            self.close_quietly(writer)
        left = [m["path"] for m in metadata if _is_local_path(m["path"]) and Path(m["path"]).exists()]
        if left:
            raise CheckFailedError(
                f"after abort(), {len(left)} of the {len(metadata)} staged files still exist; abort "
                "must delete what write_batch staged",
                left,
            )
        if before is None:
            return "abort() deleted every staged file (no read_back: visibility of data not checked)"
        visible = new_records(before, self._read())
        if visible:
            raise CheckFailedError(
                f"after abort(), {len(visible)} records written in the aborted run are visible", visible[0]
            )
        return "abort() (twice) left nothing committed and no staged file behind"

    def _invalid_probes(self) -> list[tuple[str, Record]]:
        base = build_records(self.schema, 1, seed=_SEED + 1)[0]
        probes: list[tuple[str, Record]] = []
        typed = [
            c for c in self.schema if c.type in (ColumnType.INTEGER, ColumnType.FLOAT, ColumnType.BOOLEAN)
        ]
        strings = [c for c in self.schema if c.type is ColumnType.STRING]
        candidates = typed or strings
        if candidates:
            target = candidates[0]
            wrong = WRONG_VALUES[target.type][0]
            probes.append(
                (f"{wrong!r} in the {target.type.value} column {target.name!r}", {**base, target.name: wrong})
            )
        required = [c for c in self.schema if not c.nullable]
        if required:
            name = required[0].name
            probes.append(
                (f"the required column {name!r} missing", {k: v for k, v in base.items() if k != name})
            )
        return probes

    def check_rejects_invalid_records(self) -> str:
        probes = self._invalid_probes()
        if not probes:
            raise CheckSkippedError(
                "the schema has no integer, float, boolean, string or required column to probe"
            )
        valid = build_records(self.schema, 3, seed=_SEED + 2)
        for description, record in probes:
            writer = self.construct(self.config)
            try:
                try:
                    writer.write_batch(records=[*valid, record], file_counter=0)
                except ValidationError as exc:
                    self.observe(exc)
                    continue
                except Exception as exc:
                    self.observe(exc)
                    raise CheckFailedError(
                        f"a record with {description} raised {describe_exception(exc)} instead of "
                        "ValidationError",
                        record,
                    ) from None
                raise CheckFailedError(
                    f"write_batch accepted a record with {description}; validate records against the schema "
                    "and raise ValidationError",
                    record,
                )
            finally:
                try:
                    writer.abort()
                except Exception:
                    pass
                self.close_quietly(writer)
        return f"ValidationError for {' and for '.join(d for d, _ in probes)}"

    def _round_trip_once(self, records: list[Record]) -> None:
        before = self._read()
        writer = self.construct(self.config)
        try:
            entries = writer.write_batch(records=records, file_counter=0)
            writer.commit_files(file_metadata=list(entries))
        except Exception as exc:
            self.observe(exc)
            raise _RoundTripRaisedError(records, exc) from exc
        finally:
            self.close_quietly(writer)
        comparison = compare_records(self.schema, records, new_records(before, self._read()))
        if not comparison:
            raise _RoundTripMismatchError(records, comparison)

    def check_hypothesis_round_trip(self) -> str:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis.reporting import with_reporter

        self._read()  # skips without a read_back hook

        @settings(
            max_examples=self.hypothesis_examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
            report_multiple_bugs=False,
        )
        @given(batch_strategy(self.schema, min_size=1, max_size=20))
        def round_trip(records: list[Record]) -> None:
            self._round_trip_once(records)

        try:
            with with_reporter(lambda message: None), private_hypothesis_storage():
                round_trip()
        except _RoundTripMismatchError as mismatch:
            missing = mismatch.comparison.missing
            raise CheckFailedError(
                f"a generated batch of {len(mismatch.records)} records did not survive write, commit "
                f"and read back: {len(missing)} record(s) came back changed or not at all (smallest "
                "failing example shown)",
                {
                    "written": missing[0] if missing else None,
                    "read_back": list(mismatch.comparison.unexpected[:1]),
                },
            ) from None
        except _RoundTripRaisedError as raised:
            raise CheckFailedError(
                f"writing a generated batch of {len(raised.records)} valid records raised "
                f"{describe_exception(raised.error)} (smallest failing example shown)",
                raised.records,
            ) from None
        return (
            f"{self.hypothesis_examples} generated batches (unicode, nulls, extreme numbers, time zones) "
            "survived write, commit and read back"
        )

    def check_close_releases_resources(self) -> str:
        before = ResourceSnapshot.take()
        writer = self.construct(self.config)
        records, _ = self._batches()
        calls = (
            writer.check_connection,
            lambda: writer.write_batch(records=records[0], file_counter=0),
            writer.abort,
        )
        leaks = self.exercise_then_close(writer, calls, before)
        if leaks:
            raise CheckFailedError(
                "after close(), threads or descriptors were left: stop the threads you started and close "
                "files "
                "and connections in close()",
                {"threads": list(leaks.threads), "fds": list(leaks.fds)},
            )
        return "write, abort and close() left no thread or file descriptor behind"


def _writer_check(name: str, description: str, run: Any, *requires: str) -> RegisteredCheck[WriterSession]:
    return RegisteredCheck(ConformanceCheck(name, "writer", description, tuple(requires)), run)


WRITER_CHECKS: tuple[RegisteredCheck[WriterSession], ...] = (
    _writer_check(
        "writer.is_concrete_base_writer",
        "The class subclasses BaseWriter and implements every abstract method.",
        WriterSession.check_is_concrete,
    ),
    _writer_check(
        "writer.declares_valid_version",
        "The class declares __version__ as a valid (PEP 440 / semver) version string.",
        WriterSession.check_version,
    ),
    _writer_check(
        "writer.sdk_compatible",
        "The class's requires_sdk is valid and includes the installed SDK.",
        WriterSession.check_sdk_compatible,
        "writer.declares_valid_version",
    ),
    _writer_check(
        "writer.constructs",
        "The writer constructs with the valid config and the schema.",
        WriterSession.check_constructs,
        "writer.is_concrete_base_writer",
    ),
    _writer_check(
        "writer.rejects_bad_config",
        "A bad config raises ConfigurationError or makes check_connection report success=False with an "
        "error code.",
        WriterSession.check_rejects_bad_config,
        "writer.is_concrete_base_writer",
    ),
    _writer_check(
        "writer.check_connection",
        "check_connection returns a successful ConnectionTestResult and raises nothing untyped.",
        WriterSession.check_connection,
        "writer.constructs",
    ),
    _writer_check(
        "writer.round_trip",
        "write_batch (dicts and Arrow) then commit_files: the records read back equal those written.",
        WriterSession.check_round_trip,
        "writer.constructs",
    ),
    _writer_check(
        "writer.abort_discards",
        "abort() (twice) leaves nothing committed and deletes what was staged.",
        WriterSession.check_abort_discards,
        "writer.constructs",
    ),
    _writer_check(
        "writer.rejects_invalid_records",
        "Records violating the schema (wrong type, missing required column) raise ValidationError.",
        WriterSession.check_rejects_invalid_records,
        "writer.constructs",
    ),
    _writer_check(
        "writer.hypothesis_round_trip",
        "Hypothesis-generated batches (edge values included) survive write, commit and read back.",
        WriterSession.check_hypothesis_round_trip,
        "writer.round_trip",
    ),
    _writer_check(
        "writer.close_releases_resources",
        "close() leaves no thread or file descriptor behind.",
        WriterSession.check_close_releases_resources,
        "writer.constructs",
    ),
)
