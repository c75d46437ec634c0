"""Incremental state of jobs, kept in a local folder or under an S3 prefix.

Layout under the state location::

    {tenant}/{job}.json           the committed state: per-stream values
    {tenant}/{job}.pending.json   written just before a commit, removed after
    {tenant}/{job}.lock           held while a run of the job is in progress

The pending record makes the pair "commit the data, then save the state" safe against a
crash in between: the next run finds it, asks the target whether that run committed (a
parquet target answers from its manifests), and saves the state if it did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dativo_plugin_sdk import ConfigurationError, PluginError, TransientError
from dativo_runtime._storage._backends import Storage, open_storage
from dativo_runtime._storage._locks import Lease, acquire_lease, read_lease

__all__ = ["JobState", "PendingCommit", "StateStore"]

STATE_FORMAT = "dativo.state/1"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass
class JobState:
    """The saved state of one job: a state dict per stream (and per partition), and which run saved it.

    Attributes:
        streams: The state of each stream read whole (unpartitioned), by stream key.
        partitions: The state of each partition of a partitioned stream: stream key, then
            partition name. A partition with none yet starts from its stream's entry in
            ``streams``.
        run_id: The run that saved the state.
        updated_at: When it did.
    """

    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    partitions: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    run_id: str | None = None
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the state as JSON data."""
        data: dict[str, Any] = {
            "format": STATE_FORMAT,
            "run_id": self.run_id,
            "updated_at": self.updated_at,
            "streams": self.streams,
        }
        if self.partitions:
            data["partitions"] = self.partitions
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobState:
        """Rebuild a state from :meth:`to_dict` output."""
        return cls(
            streams={str(k): dict(v) for k, v in (data.get("streams") or {}).items()},
            partitions={
                str(stream): {str(name): dict(values) for name, values in dict(by_name).items()}
                for stream, by_name in (data.get("partitions") or {}).items()
            },
            run_id=data.get("run_id"),
            updated_at=data.get("updated_at"),
        )

    def partition_states(self, stream_key: str) -> dict[str, dict[str, Any]]:
        """Every partition's committed state of stream ``stream_key``, by partition name."""
        return {name: dict(values) for name, values in self.partitions.get(stream_key, {}).items()}

    def state_of_partition(self, stream_key: str, name: str) -> dict[str, Any]:
        """Where partition ``name`` resumes: its own state, else its stream's unpartitioned state."""
        own = self.partitions.get(stream_key, {}).get(name)
        return dict(own if own is not None else self.streams.get(stream_key, {}))


@dataclass
class PendingCommit:
    """What a run is about to commit: the state to save once the commit is known to have happened."""

    run_id: str
    writer_run_id: str | None
    target: str | None
    state: JobState

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON data."""
        return {
            "run_id": self.run_id,
            "writer_run_id": self.writer_run_id,
            "target": self.target,
            "state": self.state.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingCommit:
        """Rebuild the record from :meth:`to_dict` output."""
        return cls(
            run_id=str(data["run_id"]),
            writer_run_id=data.get("writer_run_id"),
            target=data.get("target"),
            state=JobState.from_dict(data.get("state") or {}),
        )


class StateStore:
    """Reads and writes job state at a location (folder or ``s3://`` prefix).

    Args:
        location: Absolute folder or ``s3://bucket/prefix``.
        options: S3 options (endpoint, region, credentials).
    """

    def __init__(self, location: str, options: Mapping[str, Any] | None = None) -> None:
        self.location = location
        self.storage: Storage = open_storage(location, options)

    @staticmethod
    def _base(tenant: str, job: str) -> str:
        return f"{tenant}/{job}"

    def uri(self, tenant: str, job: str) -> str:
        """Where the job's state file is."""
        return self.storage.location(f"{self._base(tenant, job)}.json")

    def _decode(self, data: bytes, name: str) -> Any:
        try:
            return json.loads(data, parse_constant=_refuse_constant)
        except ValueError as exc:
            where = self.storage.location(name)
            raise ConfigurationError(
                f"the state file {where} is not valid JSON ({exc}); fix it, or forget the job's state "
                "with 'dativo-run state reset'",
                details={"state_uri": where},
            ) from None

    @staticmethod
    def _encode(document: Mapping[str, Any]) -> bytes:
        try:
            return json.dumps(document, indent=2, sort_keys=True, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise PluginError(
                f"the plugin's state cannot be saved: {exc} (state holds JSON values only: no NaN or "
                "Infinity, no objects); nothing was committed",
                details={"problem": str(exc)},
            ) from None

    def load(self, tenant: str, job: str) -> JobState:
        """Return the job's committed state (empty when it never ran).

        Raises:
            ConfigurationError: If the state file is not strict JSON (``NaN`` included).
        """
        name = f"{self._base(tenant, job)}.json"
        data = self.storage.read_bytes(name)
        return JobState() if data is None else JobState.from_dict(self._decode(data, name))

    def save(self, tenant: str, job: str, state: JobState) -> None:
        """Replace the job's committed state atomically.

        Raises:
            PluginError: If the state is not strict JSON (a ``NaN``, an object).
        """
        self.storage.write_bytes(f"{self._base(tenant, job)}.json", self._encode(state.to_dict()))

    def reset(self, tenant: str, job: str) -> None:
        """Forget the job's state, so that its next run reads everything."""
        self.storage.delete(f"{self._base(tenant, job)}.json")
        self.storage.delete(f"{self._base(tenant, job)}.pending.json")

    def load_pending(self, tenant: str, job: str) -> PendingCommit | None:
        """Return the pending-commit record a dead run may have left."""
        name = f"{self._base(tenant, job)}.pending.json"
        data = self.storage.read_bytes(name)
        return None if data is None else PendingCommit.from_dict(self._decode(data, name))

    def save_pending(self, tenant: str, job: str, pending: PendingCommit) -> None:
        """Record what is about to be committed (before the commit: a bad state commits nothing)."""
        self.storage.write_bytes(f"{self._base(tenant, job)}.pending.json", self._encode(pending.to_dict()))

    def clear_pending(self, tenant: str, job: str) -> None:
        """Remove the pending-commit record."""
        self.storage.delete(f"{self._base(tenant, job)}.pending.json")

    def lock(self, tenant: str, job: str, *, owner: str, ttl: float = 120.0) -> Lease:
        """Take the job's lock, so that two runs of one job never overlap.

        Args:
            tenant: The job's tenant.
            job: The job's name.
            owner: The run id taking it.
            ttl: S3 only: lease lifetime without renewal.

        Returns:
            The held lease (release it when the run ends).

        Raises:
            TransientError: If another live run holds it (retry later: exit code 75).
        """
        path = f"{self._base(tenant, job)}.lock"
        lease = acquire_lease(self.storage, path, owner=owner, ttl=ttl)
        if lease is None:
            holder = read_lease(self.storage, path) or {}
            who = holder.get("owner", "another run")
            where = f" (pid {holder['pid']} on {holder.get('host', '?')})" if holder.get("pid") else ""
            raise TransientError(
                f"job {tenant}/{job} is already running as run {who}{where}; two runs of one job may not "
                "overlap. Wait for it to finish, then run again",
                details={"tenant": tenant, "job": job, "holder": who},
            )
        return lease
