"""``files``: what a job's target committed: a parquet target's manifests, an iceberg table's snapshots."""

from __future__ import annotations

from typing import Any

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._engine._commit import target_storage_options
from dativo_runtime._jobs._model import JobConfig, is_remote_uri
from dativo_runtime._storage._backends import open_storage
from dativo_runtime.connectors._dataset import ParquetDataset
from dativo_runtime.connectors._iceberg_options import IcebergOptions
from dativo_runtime.connectors._registry import builtin_connector

__all__ = ["committed_files"]


def committed_files(job: JobConfig) -> dict[str, Any]:
    """List the files committed to a parquet target (its run manifests) or an iceberg table.

    For an iceberg table, ``files`` are the data files of its current snapshot and ``runs``
    its last snapshots (each with the ``run_id`` that committed it, if a Dativo run did).

    Raises:
        ConfigurationError: If the job's target is neither the built-in parquet nor iceberg writer.
    """
    location = job.target_location()
    if location is None:
        raise ConfigurationError(
            f"{job.display_name}: `files` lists what the parquet or iceberg target committed; this job's "
            f"target is {job.target.plugin!r}",
            details={"field": "target.plugin"},
        )
    spec = builtin_connector(job.target.plugin)
    if spec is not None and spec.options is not None and issubclass(spec.options, IcebergOptions):
        return _iceberg_files(job)
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


def _iceberg_files(job: JobConfig) -> dict[str, Any]:
    from dativo_runtime.connectors._iceberg_table import committed_data_files

    listing = committed_data_files(IcebergOptions.from_config(job.target_config()))
    table_location = listing["location"] or job.target_location() or ""
    return {**listing, "location": table_location, "local": not is_remote_uri(table_location)}
