"""``MockWriter``: a target with real stage/commit/abort semantics, in memory or in a folder."""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dativo_plugin_sdk import (
    BaseWriter,
    Batch,
    Column,
    ConfigurationError,
    ConnectionTestResult,
    Record,
    TransientError,
    ValidationError,
    records_from_batch,
)

from ._json_values import json_default
from ._record_validation import find_schema_violations
from ._version import __version__

__all__ = ["MockTarget", "MockWriter"]

_KNOWN_KEYS = ("target", "folder", "fail_after_batches", "fail_on_commit", "validate")


class MockTarget:
    """An in-memory destination for :class:`MockWriter`: what was committed, for assertions.

    Thread-safe. Pass one in a writer config (``{"target": target}``) to read back what
    any number of writers committed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._commits: list[dict[str, Any]] = []

    @property
    def records(self) -> list[Record]:
        """Every committed record, in commit order (a copy)."""
        with self._lock:
            return [dict(r) for r in self._records]

    @property
    def commits(self) -> list[dict[str, Any]]:
        """One summary per successful commit (a copy)."""
        with self._lock:
            return [dict(c) for c in self._commits]

    def commit(self, records: Sequence[Record], summary: Mapping[str, Any]) -> None:
        """Append ``records`` atomically and remember ``summary``."""
        copied = [dict(r) for r in records]
        with self._lock:
            self._records.extend(copied)
            self._commits.append(dict(summary))

    def clear(self) -> None:
        """Forget everything committed."""
        with self._lock:
            self._records.clear()
            self._commits.clear()


class MockWriter(BaseWriter):
    """A target plugin that stages batches and makes them visible only on commit.

    In memory (the default) committed records land in a :class:`MockTarget`; with
    ``folder`` each batch is staged as a JSON-lines file under ``{folder}/_staging/{run}/``
    and moved into ``folder`` on commit. ``abort`` discards everything staged.

    Config keys (all optional):

    ================== ========= ======================================================
    key                default   meaning
    ================== ========= ======================================================
    target             new one   a :class:`MockTarget` to commit into (memory mode)
    folder             null      commit JSON-lines files into this folder instead
    fail_after_batches null      ``write_batch`` raises ``TransientError`` after k batches
    fail_on_commit     false     ``commit_files`` raises ``TransientError``, commits nothing
    validate           true      check records against the schema (``ValidationError``)
    ================== ========= ======================================================

    Args:
        config: The settings above.
        schema: The stream's columns; records are validated against them.

    Raises:
        ConfigurationError: For unknown keys, both ``target`` and ``folder``, or bad values.

    Attributes:
        target: The :class:`MockTarget` of memory mode, ``None`` in folder mode.
        staged: Batches written and not yet committed or aborted (memory mode).
    """

    __version__ = __version__
    requires_sdk = ">=1.0,<2"

    def __init__(self, config: Mapping[str, Any], schema: Sequence[Column] | None = None) -> None:
        super().__init__(config, schema)
        unknown = sorted(set(config) - set(_KNOWN_KEYS))
        if unknown:
            raise ConfigurationError(
                f"MockWriter does not know the config key(s) {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(_KNOWN_KEYS)}"
            )
        target = config.get("target")
        folder = config.get("folder")
        if target is not None and folder is not None:
            raise ConfigurationError("MockWriter takes 'target' (memory) or 'folder', not both")
        if target is not None and not isinstance(target, MockTarget):
            raise ConfigurationError(f"MockWriter 'target' must be a MockTarget, got {type(target).__name__}")
        if folder is not None and (not isinstance(folder, (str, os.PathLike)) or not str(folder)):
            raise ConfigurationError(f"MockWriter 'folder' must be a path, got {folder!r}")
        fail_after = config.get("fail_after_batches")
        if fail_after is not None and (
            isinstance(fail_after, bool) or not isinstance(fail_after, int) or fail_after < 0
        ):
            raise ConfigurationError(
                f"MockWriter 'fail_after_batches' must be an integer >= 0, got {fail_after!r}"
            )
        self.fail_after_batches: int | None = fail_after
        self.fail_on_commit = bool(config.get("fail_on_commit", False))
        self.validate = bool(config.get("validate", True))
        self.folder = None if folder is None else Path(folder)
        self.target: MockTarget | None = None if self.folder is not None else (target or MockTarget())
        self.run_id = uuid.uuid4().hex[:12]
        self.staged: dict[str, list[Record]] = {}
        self._batches_written = 0

    @property
    def _staging(self) -> Path:
        assert self.folder is not None
        return self.folder / "_staging" / self.run_id

    def check_connection(self) -> ConnectionTestResult:
        """Report success; in folder mode, after checking that the folder is writable."""
        if self.folder is None:
            return ConnectionTestResult(success=True, message="in-memory mock target")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            probe = self.folder / f".probe-{self.run_id}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return ConnectionTestResult(
                success=False,
                message=f"cannot write to {self.folder}: {exc.strerror}",
                error_code="TARGET_NOT_WRITABLE",
            )
        return ConnectionTestResult(success=True, message=f"{self.folder} is writable")

    def write_batch(self, records: Batch, file_counter: int) -> list[dict[str, Any]]:
        """Validate and stage one batch.

        Args:
            records: A list of dict records or Arrow data.
            file_counter: The runtime's batch number, used in the staged file's name.

        Returns:
            One metadata entry: ``path``, ``record_count``, ``size_bytes``.

        Raises:
            ValidationError: If a record violates the schema, or the batch is not a batch.
            TransientError: With ``fail_after_batches``, once that many batches were written.
        """
        if self.fail_after_batches is not None and self._batches_written >= self.fail_after_batches:
            raise TransientError(
                f"MockWriter: write failed after {self._batches_written} batches (injected fault)"
            )
        try:
            rows = [dict(r) for r in records_from_batch(records)]
        except TypeError as exc:
            raise ValidationError(f"MockWriter: {exc}") from None
        if self.validate and self.schema:
            violations = find_schema_violations(rows, self.schema, limit=1)
            if violations:
                raise ValidationError(
                    f"MockWriter: {violations[0]}",
                    details={"record_index": violations[0].record_index, "column": violations[0].column},
                )
        text = "".join(json.dumps(row, default=json_default, ensure_ascii=False) + "\n" for row in rows)
        name = f"part-{self.run_id}-{file_counter:06d}.jsonl"
        if self.folder is None:
            path = f"memory://{self.run_id}/{name}"
            self.staged[path] = rows
        else:
            self._staging.mkdir(parents=True, exist_ok=True)
            staged = self._staging / name
            staged.write_text(text, encoding="utf-8")
            path = str(staged)
        self._batches_written += 1
        return [{"path": path, "record_count": len(rows), "size_bytes": len(text.encode("utf-8"))}]

    def commit_files(self, file_metadata: list[dict[str, Any]]) -> dict[str, Any]:
        """Make the listed staged batches visible, all at once.

        Args:
            file_metadata: Entries returned by :meth:`write_batch`.

        Returns:
            ``files_committed`` and ``records_committed``.

        Raises:
            TransientError: With ``fail_on_commit``; nothing is committed then.
            ValidationError: If an entry names nothing this writer staged.
        """
        if self.fail_on_commit:
            raise TransientError("MockWriter: commit failed (injected fault); nothing was committed")
        paths = [str(meta["path"]) for meta in file_metadata]
        if self.folder is None:
            missing = [p for p in paths if p not in self.staged]
            if missing:
                raise ValidationError(f"MockWriter: nothing staged under {missing[0]}")
            records = [r for p in paths for r in self.staged.pop(p)]
            summary = {"files_committed": len(paths), "records_committed": len(records)}
            assert self.target is not None
            self.target.commit(records, summary)
            return summary
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise ValidationError(f"MockWriter: nothing staged under {missing[0]}")
        count = sum(int(meta.get("record_count", 0)) for meta in file_metadata)
        for path in paths:
            os.replace(path, self.folder / Path(path).name)
        self._remove_staging()
        return {"files_committed": len(paths), "records_committed": count}

    def _remove_staging(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)
        try:
            self._staging.parent.rmdir()  # only when no other run stages there
        except OSError:
            pass

    def abort(self) -> None:
        """Discard everything staged and not committed; safe to call twice."""
        self.staged.clear()
        if self.folder is not None:
            self._remove_staging()
