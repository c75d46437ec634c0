"""What a run's summary says its target committed: from commit_files when it says, else from write_batch."""

from __future__ import annotations

from pathlib import Path

from dativo_runtime._engine._commit import CommittedFiles, committed_files_of


def test_commit_files_paths_and_bytes_win() -> None:
    commit = {"paths": ["s3://b/x/part-1.parquet"], "bytes": 42, "files_committed": 1}
    staged = [{"path": "_staging/part-1.parquet", "size_bytes": 40}]
    assert committed_files_of(commit, staged, Path("/out")) == CommittedFiles(["s3://b/x/part-1.parquet"], 42)


def test_write_batch_metadata_fills_what_commit_files_leaves_out() -> None:
    metadata = [
        {"path": "a.jsonl", "record_count": 2, "size_bytes": 10},
        {"path": "a.jsonl", "record_count": 3, "size_bytes": 25},  # the same file, grown
        {"path": "/abs/b.jsonl", "record_count": 1, "size_bytes": 7},
        {"path": "s3://bucket/c.jsonl", "record_count": 1},
        {"record_count": 4},
        {"path": 5, "size_bytes": 9},
    ]
    summary = committed_files_of({"files_committed": 4}, metadata, Path("/out"))
    assert summary.paths == ["/out/a.jsonl", "/abs/b.jsonl", "s3://bucket/c.jsonl"]
    assert summary.bytes_written == 32
    assert committed_files_of({}, [], None) == CommittedFiles([], 0)
    assert committed_files_of({"bytes": True}, [{"path": "r.txt", "size_bytes": -1}], None) == CommittedFiles(
        ["r.txt"], 0
    )
