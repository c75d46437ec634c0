"""``files``: what a job's parquet target committed, read from its run manifests."""

from __future__ import annotations

from typing import Any

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._engine._commit import target_storage_options
from dativo_runtime._jobs._model import JobConfig, is_remote_uri
from dativo_runtime._storage._backends import open_storage
from dativo_runtime.connectors._dataset import ParquetDataset

__all__ = ["committed_files"]


def committed_files(job: JobConfig) -> dict[str, Any]:
    """List the files committed to a parquet target, from its run manifests.

    Raises:
        ConfigurationError: If the job's target is not the built-in parquet writer.
    """
    location = job.target_location()
    if location is None:
        raise ConfigurationError(
            f"{job.display_name}: `files` lists what the parquet target committed; this job's target is "
            f"{job.target.plugin!r}",
            details={"field": "target.plugin"},
        )
    options = target_storage_options(job)
    dataset = ParquetDataset(open_storage(location, options))
    manifests = dataset.manifests()
    return {
        "location": location,
        "local": not is_remote_uri(location),
        "runs": [
            {
                "run_id": m.run_id,
                "committed_at": m.committed_at,
                "record_count": m.record_count,
                "files": len(m.files),
            }
            for m in manifests
        ],
        "record_count": sum(m.record_count for m in manifests),
        "files": [dataset.storage.location(f.path) for m in manifests for f in m.files],
    }
