"""``MockReader``: a deterministic, seeded source with faults switched on by configuration."""

from __future__ import annotations

import math
import os
import random
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import (
    AuthenticationError,
    BaseReader,
    Batch,
    Column,
    ColumnType,
    ConfigurationError,
    ConnectionError,  # noqa: A004  (the SDK's, which also subclasses the builtin)
    ConnectionTestResult,
    DativoError,
    DiscoveredStream,
    DiscoveryResult,
    RateLimitError,
    Record,
    State,
    TransientError,
)
from dativo_plugin_sdk._arrow import records_to_arrow

from ._records import ALL_TYPES_SCHEMA, WRONG_VALUES, build_record, sequential_index, sequential_value
from ._version import __version__

__all__ = ["MockReader"]

_SEQUENTIAL_TYPES = (
    ColumnType.INTEGER,
    ColumnType.FLOAT,
    ColumnType.DECIMAL,
    ColumnType.STRING,
    ColumnType.TIMESTAMP,
    ColumnType.DATE,
)
_CONNECTION_ERRORS = ("authentication", "connection")


@dataclass(frozen=True)
class _Settings:
    """The parsed config; the defaults are in :func:`_parse` and the class docstring."""

    stream: str
    records: int
    batch_size: int
    seed: int
    schema: tuple[Column, ...]
    primary_key: tuple[str, ...]
    cursor_field: str | None
    arrow: bool
    check_connection_error: str | None
    transient_error_after: int | None
    rate_limit_after: int | None
    retry_after: float | None
    crash_after: int | None
    slow_batch_seconds: float
    malformed_rate: float
    faults_once_file: str | None


_KNOWN_KEYS = tuple(f.name for f in fields(_Settings))


def _optional_integer(config: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"MockReader config {key!r} must be an integer >= {minimum}, got {value!r}",
            details={"key": key, "value": repr(value)},
        )
    return value


