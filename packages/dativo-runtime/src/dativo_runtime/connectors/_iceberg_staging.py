"""What the iceberg writer's runs staged, recorded in the warehouse so that a dead run's files go.

::

    {warehouse}/_dativo/iceberg/staging/
      {run_id}.json     the data files the run created, each listed before it exists
      {run_id}.lease    held (flock / S3 lease) while the run is alive

A data file is referenced by the table only once its run's catalog commit went through, so a
dead run's files are garbage unless a snapshot names the run. :meth:`StagingRecords.recover`
takes each dead run's lease and deletes its files, or only its record when it committed.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._storage._backends import Storage
from dativo_runtime._storage._locks import Lease, acquire_lease

__all__ = ["STAGING_DIR", "StagingRecords"]

log = logging.getLogger("dativo.iceberg")

STAGING_DIR = "_dativo/iceberg/staging"
"""Where runs record their staged data files and hold their leases, under the warehouse."""


class StagingRecords:
    """The staging records and leases of the runs writing through one warehouse.

    Args:
        storage: The warehouse folder or prefix.
        lease_ttl: S3 only: seconds a lease lives without renewal.
    """

    def __init__(self, storage: Storage, *, lease_ttl: float) -> None:
        self.storage = storage
        self.lease_ttl = lease_ttl

    @staticmethod
    def record_path(run_id: str) -> str:
        """Where run ``run_id`` records the data files it stages."""
        return f"{STAGING_DIR}/{run_id}.json"

    @staticmethod
    def lease_path(run_id: str) -> str:
        """The lease a live run holds."""
        return f"{STAGING_DIR}/{run_id}.lease"

    def take_lease(self, run_id: str) -> Lease:
        """Take run ``run_id``'s lease, held until the run commits or aborts.

        Raises:
            ConfigurationError: A live run holds it (run ids must be unique).
        """
        lease = acquire_lease(self.storage, self.lease_path(run_id), owner=run_id, ttl=self.lease_ttl)
        if lease is None:
            raise ConfigurationError(
                f"run id {run_id!r} is already in use by a live run of {self.storage.location('')}; "
                "run ids must be unique",
                details={"run_id": run_id},
            )
        return lease

    def write(self, run_id: str, table: str, files: Sequence[str]) -> None:
        """Record (replace) the data files run ``run_id`` staged for ``table``."""
        payload = {"table": table, "run_id": run_id, "files": list(files)}
        self.storage.write_bytes(self.record_path(run_id), json.dumps(payload).encode())

    def drop(self, run_id: str) -> None:
        """Forget run ``run_id``'s record (it committed, or its files are gone)."""
        with contextlib.suppress(OSError):
            self.storage.delete(self.record_path(run_id))

    def recover(
        self,
        *,
        exclude: str,
        committed: Callable[[str, str], bool],
        delete: Callable[[str], None],
    ) -> dict[str, list[str]]:
        """Delete the data files dead runs staged and never committed.

        Args:
            exclude: The caller's own run.
            committed: ``(table, run_id) -> bool``: whether a snapshot of the table names the run.
            delete: Deletes one data file (a missing one is fine).

        Returns:
            ``rolled_back`` (runs whose files were deleted) and ``committed`` (runs a snapshot
            names, whose record was only dropped).
        """
        report: dict[str, list[str]] = {"rolled_back": [], "committed": []}
        runs = {
            info.path.rsplit("/", 1)[-1].rsplit(".", 1)[0] for info in self.storage.list_files(STAGING_DIR)
        }
        for run_id in sorted(runs - {exclude}):
            lease = acquire_lease(
                self.storage, self.lease_path(run_id), owner=f"recovery-of-{run_id}", ttl=self.lease_ttl
            )
            if lease is None:
                continue  # Alive.
            try:
                record = self._read(run_id)
                files = [str(f) for f in record.get("files") or []]
                kept = bool(files) and committed(str(record.get("table") or ""), run_id)
                if not kept:
                    for path in files:
                        delete(path)
                report["committed" if kept else "rolled_back"].append(run_id)
                self.drop(run_id)
            finally:
                lease.release(delete=True)
        if report["rolled_back"]:
            log.info(
                "deleted the staged data files of dead run(s) %s in %s",
                ", ".join(report["rolled_back"]),
                self.storage.location(""),
            )
        return report

    def _read(self, run_id: str) -> dict[str, Any]:
        data = self.storage.read_bytes(self.record_path(run_id))
        record = json.loads(data) if data else {}
        return record if isinstance(record, dict) else {}
