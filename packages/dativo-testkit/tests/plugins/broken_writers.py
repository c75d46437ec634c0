"""Deliberately broken writers: each breaks one SDK rule, and ``FLAGGED_BY`` names the one check
that must catch it. All are folder-mode ``MockWriter`` variants: the tests give each its own
folder as ``{"folder": ...}`` and read back from it; ``BAD_CONFIG`` is the bad config to use.

Loaded by path from the tests (``--import-mode=importlib``); not collected as tests itself.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from dativo_plugin_sdk import (
    BaseWriter,
    Batch,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    records_from_batch,
)
from dativo_testkit import MockWriter

BAD = {"folder": 5}  # MockWriter raises ConfigurationError for it

_STOP = threading.Event()


def release_leaks() -> None:
    """End the threads these writers leaked."""
    _STOP.set()


class AbstractWriter(BaseWriter):
    """Forgets to implement write_batch."""

    FLAGGED_BY = "writer.is_concrete_base_writer"
    BAD_CONFIG = None
    __version__ = "1.0.0"


class NoVersionWriter(MockWriter):
    """Declares no __version__."""

    FLAGGED_BY = "writer.declares_valid_version"
    BAD_CONFIG = BAD
    __version__ = None


class AncientSdkWriter(MockWriter):
    """Requires an SDK older than any 1.x."""

    FLAGGED_BY = "writer.sdk_compatible"
    BAD_CONFIG = BAD
    requires_sdk = "<1"


class ConstructorFailsWriter(MockWriter):
    """Rejects even the valid config."""

    FLAGGED_BY = "writer.constructs"
    BAD_CONFIG = BAD

    def __init__(self, config: dict[str, Any], schema: Sequence[Column] | None = None) -> None:
        raise ConfigurationError("ConstructorFailsWriter needs a 'bucket', which no config has")


class AcceptsAnythingWriter(MockWriter):
    """Falls back to a default folder when the configured one is unusable."""

    FLAGGED_BY = "writer.rejects_bad_config"
    BAD_CONFIG = BAD

    def __init__(self, config: dict[str, Any], schema: Sequence[Column] | None = None) -> None:
        folder = config.get("folder")
        super().__init__({"folder": folder if isinstance(folder, str) else "."}, schema)


class CheckConnectionKeyErrorWriter(MockWriter):
    """check_connection raises KeyError instead of returning a result."""

    FLAGGED_BY = "writer.check_connection"
    BAD_CONFIG = BAD

    def check_connection(self) -> ConnectionTestResult:
        return {"ok": True}["bucket"]  # type: ignore[no-any-return]


class FirstRecordLostWriter(MockWriter):
    """Drops the first record of every batch but reports it written."""

    FLAGGED_BY = "writer.round_trip"
    BAD_CONFIG = BAD

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        rows = records_from_batch(records)
        metadata = super().write_batch(rows[1:], file_counter)
        metadata[0]["record_count"] = len(rows)
        return metadata


class AbortKeepsFilesWriter(MockWriter):
    """abort() does nothing: staged files stay on disk."""

    FLAGGED_BY = "writer.abort_discards"
    BAD_CONFIG = BAD

    def abort(self) -> None:
        pass


class NoValidationWriter(MockWriter):
    """Writes whatever it is given."""

    FLAGGED_BY = "writer.rejects_invalid_records"
    BAD_CONFIG = BAD

    def __init__(self, config: dict[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__({**config, "validate": False}, schema)


class IntegersAsFloatsWriter(MockWriter):
    """Stores integers as floats, losing precision above 2**53: only extreme values show it."""

    FLAGGED_BY = "writer.hypothesis_round_trip"
    BAD_CONFIG = BAD

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        rows = [
            {k: int(float(v)) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in r.items()}
            for r in records_from_batch(records)
        ]
        return super().write_batch(rows, file_counter)


class LeakyThreadWriter(MockWriter):
    """Starts an uploader thread and never stops it."""

    FLAGGED_BY = "writer.close_releases_resources"
    BAD_CONFIG = BAD

    def __init__(self, config: dict[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__(config, schema)
        threading.Thread(target=_STOP.wait, name="leaky-uploader", daemon=True).start()