def _integer(config: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = _optional_integer(config, key, minimum)
    return default if value is None else value


def _number(
    config: Mapping[str, Any], key: str, default: float | None, maximum: float = math.inf
) -> float | None:
    value = config.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= maximum:
        raise ConfigurationError(
            f"MockReader config {key!r} must be a number from 0 to {maximum}, got {value!r}",
            details={"key": key, "value": repr(value)},
        )
    return float(value)


def _schema(config: Mapping[str, Any]) -> tuple[Column, ...]:
    raw = config.get("schema")
    if raw is None:
        return ALL_TYPES_SCHEMA
    try:
        columns = tuple(c if isinstance(c, Column) else Column.from_dict(c) for c in raw)
        DiscoveredStream("schema", columns)  # rejects duplicate names
    except (TypeError, KeyError, ValueError) as exc:
        raise ConfigurationError(
            f"MockReader config 'schema' must be a list of columns like "
            f"{{'name': 'id', 'type': 'integer', 'nullable': false}}: {exc}"
        ) from None
    if not columns:
        raise ConfigurationError("MockReader config 'schema' must have at least one column")
    return columns


def _primary_key(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, (list, tuple)) and all(isinstance(name, str) for name in raw):
        return tuple(raw)
    raise ConfigurationError(
        f"MockReader config 'primary_key' must be a column name or a list of them, got {raw!r}"
    )


def _parse(config: Mapping[str, Any]) -> _Settings:
    unknown = sorted(set(config) - set(_KNOWN_KEYS))
    if unknown:
        raise ConfigurationError(
            f"MockReader does not know the config key(s) {', '.join(map(repr, unknown))}; "
            f"known keys: {', '.join(_KNOWN_KEYS)}",
            details={"unknown": unknown},
        )
    schema = _schema(config)
    names = {c.name: c for c in schema}
    primary_key = _primary_key(config.get("primary_key", "id" if "id" in names else None))
    default_cursor = "updated_at" if "updated_at" in names else None
    cursor_field = config.get("cursor_field", default_cursor)
    for name in (*primary_key, *([cursor_field] if cursor_field else [])):
        if name not in names:
            raise ConfigurationError(
                f"MockReader: column {name!r} (primary key or cursor) is not in the schema"
            )
        if names[name].type not in _SEQUENTIAL_TYPES:
            raise ConfigurationError(
                f"MockReader: column {name!r} is a primary key or cursor, so it must be one of "
                f"{', '.join(t.value for t in _SEQUENTIAL_TYPES)}; it is {names[name].type.value}"
            )
    error = config.get("check_connection_error")
    if error is not None and error not in _CONNECTION_ERRORS:
        raise ConfigurationError(
            "MockReader config 'check_connection_error' must be 'authentication' or 'connection', got "
            f"{error!r}"
        )
    stream = config.get("stream", "mock_records")
    if not isinstance(stream, str) or not stream:
        raise ConfigurationError(f"MockReader config 'stream' must be a non-empty string, got {stream!r}")
    once = config.get("faults_once_file")
    return _Settings(
        stream=stream,
        records=_integer(config, "records", 100, 0),
        batch_size=_integer(config, "batch_size", 10, 1),
        seed=_integer(config, "seed", 0, -(2**63)),
        schema=schema,
        primary_key=primary_key,
        cursor_field=cursor_field,
        arrow=bool(config.get("arrow", False)),
        check_connection_error=error,
        transient_error_after=_optional_integer(config, "transient_error_after", 0),
        rate_limit_after=_optional_integer(config, "rate_limit_after", 0),
        retry_after=_number(config, "retry_after", 1.0),
        crash_after=_optional_integer(config, "crash_after", 0),
        slow_batch_seconds=_number(config, "slow_batch_seconds", 0.0) or 0.0,
        malformed_rate=_number(config, "malformed_rate", 0.0, maximum=1.0) or 0.0,
        faults_once_file=None if once is None else str(once),
    )


class MockReader(BaseReader):
    """A deterministic, seeded source with a configurable schema and injectable faults.

    Record ``i`` depends only on ``seed`` and ``i``; the primary key and cursor columns
    increase with ``i``, so a read resumed from its ``State`` yields exactly the rest.

    Config keys (all optional):

    ====================== ================ ==================================================
    key                    default          meaning
    ====================== ================ ==================================================
    stream                 ``mock_records`` the one stream's name
    records                100              how many records the source holds
    batch_size             10               records per batch
    seed                   0                seed of the record values
    schema                 every type       list of columns (``{"name", "type", "nullable"}``)
    primary_key            ``["id"]``       primary key columns (increasing)
    cursor_field           ``updated_at``   incremental cursor column (increasing), or null
    arrow                  false            yield ``pyarrow.RecordBatch`` instead of dict lists
    check_connection_error null             ``"authentication"`` or ``"connection"``: the
                                            source is unreachable (check fails, reads raise)
    transient_error_after  null             raise ``TransientError`` after k batches
    rate_limit_after       null             raise ``RateLimitError`` after k batches
    retry_after            1.0              ``retry_after`` seconds of those two errors
    crash_after            null             kill the whole process (SIGKILL) after k batches
    slow_batch_seconds     0                sleep this long before each batch
    malformed_rate         0.0              share of malformed records (wrong type or
                                            missing required column; Arrow: nulls in
                                            required columns)
    faults_once_file       null             a path: faults fire only while it does not
                                            exist, and create it; a retry then succeeds,
                                            also in a new process
    ====================== ================ ==================================================

    Args:
        config: The settings above.

    Raises:
        ConfigurationError: For an unknown key or a value out of range.
    """

    __version__ = __version__
    requires_sdk = ">=1.0,<2"
    supports_incremental = True

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.settings = _parse(config)
        if self.settings.arrow:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ConfigurationError(
                    "MockReader arrow mode needs pyarrow: pip install 'dativo-testkit[arrow]'"
                ) from None

    @property
    def stream(self) -> DiscoveredStream:
        """The stream this reader serves."""
        s = self.settings
        return DiscoveredStream(
            name=s.stream,
            schema=s.schema,
            type="table",
            primary_key=s.primary_key,
            cursor_field=s.cursor_field,
        )

    def _connection_error(self) -> DativoError | None:
        kind = self.settings.check_connection_error
        if kind == "authentication":
            return AuthenticationError("MockReader: the credentials were refused (injected fault)")
        if kind == "connection":
            return ConnectionError("MockReader: the source cannot be reached (injected fault)")
        return None

    def check_connection(self) -> ConnectionTestResult:
        """Report success, or the configured authentication or connection failure."""
        error = self._connection_error()
        if error is None:
            return ConnectionTestResult(
                success=True, message=f"mock source with {self.settings.records} records"
            )
        return ConnectionTestResult(
            success=False, message=error.message, error_code=error.error_code, retryable=error.retryable
        )

    def discover(self) -> DiscoveryResult:
        """Return the one stream, or raise the configured connection failure."""
        error = self._connection_error()
        if error is not None:
            raise error
        return DiscoveryResult(objects=[self.stream], metadata={"records": self.settings.records})

    def expected_records(self) -> list[Record]:
        """Return every record of the source, clean (no malformed ones), in order."""
        s = self.settings
        sequential = (*s.primary_key, *([s.cursor_field] if s.cursor_field else []))
        return [build_record(s.schema, i, seed=s.seed, sequential=sequential) for i in range(s.records)]

    def _start_index(self, state: State | None) -> int:
        s = self.settings
        if state is None or s.cursor_field is None or s.cursor_field not in state:
            return 0
        column = self.stream.column(s.cursor_field)
        try:
            return sequential_index(column.type, state.get(s.cursor_field)) + 1
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"MockReader: the saved state {s.cursor_field}={state.get(s.cursor_field)!r} is not a "
                f"cursor this source produced ({exc})"
            ) from None

    def _fault_armed(self) -> bool:
        marker = self.settings.faults_once_file
        if marker is None:
            return True
        try:
            Path(marker).touch(exist_ok=False)
        except FileExistsError:
            return False
        return True

    def _inject_faults(self, batches_done: int) -> None:
        s = self.settings
        if s.crash_after is not None and batches_done == s.crash_after and self._fault_armed():
            kill = getattr(signal, "SIGKILL", None)
            if kill is None:
                os._exit(137)
            os.kill(os.getpid(), kill)
        if (
            s.transient_error_after is not None
            and batches_done == s.transient_error_after
            and self._fault_armed()
        ):
            raise TransientError(
                f"MockReader: temporary failure after {batches_done} batches (injected fault)",
                retry_after=s.retry_after,
            )
        if s.rate_limit_after is not None and batches_done == s.rate_limit_after and self._fault_armed():
            raise RateLimitError(
                f"MockReader: rate limited after {batches_done} batches (injected fault)",
                retry_after=s.retry_after,
            )

    def _malformed(self, record: Record, index: int) -> Record:
        s = self.settings
        rng = random.Random(f"dativo-malformed:{s.seed}:{index}")
        if rng.random() >= s.malformed_rate:
            return record
        required = [c for c in s.schema if not c.nullable]
        if s.arrow:
            if not required:
                return record
            return {**record, rng.choice(required).name: None}
        if required and rng.random() < 0.5:
            name = rng.choice(required).name
            return {k: v for k, v in record.items() if k != name}
        column = rng.choice(s.schema)
        return {**record, column.name: WRONG_VALUES[column.type][0]}

    def extract(self, state: State | None = None) -> Iterator[Batch]:
        """Yield the records from where ``state`` left off, in batches, faults included.

        Args:
            state: The stream's state; its cursor value says where to resume.

        Yields:
            Lists of dict records, or ``pyarrow.RecordBatch`` objects in arrow mode.

        Raises:
            AuthenticationError: With ``check_connection_error: authentication``.
            ConnectionError: With ``check_connection_error: connection``.
            TransientError: With ``transient_error_after``.
            RateLimitError: With ``rate_limit_after``.
            ConfigurationError: If ``state`` holds a cursor this source never produced.
        """
        error = self._connection_error()
        if error is not None:
            raise error
        s = self.settings
        sequential = (*s.primary_key, *([s.cursor_field] if s.cursor_field else []))
        start = self._start_index(state)
        for batches_done, low in enumerate(range(start, s.records, s.batch_size)):
            self._inject_faults(batches_done)
            if s.slow_batch_seconds:
                time.sleep(s.slow_batch_seconds)
            high = min(low + s.batch_size, s.records)
            records = [
                self._malformed(build_record(s.schema, i, seed=s.seed, sequential=sequential), i)
                for i in range(low, high)
            ]
            yield records_to_arrow(records, s.schema).to_batches()[0] if s.arrow else records
            if state is not None and s.cursor_field is not None:
                column = self.stream.column(s.cursor_field)
                value = sequential_value(column.type, high - 1)
                state.set(s.cursor_field, _state_form(value))


def _state_form(value: Any) -> Any:
    """Return a cursor value in the JSON form a ``State`` keeps."""
    if isinstance(value, (int, float, str)):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
