"""The conformance engine: good plugins pass every check; each broken plugin fails exactly its check."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from dativo_plugin_sdk import BaseReader, BaseWriter, State
from dativo_testkit import (
    ALL_TYPES_SCHEMA,
    CheckStatus,
    MockReader,
    MockTarget,
    MockWriter,
    list_checks,
    read_output_folder,
    run_conformance,
)


def _fixtures(module: ModuleType) -> list[Any]:
    return [
        obj
        for _, obj in sorted(vars(module).items())
        if inspect.isclass(obj) and obj.__module__ == module.__name__ and hasattr(obj, "FLAGGED_BY")
    ]


def _statuses(report: Any) -> dict[str, str]:
    return {c.name: c.status.value for c in report.checks}


# Good plugins -------------------------------------------------------------------------

# The mocks declare no config_schema: the config-spec checks skip, saying so (see test_spec_checks.py).
NO_SPEC_SKIPS = {
    kind: [
        f"{kind}.config_spec_valid",
        f"{kind}.config_spec_accepts_valid_config",
        f"{kind}.config_spec_rejects_bad_configs",
    ]
    for kind in ("reader", "writer")
}


@pytest.mark.parametrize(
    ("config", "bad_config"),
    [
        ({"records": 95, "batch_size": 10}, {"check_connection_error": "authentication"}),
        ({"records": 95, "batch_size": 10, "arrow": True}, {"records": -1}),
        ({"records": 40, "batch_size": 7, "seed": 3, "cursor_field": "id"}, {"stream": ""}),
    ],
    ids=["dicts", "arrow", "id-cursor"],
)
def test_mock_reader_passes_every_check(config: dict[str, Any], bad_config: dict[str, Any]) -> None:
    report = run_conformance(MockReader, config=config, bad_config=bad_config)
    assert report.passed, report.to_text()
    not_passed = [c.name for c in report.checks if not c.passed]
    expected = [
        c.name
        for c in list_checks("reader")
        if ".mock_api_" in c.name or c.name in NO_SPEC_SKIPS["reader"] or c.name == "reader.partitions"
    ]
    assert not_passed == expected, report.to_text()
    assert [c.name for c in report.checks] == [c.name for c in list_checks("reader")]


def test_mock_writer_in_memory_passes_every_check() -> None:
    target = MockTarget()
    report = run_conformance(
        MockWriter,
        config={"target": target},
        bad_config={"target": "not a target"},
        read_back=lambda config: config["target"].records,
    )
    assert [c.name for c in report.checks if not c.passed] == NO_SPEC_SKIPS["writer"], report.to_text()
    assert target.records, "the round trips committed into the shared target"


def test_mock_writer_in_a_folder_passes_every_check(tmp_path: Path) -> None:
    report = run_conformance(
        MockWriter, config={"folder": str(tmp_path)}, bad_config={"folder": 5}, read_back=tmp_path
    )
    assert [c.name for c in report.checks if not c.passed] == NO_SPEC_SKIPS["writer"], report.to_text()
    assert [c.name for c in report.checks] == [c.name for c in list_checks("writer")]
    assert not (tmp_path / "_staging").exists()


# Broken plugins: each flagged by exactly its check --------------------------------------


def test_every_check_has_a_broken_plugin(
    broken_readers: ModuleType,
    broken_writers: ModuleType,
    broken_specs: ModuleType,
    http_readers: ModuleType,
    broken_partitions: ModuleType,
) -> None:
    fixtures = (
        _fixtures(broken_readers)
        + _fixtures(broken_writers)
        + _fixtures(broken_specs)
        + _fixtures(http_readers)
        + _fixtures(broken_partitions)
    )
    flagged = {cls.FLAGGED_BY for cls in fixtures}
    every = {c.name for c in list_checks("reader") + list_checks("writer")}
    assert every - flagged == set()


READER_FIXTURES = [
    "NotAReader",
    "AbstractReader",
    "NoVersionReader",
    "BadVersionReader",
    "FutureSdkReader",
    "NpmRangeReader",
    "ConstructorFailsReader",
    "AcceptsAnythingReader",
    "UntypedConfigErrorReader",
    "CheckConnectionKeyErrorReader",
    "DuplicateStreamsReader",
    "KeyOutsideSchemaReader",
    "ListExtractReader",
    "SingleRecordBatchReader",
    "HangingReader",
    "TypeMismatchReader",
    "DuplicateKeyReader",
    "BufferedReader",
    "StateIgnoredReader",
    "UndeclaredIncrementalReader",
    "EarlyStateReader",
    "UntypedErrorReader",
    "UnserialisableErrorReader",
    "LeakyThreadReader",
    "LeakyDescriptorReader",
]

WRITER_FIXTURES = [
    "AbstractWriter",
    "NoVersionWriter",
    "AncientSdkWriter",
    "ConstructorFailsWriter",
    "AcceptsAnythingWriter",
    "CheckConnectionKeyErrorWriter",
    "FirstRecordLostWriter",
    "AbortKeepsFilesWriter",
    "NoValidationWriter",
    "IntegersAsFloatsWriter",
    "LeakyThreadWriter",
]


def test_the_fixture_lists_are_complete(broken_readers: ModuleType, broken_writers: ModuleType) -> None:
    assert sorted(READER_FIXTURES) == sorted(c.__name__ for c in _fixtures(broken_readers))
    assert sorted(WRITER_FIXTURES) == sorted(c.__name__ for c in _fixtures(broken_writers))


@pytest.mark.parametrize("name", READER_FIXTURES)
def test_broken_reader_is_flagged_by_exactly_its_check(broken_readers: ModuleType, name: str) -> None:
    cls = getattr(broken_readers, name)
    timeout = 2.0 if name == "HangingReader" else 30.0
    report = run_conformance(cls, config=cls.CONFIG, bad_config=cls.BAD_CONFIG, timeout=timeout)
    assert {c.name for c in report.failed} == {cls.FLAGGED_BY}, report.to_text()
    assert not report.passed
    failure = report.check(cls.FLAGGED_BY)
    assert failure.reason
    if name == "HangingReader":
        assert failure.reason.startswith("timed out after 2s")


@pytest.mark.parametrize("name", WRITER_FIXTURES)
def test_broken_writer_is_flagged_by_exactly_its_check(
    broken_writers: ModuleType, name: str, tmp_path: Path
) -> None:
    cls = getattr(broken_writers, name)
    report = run_conformance(
        cls, config={"folder": str(tmp_path)}, bad_config=cls.BAD_CONFIG, read_back=tmp_path
    )
    assert {c.name for c in report.failed} == {cls.FLAGGED_BY}, report.to_text()


# What the failures say ----------------------------------------------------------------


def test_failure_names_the_offending_record(broken_readers: ModuleType) -> None:
    cls = broken_readers.TypeMismatchReader
    report = run_conformance(cls, config=cls.CONFIG)
    failure = report.check("reader.records_match_schema")
    assert "column 'amount': expected float, got str" in failure.reason
    assert isinstance(failure.offending, dict)
    assert isinstance(failure.offending["amount"], str)
    json.dumps(report.to_dict())


def test_buffered_reader_failure_explains_the_heuristic(broken_readers: ModuleType) -> None:
    cls = broken_readers.BufferedReader
    reason = run_conformance(cls, config=cls.CONFIG).check("reader.extract_streams").reason
    assert "already in memory" in reason
    assert "3 more batches (75 records)" in reason


def test_early_state_failure_names_the_lost_record(broken_readers: ModuleType) -> None:
    cls = broken_readers.EarlyStateReader
    failure = run_conformance(cls, config=cls.CONFIG).check("reader.incremental_resume")
    assert "lost 10 of the" in failure.reason
    assert "never before" in failure.reason
    assert failure.offending["id"] > 0


def test_hypothesis_failure_shows_the_smallest_example(broken_writers: ModuleType, tmp_path: Path) -> None:
    cls = broken_writers.IntegersAsFloatsWriter
    failure = run_conformance(cls, config={"folder": str(tmp_path)}, read_back=tmp_path).check(
        "writer.hypothesis_round_trip"
    )
    written = failure.offending["written"]
    assert any(isinstance(v, int) and abs(v) > 2**53 for v in written.values()), failure.offending


def test_undeclared_incremental_failure_gives_the_fix(broken_readers: ModuleType) -> None:
    cls = broken_readers.UndeclaredIncrementalReader
    report = run_conformance(cls, config=cls.CONFIG, bad_config=cls.BAD_CONFIG)
    reason = report.check("reader.incremental_final_state").reason
    assert "calls state.set(...) during extract" in reason
    assert "Add 'supports_incremental = True' to the class" in reason
    assert report.check("reader.incremental_resume").skipped

    class FullReadsOnly(MockReader):
        supports_incremental = False

        def extract(self, state: State | None = None) -> Iterator[Any]:
            yield from super().extract(state=None)

    full = run_conformance(FullReadsOnly, config=cls.CONFIG, bad_config=cls.BAD_CONFIG)
    assert full.passed, full.to_text()
    assert full.check("reader.incremental_final_state").reason == (
        "FullReadsOnly does not declare supports_incremental = True"
    )


def test_dependent_checks_are_skipped_with_the_reason(broken_readers: ModuleType) -> None:
    cls = broken_readers.ListExtractReader
    report = run_conformance(cls, config=cls.CONFIG)
    skipped = report.check("reader.records_match_schema")
    assert skipped.status is CheckStatus.SKIPPED
    assert skipped.reason == "needs reader.extract_yields_batches to pass, and it failed"


# Options ------------------------------------------------------------------------------


def test_several_bad_configs_must_each_be_rejected(broken_readers: ModuleType) -> None:
    config = {"records": 30, "batch_size": 10}
    both = [{"records": -1}, {"check_connection_error": "authentication"}]
    report = run_conformance(MockReader, config=config, bad_config=both)
    assert report.passed, report.to_text()
    rejected = report.check("reader.rejects_bad_config").reason
    assert rejected.startswith("all 2 bad configs were rejected: 1: constructing raised ConfigurationError")
    assert "2: check_connection reported success=False (AUTHENTICATION_FAILED)" in rejected
    one_accepted = run_conformance(MockReader, config=config, bad_config=[both[0], {"records": 5}])
    assert {c.name for c in one_accepted.failed} == {"reader.rejects_bad_config"}
    assert one_accepted.check("reader.rejects_bad_config").reason.startswith(
        "bad config 2 of 2 was accepted: the constructor did not raise ConfigurationError"
    )
    untyped = broken_readers.UntypedErrorReader
    second_provokes = run_conformance(
        untyped, config=untyped.CONFIG, bad_config=[{"records": -1}, untyped.BAD_CONFIG]
    )
    assert second_provokes.check("reader.errors_are_dativo_errors").reason.startswith(
        "with bad config 2 of 2, extract raised the untyped KeyError"
    )
    first_only = run_conformance(untyped, config=untyped.CONFIG, bad_config=[{"records": -1}])
    assert first_only.check("reader.errors_are_dativo_errors").passed


def test_a_bad_config_list_must_hold_mappings() -> None:
    with pytest.raises(TypeError, match="got int in the list"):
        run_conformance(MockReader, config={"records": 5}, bad_config=[{"records": -1}, 5])  # type: ignore[list-item]


def test_without_bad_config_the_check_is_skipped_and_says_how_to_give_one() -> None:
    report = run_conformance(MockReader, config={"records": 30})
    result = report.check("reader.rejects_bad_config")
    assert result.skipped
    assert "bad_config" in result.reason
    assert report.passed


def test_writer_without_read_back_skips_the_round_trips_and_says_why() -> None:
    report = run_conformance(MockWriter, config={})
    assert report.check("writer.round_trip").skipped
    assert "read_back" in report.check("writer.round_trip").reason
    assert report.check("writer.hypothesis_round_trip").skipped
    assert report.check("writer.abort_discards").passed


def test_skip_option_and_stream_option() -> None:
    report = run_conformance(
        MockReader,
        config={"records": 30, "stream": "orders"},
        stream="orders",
        skip=["reader.extract_streams"],
    )
    assert report.check("reader.extract_streams").reason == "skipped on request"
    missing = run_conformance(MockReader, config={"records": 30}, stream="customers")
    assert "no stream named 'customers'" in missing.check("reader.discover").reason


def test_writer_schema_option(tmp_path: Path) -> None:
    schema = [c for c in ALL_TYPES_SCHEMA if c.name in ("id", "name")]
    report = run_conformance(
        MockWriter, config={"folder": str(tmp_path)}, read_back=tmp_path, schema=schema, hypothesis_examples=5
    )
    assert report.passed, report.to_text()
    assert set(read_output_folder(tmp_path)[0]) == {"id", "name"}


def test_a_plain_class_gets_the_reader_checks_and_fails_the_first() -> None:
    report = run_conformance(dict, config={})
    assert report.kind == "reader"
    assert [c.name for c in report.failed] == [
        "reader.is_concrete_base_reader",
        "reader.declares_valid_version",
    ]
    assert issubclass(MockReader, BaseReader)
    assert issubclass(MockWriter, BaseWriter)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"config": []}, TypeError),
        ({"config": {}, "bad_config": "x"}, TypeError),
        ({"config": {}, "timeout": 0}, ValueError),
        ({"config": {}, "hypothesis_examples": 0}, ValueError),
        ({"config": {}, "skip": ["reader.nope"]}, ValueError),
    ],
)
def test_usage_mistakes_raise(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        run_conformance(MockReader, **kwargs)


def test_list_checks_rejects_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="reader"):
        list_checks("source")  # type: ignore[arg-type]
    assert all(c.description and c.kind == "writer" for c in list_checks("writer"))


def test_a_parquet_writer_passes_every_check_read_back_from_its_folder(
    plugins_dir: Path, tmp_path: Path
) -> None:
    from dativo_testkit import load_plugin_class

    writer = load_plugin_class(f"{plugins_dir / 'parquet_writer.py'}:ParquetWriter")
    report = run_conformance(writer, config={"path": str(tmp_path)}, bad_config={}, read_back=tmp_path)
    assert all(c.passed for c in report.checks), report.to_text()
    assert {p.suffix for p in tmp_path.iterdir() if p.is_file()} == {".parquet"}
