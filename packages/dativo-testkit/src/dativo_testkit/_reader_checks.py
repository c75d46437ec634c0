"""The conformance checks for readers (``BaseReader`` subclasses), in the order they run."""

from __future__ import annotations

from typing import Any

from ._checks import ConformanceCheck, RegisteredCheck
from ._mock_api_checks import (
    check_mock_api_authentication,
    check_mock_api_rate_limit,
    check_mock_api_server_errors,
    check_mock_api_unreachable,
)
from ._partition_checks import check_partitions
from ._reader_session import ReaderSession

__all__ = ["READER_CHECKS", "ReaderSession"]


def _reader_check(name: str, description: str, run: Any, *requires: str) -> RegisteredCheck[ReaderSession]:
    return RegisteredCheck(ConformanceCheck(name, "reader", description, tuple(requires)), run)


READER_CHECKS: tuple[RegisteredCheck[ReaderSession], ...] = (
    _reader_check(
        "reader.is_concrete_base_reader",
        "The class subclasses BaseReader and implements every abstract method.",
        ReaderSession.check_is_concrete,
    ),
    _reader_check(
        "reader.declares_valid_version",
        "The class declares __version__ as a valid (PEP 440 / semver) version string.",
        ReaderSession.check_version,
    ),
    _reader_check(
        "reader.sdk_compatible",
        "The class's requires_sdk is valid and includes the installed SDK.",
        ReaderSession.check_sdk_compatible,
        "reader.declares_valid_version",
    ),
    _reader_check(
        "reader.constructs",
        "The reader constructs with the valid config.",
        ReaderSession.check_constructs,
        "reader.is_concrete_base_reader",
    ),
    _reader_check(
        "reader.rejects_bad_config",
        "A bad config raises ConfigurationError or makes check_connection report success=False with an "
        "error code.",
        ReaderSession.check_rejects_bad_config,
        "reader.is_concrete_base_reader",
    ),
    _reader_check(
        "reader.check_connection",
        "check_connection returns a successful ConnectionTestResult and raises nothing untyped.",
        ReaderSession.check_connection,
        "reader.constructs",
    ),
    _reader_check(
        "reader.discover",
        "discover returns unique stream names, valid schemas, and keys and cursors that exist in the schema.",
        ReaderSession.check_discover,
        "reader.constructs",
    ),
    _reader_check(
        "reader.extract_yields_batches",
        "extract is an iterator yielding at least one batch: lists of dict records or Arrow objects.",
        ReaderSession.check_extract_yields_batches,
        "reader.discover",
    ),
    _reader_check(
        "reader.records_match_schema",
        "Every record matches the discovered schema: column types and required columns.",
        ReaderSession.check_records_match_schema,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.primary_keys_unique",
        "Primary key values are non-null and unique across the read.",
        ReaderSession.check_primary_keys_unique,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.extract_streams",
        "Batches are produced as they are pulled, not after the whole source was read.",
        ReaderSession.check_extract_streams,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.incremental_final_state",
        "Reading again from the final state yields no record already read.",
        ReaderSession.check_incremental_final_state,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.incremental_resume",
        "Resuming from an intermediate state yields exactly the records not yet read.",
        ReaderSession.check_incremental_resume,
        "reader.incremental_final_state",
    ),
    _reader_check(
        "reader.partitions",
        "A reader that splits its stream lists uniquely named Partitions whose extracts, each on a new "
        "instance, are disjoint, together the unpartitioned read, and resume each from its own state.",
        check_partitions,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.mock_api_authentication",
        "Pointed at the testkit's MockApiServer: HTTP 401 and 403 raise AuthenticationError.",
        check_mock_api_authentication,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.mock_api_rate_limit",
        "Pointed at the testkit's MockApiServer: HTTP 429 raises RateLimitError with retry_after.",
        check_mock_api_rate_limit,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.mock_api_server_errors",
        "Pointed at the testkit's MockApiServer: 5xx answers are retried or raise TransientError.",
        check_mock_api_server_errors,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.mock_api_unreachable",
        "Pointed at the testkit's MockApiServer: an unreachable API raises ConnectionError or "
        "TransientError.",
        check_mock_api_unreachable,
        "reader.extract_yields_batches",
    ),
    _reader_check(
        "reader.errors_are_dativo_errors",
        "Every exception raised is a DativoError that survives to_dict() as JSON and pickling.",
        ReaderSession.check_errors_are_dativo_errors,
        "reader.is_concrete_base_reader",
    ),
    _reader_check(
        "reader.close_releases_resources",
        "close() leaves no thread or file descriptor behind after a full read.",
        ReaderSession.check_close_releases_resources,
        "reader.extract_yields_batches",
    ),
)
