"""The on-disk (or in-bucket) layout of a Parquet target and its commit protocol.

::

    {path}/
      ingest_date=2024-05-01/region=eu/part-{run_id}-00000.parquet    committed data
      _dativo/
        manifests/{run_id}.json        one per committed run: the commit record
        staging/{run_id}/...parquet.staged   files of a run in progress
        staging/{run_id}.lease         held (flock / S3 lease) while that run is alive
        state/                         default home of the job's incremental state

A run stages its files under ``_dativo/staging/{run_id}/``, with a ``.staged`` suffix so
that no ``*.parquet`` glob matches them and under a ``_`` folder that pyarrow, Spark and
Hive skip. It commits by writing ``_dativo/manifests/{run_id}.json`` atomically (a temp
file renamed into place locally; a single PUT on S3): that write is the commit point.
Then it publishes: each staged file is renamed (copied server-side on S3) to its final,
run-unique name, and the staging folder is removed.

A later run recovers what a dead run left: for each staging folder whose lease is free,
it finishes publishing when the manifest exists (roll forward) and deletes the folder
otherwise (roll back). So no file of an uncommitted run ever reaches the data folders,
and a committed run's files all get there.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dativo_plugin_sdk import DativoError
from dativo_runtime._storage._backends import Storage
from dativo_runtime._storage._locks import acquire_lease

__all__ = [
    "MANIFEST_DIR",
    "STAGED_SUFFIX",
    "STAGING_DIR",
    "ManifestFile",
    "ParquetDataset",
    "RecoveryReport",
    "RunManifest",
]

log = logging.getLogger("dativo.parquet")

STAGING_DIR = "_dativo/staging"
MANIFEST_DIR = "_dativo/manifests"
STAGED_SUFFIX = ".staged"
MANIFEST_FORMAT = "dativo.manifest/1"


@dataclass(frozen=True)
class ManifestFile:
    """One committed data file.

    Args:
        path: Final path relative to the dataset root (``region=eu/part-....parquet``).
        staged: Where it was staged, relative to the root.
        record_count: Rows in the file.
        size_bytes: File size.
        row_groups: Number of Parquet row groups.
        partition: Hive partition values, as written in the path.
    """

    path: str
    staged: str
    record_count: int
    size_bytes: int
    row_groups: int = 1
    partition: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON data."""
        return {
            "path": self.path,
            "staged": self.staged,
            "record_count": self.record_count,
            "size_bytes": self.size_bytes,
            "row_groups": self.row_groups,
            "partition": dict(self.partition),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestFile:
        """Rebuild an entry from :meth:`to_dict` output."""
        return cls(
            path=str(data["path"]),
            staged=str(data["staged"]),
            record_count=int(data["record_count"]),
            size_bytes=int(data["size_bytes"]),
            row_groups=int(data.get("row_groups", 1)),
            partition=dict(data.get("partition") or {}),
        )


@dataclass(frozen=True)
class RunManifest:
    """The commit record of one run: which files it added to the dataset.

    Args:
        run_id: The run's id (sortable by start time).
        committed_at: ISO 8601 UTC time of the commit.
        files: The committed files.
        partition_columns: Hive partition keys, outermost first.
        extra: Free-form JSON context (writer version, job).
    """

    run_id: str
    committed_at: str
    files: tuple[ManifestFile, ...]
    partition_columns: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def record_count(self) -> int:
        """Rows committed by the run."""
        return sum(f.record_count for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as JSON data."""
        return {
            "format": MANIFEST_FORMAT,
            "run_id": self.run_id,
            "committed_at": self.committed_at,
            "record_count": self.record_count,
            "partition_columns": list(self.partition_columns),
            "files": [f.to_dict() for f in self.files],
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunManifest:
        """Rebuild a manifest from :meth:`to_dict` output."""
        return cls(
            run_id=str(data["run_id"]),
            committed_at=str(data.get("committed_at", "")),
            files=tuple(ManifestFile.from_dict(f) for f in data.get("files") or []),
            partition_columns=tuple(data.get("partition_columns") or ()),
            extra=dict(data.get("extra") or {}),
        )


@dataclass
class RecoveryReport:
    """What :meth:`ParquetDataset.recover` did to the leftovers of dead runs."""

    rolled_forward: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    skipped_live: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON data."""
        return {
            "rolled_forward": list(self.rolled_forward),
            "rolled_back": list(self.rolled_back),
            "skipped_live": list(self.skipped_live),
        }


class ParquetDataset:
    """A Parquet dataset written by Dativo: its committed runs, staging and recovery.

    Args:
        storage: The dataset's root folder or S3 prefix.

    Example:
        >>> from dativo_runtime._storage._backends import LocalStorage
        >>> dataset = ParquetDataset(LocalStorage("/tmp/does-not-exist"))
        >>> dataset.committed_files()
        []
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # Paths ---------------------------------------------------------------------------

    @staticmethod
    def staging_prefix(run_id: str) -> str:
        """Folder where ``run_id`` stages its files."""
        return f"{STAGING_DIR}/{run_id}"

    @staticmethod
    def lease_path(run_id: str) -> str:
        """The lease a live run holds."""
        return f"{STAGING_DIR}/{run_id}.lease"

    @staticmethod
    def manifest_path(run_id: str) -> str:
        """Where ``run_id``'s manifest is (once committed)."""
        return f"{MANIFEST_DIR}/{run_id}.json"

    # Reading -------------------------------------------------------------------------

    def read_manifest(self, run_id: str) -> RunManifest | None:
        """Return the manifest of ``run_id``, or ``None`` when the run never committed."""
        data = self.storage.read_bytes(self.manifest_path(run_id))
        if data is None:
            return None
        return RunManifest.from_dict(json.loads(data))

    def has_manifest(self, run_id: str) -> bool:
        """Tell whether ``run_id`` committed."""
        return self.storage.stat(self.manifest_path(run_id)) is not None

    def manifests(self) -> list[RunManifest]:
        """Every committed run's manifest, oldest first."""
        result = []
        for info in self.storage.list_files(MANIFEST_DIR):
            name = info.path.rsplit("/", 1)[-1]
            if not name.endswith(".json") or name.startswith("."):
                continue
            data = self.storage.read_bytes(info.path)
            if data:
                result.append(RunManifest.from_dict(json.loads(data)))
        return sorted(result, key=lambda m: m.run_id)

    def committed_files(self) -> list[str]:
        """Full paths (or URIs) of every committed data file, in commit order.

        This is the exact committed snapshot: read it with
        ``pyarrow.dataset.dataset(files, partitioning="hive")`` or DuckDB's
        ``read_parquet([...], hive_partitioning=true)``.
        """
        return [self.storage.location(f.path) for m in self.manifests() for f in m.files]

    # Committing ----------------------------------------------------------------------

    def commit(self, manifest: RunManifest) -> None:
        """Commit a run: write its manifest atomically, then publish its files.

        Args:
            manifest: The run's manifest; every ``staged`` file must exist.

        Raises:
            DativoError: A storage error. If it happens after the manifest is written the
                run is still committed, and the next run finishes publishing.
        """
        self.write_manifest(manifest)
        self.publish(manifest)
        self.storage.delete_tree(self.staging_prefix(manifest.run_id))

    def write_manifest(self, manifest: RunManifest) -> None:
        """Write a run's manifest atomically: the commit point of the run."""
        payload = json.dumps(manifest.to_dict(), indent=2, sort_keys=True).encode()
        self.storage.write_bytes(self.manifest_path(manifest.run_id), payload)

    def publish(self, manifest: RunManifest) -> int:
        """Move a committed run's staged files to their final names (idempotent).

        Returns:
            How many files were moved now (0 when all were already in place).

        Raises:
            DativoError: If a file is neither staged nor published (the dataset lost it).
        """
        moved = 0
        for entry in manifest.files:
            if self.storage.stat(entry.staged) is not None:
                self.storage.move(entry.staged, entry.path)
                moved += 1
            elif self.storage.stat(entry.path) is None:
                raise DativoError(
                    f"committed file {self.storage.location(entry.path)} of run {manifest.run_id} is missing "
                    "and its staged copy is gone; the dataset was changed by something other than Dativo",
                    error_code="COMMITTED_FILE_MISSING",
                    details={"run_id": manifest.run_id, "path": entry.path},
                )
        return moved

    def _staged_runs(self) -> Iterator[str]:
        names = set(self.storage.list_dirs(STAGING_DIR))
        for info in self.storage.list_files(STAGING_DIR):
            rest = info.path[len(STAGING_DIR) + 1 :]
            first = rest.split("/", 1)[0]
            names.add(first.removesuffix(".lease"))
        yield from sorted(n for n in names if n)

    def recover(self, *, exclude: str | None = None, lease_ttl: float = 120.0) -> RecoveryReport:
        """Finish or undo what dead runs left in staging.

        A run is dead when its lease can be taken: its process is gone (local) or its
        lease expired (S3). A dead run with a manifest is rolled forward (its files
        published), one without is rolled back (its staged files deleted).

        Args:
            exclude: A run id to leave alone (the caller's own run).
            lease_ttl: S3 lease time-to-live used while recovering.

        Returns:
            What was rolled forward, rolled back, or left alone because it is alive.
        """
        report = RecoveryReport()
        for run_id in self._staged_runs():
            if run_id == exclude:
                continue
            lease = acquire_lease(
                self.storage, self.lease_path(run_id), owner=f"recovery-of-{run_id}", ttl=lease_ttl
            )
            if lease is None:
                report.skipped_live.append(run_id)
                continue
            try:
                manifest = self.read_manifest(run_id)
                if manifest is not None:
                    self.publish(manifest)
                    report.rolled_forward.append(run_id)
                    log.info("rolled forward committed run %s (published its remaining files)", run_id)
                else:
                    report.rolled_back.append(run_id)
                    log.info("rolled back dead run %s (deleted its staged files)", run_id)
                self.storage.delete_tree(self.staging_prefix(run_id))
            finally:
                lease.release(delete=True)
        return report


def utc_now_iso() -> str:
    """The current UTC time in ISO 8601 with a ``Z``."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
