"""The sections of a job file (``source``, ``target``, ``schema``, ``sandbox``, ``state``...), one model each.

:class:`~._model.JobConfig` puts them together; ``docs/runtime.md`` is the reference of
every key, and ``dativo-run schema`` prints their JSON Schema.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator, model_validator

from dativo_plugin_sdk import Column, ColumnType
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._sizes import parse_byte_size

__all__ = [
    "ColumnSpec",
    "IncrementalSpec",
    "JobSection",
    "QuarantineSpec",
    "RetrySpec",
    "SandboxSpec",
    "SourceSpec",
    "StateSpec",
    "TargetSpec",
]


class JobSection(BaseModel):
    """Base of the job file's models: unknown keys refused, frozen, keys or aliases accepted."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class IncrementalSpec(JobSection):
    """``source.incremental``: read only what is new since the last committed run."""

    strategy: Literal["mtime", "cursor"] | None = Field(
        default=None,
        description="Built-in csv/jsonl readers only: 'mtime' (the default: new or modified files) or "
        "'cursor' (rows whose cursor_field exceeds the last committed maximum). Plugins keep their own "
        "state: give them an empty mapping.",
    )
    cursor_field: str | None = Field(default=None, description="Column compared by the 'cursor' strategy.")

    @model_validator(mode="after")
    def _cursor_needs_field(self) -> IncrementalSpec:
        if self.strategy == "cursor" and not self.cursor_field:
            raise ValueError("strategy 'cursor' needs cursor_field: the column whose maximum is remembered")
        return self


class SourceSpec(JobSection):
    """``source``: the reader plugin, its configuration and what to read."""

    plugin: str = Field(
        description="Built-in name (csv, jsonl), 'path/to/file.py:Class' (relative to the job file), "
        "'package.module:Class', an installed plugin's entry-point name, or a native library with the "
        "dativo-ingest ABI, 'path/to/libx.so:create_reader'.",
        min_length=1,
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Passed to the plugin as is.")
    stream: str | None = Field(
        default=None, description="Stream to read; needed when the source has several."
    )
    incremental: IncrementalSpec | None = Field(
        default=None, description="Enables incremental state; absent means a full read every run."
    )
    parallelism: StrictInt | Literal["auto"] = Field(
        default=1,
        description="Partitions extracted at once, each in its own sandbox worker: an integer >= 1, or "
        "'auto' for this machine's cores. Readers that do not split their stream read it in one.",
    )

    @field_validator("parallelism")
    @classmethod
    def _parallelism_at_least_one(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("parallelism must be an integer >= 1 or 'auto'")
        return value

    def partitions_at_once(self) -> int:
        """How many partitions to extract at once: ``parallelism``, ``auto`` being the usable cores."""
        if self.parallelism == "auto":
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
            return max(1, cores or 1)
        return int(self.parallelism)


class TargetSpec(JobSection):
    """``target``: the writer plugin and its configuration."""

    plugin: str = Field(description="Built-in name (parquet) or a plugin reference.", min_length=1)
    config: dict[str, Any] = Field(default_factory=dict, description="Passed to the plugin as is.")


class ColumnSpec(JobSection):
    """One column of the job's ``schema``."""

    name: str = Field(min_length=1)
    type: ColumnType = Field(
        description="string, integer, float, boolean, timestamp, date, decimal, binary, json"
    )
    required: bool = Field(default=False, description="A required column may not be null.")
    description: str | None = None

    def to_column(self) -> Column:
        """Return the SDK :class:`Column` (``required`` means not nullable)."""
        return Column(self.name, self.type, nullable=not self.required, description=self.description)


class SandboxSpec(JobSection):
    """``sandbox``: where plugin code runs and with which limits.

    Unset limits take the backends' defaults (1 core, 1 GiB, 3600 s, 128 processes, 10 GiB
    of disk), capped by the operator's ceilings; a limit above a ceiling fails the run.
    """

    backend: Literal["auto", "process", "docker", "none"] = Field(
        default="auto",
        description="'none' runs plugins in the runtime's process (self_hosted mode only, and only when the "
        "operator's policy allows it); 'auto' picks the strongest sandbox available.",
    )
    cpu: float | None = Field(default=None, gt=0, description="CPU cores.")
    memory: int | None = Field(
        default=None, description="Memory ceiling: bytes, or a size such as '512m', '1g'."
    )
    timeout: float | None = Field(default=None, gt=0, description="Wall-clock limit in seconds.")
    pids: int | None = Field(default=None, gt=0, description="Maximum processes and threads.")
    network: bool = Field(
        default=False,
        description="Whether the plugin may open network connections (in cloud mode only if the operator's "
        "policy sets allow_network: true).",
    )
    disk: int | None = Field(
        default=None,
        description="What the plugin may write in all (its output folder and scratch space): bytes, or a "
        "size such as '512m', '10g'. Default 10 GiB, capped by the operator's ceiling.",
    )
    read_only_paths: list[str] = Field(
        default_factory=list,
        description="Host files or folders the plugin may read, mounted read-only at the same path "
        "(relative paths against the job file's folder; each must exist). Refused in cloud mode unless "
        "the operator's policy sets allow_read_only_paths: true.",
    )

    @field_validator("read_only_paths")
    @classmethod
    def _non_empty_paths(cls, value: list[str]) -> list[str]:
        if any(not item.strip() for item in value):
            raise ValueError("an entry is empty; name a file or folder, such as ./data")
        return value

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _parse_size(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return value
        if isinstance(value, (int, float, str)):  # a bool too: parse_byte_size refuses it
            return parse_byte_size(value, what=str(info.field_name))
        return value

    def to_limits(self) -> SandboxLimits:
        """Return the :class:`SandboxLimits` the sandbox backends take."""
        return SandboxLimits(
            cpu=self.cpu,
            memory_bytes=self.memory,
            timeout_s=self.timeout,
            pids=self.pids,
            network=self.network,
            disk_bytes=self.disk,
        )


class StateSpec(JobSection):
    """``state``: where incremental state is kept."""

    uri: str = Field(
        min_length=1, description="A local folder (relative to the job file) or s3://bucket/prefix."
    )
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO...).")
    region: str | None = None


class RetrySpec(JobSection):
    """``retry``: the budget for errors whose ``retryable`` is true."""

    max_attempts: int = Field(default=3, ge=1, le=100, description="Attempts in total, the first included.")
    initial_delay: float = Field(default=1.0, ge=0, description="Seconds before the first retry.")
    max_delay: float = Field(
        default=60.0, ge=0, description="Cap on every wait between attempts, a server's retry_after included."
    )
    multiplier: float = Field(default=2.0, ge=1, description="Backoff growth per attempt.")
    jitter: bool = Field(default=True, description="Randomise each delay between half and all of it.")


class QuarantineSpec(JobSection):
    """``quarantine``: where ``validation: quarantine`` puts invalid records."""

    path: str = Field(
        min_length=1, description="Local folder (relative to the job file) or s3://bucket/prefix."
    )
    compression: Literal["snappy", "zstd", "gzip", "none"] = "zstd"
