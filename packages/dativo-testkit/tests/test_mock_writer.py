"""MockWriter: staged batches become visible only on commit, abort discards them, faults on demand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dativo_plugin_sdk import ConfigurationError, TransientError, ValidationError
from dativo_testkit import (
    ALL_TYPES_SCHEMA,
    MockTarget,
    MockWriter,
    build_records,
    compare_records,
    read_output_folder,
    records_to_arrow,
)

RECORDS = build_records(ALL_TYPES_SCHEMA, 8, seed=1)


def test_memory_commit_makes_records_visible_at_once() -> None:
    target = MockTarget()
    writer = MockWriter(config={"target": target}, schema=ALL_TYPES_SCHEMA)
    first = writer.write_batch(RECORDS[:5], 0)
    second = writer.write_batch(records_to_arrow(RECORDS[5:], ALL_TYPES_SCHEMA), 1)
    assert target.records == []
    assert first[0]["record_count"] == 5
    assert first[0]["size_bytes"] > 0
    summary = writer.commit_files(first + second)
    assert summary == {"files_committed": 2, "records_committed": 8}
    assert not compare_records(ALL_TYPES_SCHEMA, RECORDS, target.records).missing
    assert target.commits == [summary]
    target.clear()
    assert target.records == []


def test_abort_discards_and_is_safe_twice(tmp_path: Path) -> None:
    writer = MockWriter(config={"folder": str(tmp_path)}, schema=ALL_TYPES_SCHEMA)
    metadata = writer.write_batch(RECORDS, 0)
    assert Path(metadata[0]["path"]).is_file()
    writer.abort()
    writer.abort()
    assert not Path(metadata[0]["path"]).exists()
    assert read_output_folder(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_folder_commit_moves_staged_files(tmp_path: Path) -> None:
    writer = MockWriter(config={"folder": str(tmp_path)}, schema=ALL_TYPES_SCHEMA)
    assert writer.check_connection().success
    metadata = writer.write_batch(RECORDS, 7)
    assert read_output_folder(tmp_path) == []
    writer.commit_files(metadata)
    assert [p.name for p in tmp_path.iterdir()] == [Path(metadata[0]["path"]).name]
    assert compare_records(ALL_TYPES_SCHEMA, RECORDS, read_output_folder(tmp_path))


def test_validation_error_names_the_record_and_column() -> None:
    writer = MockWriter(config={}, schema=ALL_TYPES_SCHEMA)
    with pytest.raises(ValidationError) as raised:
        writer.write_batch([RECORDS[0], {**RECORDS[1], "amount": "lots"}], 0)
    assert raised.value.details == {"record_index": 1, "column": "amount"}
    with pytest.raises(ValidationError, match="not a dict"):
        writer.write_batch([1, 2], 0)
    MockWriter(config={"validate": False}, schema=ALL_TYPES_SCHEMA).write_batch([{"amount": "lots"}], 0)


def test_fail_after_batches_and_on_commit() -> None:
    target = MockTarget()
    writer = MockWriter(config={"target": target, "fail_after_batches": 1}, schema=ALL_TYPES_SCHEMA)
    metadata = writer.write_batch(RECORDS, 0)
    with pytest.raises(TransientError, match="after 1 batches"):
        writer.write_batch(RECORDS, 1)
    failing = MockWriter(config={"target": target, "fail_on_commit": True}, schema=ALL_TYPES_SCHEMA)
    with pytest.raises(TransientError, match="nothing was committed"):
        failing.commit_files(failing.write_batch(RECORDS, 0))
    assert target.records == []
    writer.commit_files(metadata)
    assert len(target.records) == len(RECORDS)


def test_commit_of_unknown_metadata_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="nothing staged"):
        MockWriter(config={}).commit_files([{"path": "memory://x/part.jsonl"}])
    with pytest.raises(ValidationError, match="nothing staged"):
        MockWriter(config={"folder": str(tmp_path)}).commit_files([{"path": str(tmp_path / "nope.jsonl")}])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"bucket": "x"}, "does not know the config key"),
        ({"target": MockTarget(), "folder": "/tmp"}, "not both"),
        ({"target": []}, "must be a MockTarget"),
        ({"folder": 5}, "must be a path"),
        ({"fail_after_batches": -1}, "integer >= 0"),
    ],
)
def test_bad_configs_raise_configuration_error(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MockWriter(config=config)


def test_unwritable_folder_fails_the_connection_check(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = MockWriter(config={"folder": str(blocker / "below")}).check_connection()
    assert not result.success
    assert result.error_code == "TARGET_NOT_WRITABLE"
