"""Deliberately broken readers: each breaks one SDK rule, and ``FLAGGED_BY`` names the one check
that must catch it (every other check passes or is skipped because it depends on that one).

Each class carries the ``CONFIG`` and ``BAD_CONFIG`` the tests run it with. Loaded by path
from the tests (``--import-mode=importlib``); not collected as tests itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from dativo_plugin_sdk import (
    BaseReader,
    ConfigurationError,
    ConnectionTestResult,
    DiscoveredStream,
    DiscoveryResult,
    State,
    TransientError,
)
from dativo_testkit import MockReader

GOOD = {"records": 60, "batch_size": 10}
BAD = {"records": -1}  # MockReader raises ConfigurationError for it

_STOP = threading.Event()  # set by release_leaks(): ends every leaked or hanging thread
_LEAKED_FDS: list[int] = []


def release_leaks() -> None:
    """End the threads these readers leaked and close the descriptors they left open."""
    _STOP.set()
    while _LEAKED_FDS:
        os.close(_LEAKED_FDS.pop())


def _cursor(batch: list[dict[str, Any]]) -> str:
    moment: datetime = batch[-1]["updated_at"]
    return moment.isoformat()


class NotAReader:
    """Has the methods, but does not subclass BaseReader."""

    FLAGGED_BY = "reader.is_concrete_base_reader"
    CONFIG = GOOD
    BAD_CONFIG = None
    __version__ = "1.0.0"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def extract(self, state: State | None = None) -> Iterator[list[dict[str, Any]]]:
        yield [{"id": 1}]


class AbstractReader(BaseReader):
    """Forgets to implement extract."""

    FLAGGED_BY = "reader.is_concrete_base_reader"
    CONFIG = GOOD
    BAD_CONFIG = None
    __version__ = "1.0.0"


class NoVersionReader(MockReader):
    """Declares no __version__."""

    FLAGGED_BY = "reader.declares_valid_version"
    CONFIG = GOOD
    BAD_CONFIG = BAD
    __version__ = None


class BadVersionReader(MockReader):
    """Declares a __version__ that is not a version."""

    FLAGGED_BY = "reader.declares_valid_version"
    CONFIG = GOOD
    BAD_CONFIG = BAD
    __version__ = "one.two"


class FutureSdkReader(MockReader):
    """Requires an SDK major version that is not installed."""

    FLAGGED_BY = "reader.sdk_compatible"
    CONFIG = GOOD
    BAD_CONFIG = BAD
    requires_sdk = ">=2,<3"


class NpmRangeReader(MockReader):
    """Spells its SDK requirement npm-style, which is not PEP 440."""

    FLAGGED_BY = "reader.sdk_compatible"
    CONFIG = GOOD
    BAD_CONFIG = BAD
    requires_sdk = "^1.0"


class ConstructorFailsReader(MockReader):
    """Rejects even the valid config."""

    FLAGGED_BY = "reader.constructs"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def __init__(self, config: dict[str, Any]) -> None:
        raise ConfigurationError("ConstructorFailsReader needs a 'dsn', which no config has")


class AcceptsAnythingReader(MockReader):
    """Ignores its config, so a bad one goes unnoticed."""

    FLAGGED_BY = "reader.rejects_bad_config"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(GOOD)


class UntypedConfigErrorReader(MockReader):
    """Crashes on a bad config with a KeyError instead of a ConfigurationError."""

    FLAGGED_BY = "reader.rejects_bad_config"
    CONFIG = GOOD
    BAD_CONFIG = {"batch_size": 10}

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__({"records": config["records"], "batch_size": config["batch_size"]})


class CheckConnectionKeyErrorReader(MockReader):
    """check_connection raises KeyError instead of returning a result."""

    FLAGGED_BY = "reader.check_connection"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def check_connection(self) -> ConnectionTestResult:
        return {"ok": True}["host"]  # type: ignore[no-any-return]


class DuplicateStreamsReader(MockReader):
    """discover lists the same stream twice."""

    FLAGGED_BY = "reader.discover"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def discover(self) -> DiscoveryResult:
        result = super().discover()
        result.objects.append(result.objects[0])
        return result


class KeyOutsideSchemaReader(MockReader):
    """discover declares a primary key and cursor, but no columns at all."""

    FLAGGED_BY = "reader.discover"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def discover(self) -> DiscoveryResult:
        stream = DiscoveredStream("mock_records", schema=(), primary_key=("id",), cursor_field="updated_at")
        return DiscoveryResult(objects=[stream])


class ListExtractReader(MockReader):
    """extract reads everything and returns a list instead of yielding."""

    FLAGGED_BY = "reader.extract_yields_batches"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def extract(self, state: State | None = None) -> list[Any]:  # type: ignore[override]
        return list(super().extract(state=state))


class SingleRecordBatchReader(MockReader):
    """Yields bare records instead of batches (lists of records)."""

    FLAGGED_BY = "reader.extract_yields_batches"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def extract(self, state: State | None = None) -> Iterator[Any]:
        for batch in super().extract(state=state):
            yield from batch


class HangingReader(MockReader):
    """extract blocks forever on a lock nobody releases: the time limit must catch it."""

    FLAGGED_BY = "reader.extract_yields_batches"
    CONFIG = GOOD
    BAD_CONFIG = None

    def extract(self, state: State | None = None) -> Iterator[Any]:
        _STOP.wait()
        yield from super().extract(state=state)


class TypeMismatchReader(MockReader):
    """Declares amount as float but yields it as text."""

    FLAGGED_BY = "reader.records_match_schema"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def extract(self, state: State | None = None) -> Iterator[Any]:
        for batch in super().extract(state=state):
            yield [{**r, "amount": None if r["amount"] is None else str(r["amount"])} for r in batch]


class DuplicateKeyReader(MockReader):
    """Gives every two records the same id."""

    FLAGGED_BY = "reader.primary_keys_unique"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def extract(self, state: State | None = None) -> Iterator[Any]:
        for batch in super().extract(state=state):
            yield [{**r, "id": (r["id"] + 1) // 2} for r in batch]


class BufferedReader(MockReader):
    """Reads the whole source into memory before yielding the first batch."""

    FLAGGED_BY = "reader.extract_streams"
    CONFIG = {"records": 100, "batch_size": 25}
    BAD_CONFIG = BAD

    def extract(self, state: State | None = None) -> Iterator[Any]:
        everything = list(super().extract(state=None if state is None else State(state.to_dict())))
        for batch in everything:
            yield batch
            if state is not None:
                state.set("updated_at", _cursor(batch))


class StateIgnoredReader(MockReader):
    """Advances the state but always reads from the start."""

    FLAGGED_BY = "reader.incremental_final_state"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def extract(self, state: State | None = None) -> Iterator[Any]:
        for batch in super().extract(state=None):
            yield batch
            if state is not None:
                state.set("updated_at", _cursor(batch))


class UndeclaredIncrementalReader(MockReader):
    """Saves a cursor with state.set but never declares supports_incremental = True."""

    FLAGGED_BY = "reader.incremental_final_state"
    CONFIG = GOOD
    BAD_CONFIG = BAD
    supports_incremental = False


class EarlyStateReader(MockReader):
    """Sets the state before yielding the batch it covers, so a resume skips a batch."""

    FLAGGED_BY = "reader.incremental_resume"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def extract(self, state: State | None = None) -> Iterator[Any]:
        for batch in super().extract(state=None if state is None else State(state.to_dict())):
            if state is not None:
                state.set("updated_at", _cursor(batch))
            yield batch


class UntypedErrorReader(MockReader):
    """With unusable credentials, extract fails with a KeyError instead of a DativoError."""

    FLAGGED_BY = "reader.errors_are_dativo_errors"
    CONFIG = GOOD
    BAD_CONFIG = {"check_connection_error": "authentication"}

    def extract(self, state: State | None = None) -> Iterator[Any]:
        if self.settings.check_connection_error:
            raise KeyError("session_token")
        yield from super().extract(state=state)


class _TimestampedError(TransientError):
    """Adds a datetime to to_dict(), which JSON cannot hold."""

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["failed_at"] = datetime(2024, 1, 1)
        return data


class UnserialisableErrorReader(MockReader):
    """Raises a DativoError whose to_dict() is not JSON-serialisable."""

    FLAGGED_BY = "reader.errors_are_dativo_errors"
    CONFIG = GOOD
    BAD_CONFIG = {"check_connection_error": "connection"}

    def extract(self, state: State | None = None) -> Iterator[Any]:
        if self.settings.check_connection_error:
            raise _TimestampedError("the source is down")
        yield from super().extract(state=state)


class LeakyThreadReader(MockReader):
    """Starts a polling thread in extract and never stops it."""

    FLAGGED_BY = "reader.close_releases_resources"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def extract(self, state: State | None = None) -> Iterator[Any]:
        threading.Thread(target=_STOP.wait, name="leaky-poller", daemon=True).start()
        yield from super().extract(state=state)


class LeakyDescriptorReader(MockReader):
    """Opens a pipe when constructed and never closes it."""

    FLAGGED_BY = "reader.close_releases_resources"
    CONFIG = GOOD
    BAD_CONFIG = BAD

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self.pipe = os.pipe()
        _LEAKED_FDS.extend(self.pipe)
