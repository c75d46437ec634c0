"""The built-in connectors by name: the one list that job files, plugin references and the engine read.

Each built-in connector declares here its name, whether it reads or writes, the class it
stands for, the typed options model that validates its ``config`` (with the connector's
own field names), the run-context settings the engine gives it, and, for a writer that
can tell, how to probe whether a given run committed. The engine asks this registry, never
a connector's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dativo_runtime.connectors._iceberg_options import IcebergOptions
from dativo_runtime.connectors._options import (
    AirbyteOptions,
    ConnectorOptions,
    CsvOptions,
    JobContext,
    JsonlOptions,
    ParquetOptions,
    PostgresOptions,
    SingerOptions,
)

__all__ = [
    "BUILTIN_CONNECTORS",
    "CommitProbe",
    "ConnectorOptions",
    "ConnectorSpec",
    "JobContext",
    "builtin_connector",
    "builtin_names",
]

CommitProbe = Callable[[str, Mapping[str, Any], str], bool]
"""``(location, config, writer_run_id) -> bool``: whether that writer run committed.

``config`` is the writer's resolved config (its S3 options, and what else it needs to find
its commits: the iceberg writer's catalog and table)."""


@dataclass(frozen=True)
class ConnectorSpec:
    """One built-in connector.

    Args:
        name: The name job files use (``plugin: csv``).
        kind: ``reader`` or ``writer``.
        target: The class it stands for, as ``module:Class``.
        options: Its typed options class, which checks its ``config`` with the
            connector's own field names and says which key names its location and
            which settings it takes from the job file.
        run_context: Run settings the engine puts into its config when unset
            (``run_id``: the writer run's id; ``ingest_date``: the run's date;
            ``primary_key``: the discovered stream's primary key, when it has one).
        commit_probe: For a writer, how to tell whether a writer run committed (used to
            settle a run that died between its commit and saving its state).
        environment_option: The config key holding the pip requirement of a plugin
            environment the connector needs (``package``): such a connector runs third-party
            code, so it runs like a third-party plugin, in a sandbox worker given that
            environment (``DATIVO_PLUGIN_ENV``), never in the host process.
        reaches_network: It connects to a server the job's config names (``postgres``). In
            cloud mode such a connector runs in a sandbox worker like a plugin, so that the
            operator's egress policy applies to its connections; elsewhere it runs in-process.
    """

    name: str
    kind: Literal["reader", "writer"]
    target: str
    options: type[ConnectorOptions] | None = None
    run_context: tuple[str, ...] = ()
    commit_probe: CommitProbe | None = None
    environment_option: str | None = None
    reaches_network: bool = False

    @property
    def runs_in_sandbox(self) -> bool:
        """Whether it runs third-party code, so runs in a sandbox worker like a plugin."""
        return self.environment_option is not None

    @property
    def location_option(self) -> str | None:
        """The config key naming what it reads or writes (``path``), if it has one."""
        return self.options.location_option if self.options is not None else None

    @property
    def incremental_strategies(self) -> tuple[str, ...]:
        """The ``source.incremental.strategy`` values the runtime keeps state for with it."""
        return self.options.incremental_strategies if self.options is not None else ()

    def job_settings(self, job: JobContext) -> dict[str, Any]:
        """Settings it takes from the job file, to put into its config where unset.

        Args:
            job: What the job file says besides the connector's config.

        Returns:
            Config keys and values (none for a connector without an options class).
        """
        return self.options.job_settings(job) if self.options is not None else {}


def _parquet_committed(location: str, config: Mapping[str, Any], writer_run_id: str) -> bool:
    """Whether the parquet writer's run ``writer_run_id`` wrote its manifest (its commit point)."""
    from dativo_runtime._storage._backends import open_storage
    from dativo_runtime._storage._s3 import s3_options
    from dativo_runtime.connectors._dataset import ParquetDataset

    return ParquetDataset(open_storage(location, s3_options(config))).has_manifest(writer_run_id)


def _iceberg_committed(location: str, config: Mapping[str, Any], writer_run_id: str) -> bool:
    """Whether a snapshot of the iceberg writer's table names run ``writer_run_id``."""
    from dativo_runtime.connectors._iceberg_table import run_committed

    return run_committed(location, config, writer_run_id)


BUILTIN_CONNECTORS: Mapping[str, ConnectorSpec] = {
    spec.name: spec
    for spec in (
        ConnectorSpec("csv", "reader", "dativo_runtime.connectors:CsvReader", options=CsvOptions),
        ConnectorSpec("jsonl", "reader", "dativo_runtime.connectors:JsonlReader", options=JsonlOptions),
        ConnectorSpec(
            "postgres",
            "reader",
            "dativo_runtime.connectors:PostgresReader",
            options=PostgresOptions,
            reaches_network=True,
        ),
        ConnectorSpec(
            "singer",
            "reader",
            "dativo_runtime.connectors:SingerReader",
            options=SingerOptions,
            environment_option="package",
        ),
        ConnectorSpec(
            "airbyte",
            "reader",
            "dativo_runtime.connectors:AirbyteReader",
            options=AirbyteOptions,
            environment_option="package",
        ),
        ConnectorSpec(
            "parquet",
            "writer",
            "dativo_runtime.connectors:ParquetWriter",
            options=ParquetOptions,
            run_context=("run_id", "ingest_date"),
            commit_probe=_parquet_committed,
        ),
        ConnectorSpec(
            "iceberg",
            "writer",
            "dativo_runtime.connectors:IcebergWriter",
            options=IcebergOptions,
            run_context=("run_id", "primary_key"),
            commit_probe=_iceberg_committed,
        ),
    )
}
"""Built-in connector names and what each declares."""


def builtin_connector(name: str) -> ConnectorSpec | None:
    """The built-in connector called ``name``, or ``None`` if there is none.

    Args:
        name: A plugin reference as a job file writes it.

    Returns:
        Its spec, or ``None`` for anything that is not a built-in name.
    """
    return BUILTIN_CONNECTORS.get(name)


def builtin_names(
    kind: Literal["reader", "writer"], *, where: Callable[[ConnectorSpec], bool] | None = None
) -> list[str]:
    """The names of the built-in connectors of one kind, in declaration order.

    Args:
        kind: ``reader`` or ``writer``.
        where: Keep only the connectors this returns true for.

    Returns:
        Their names, e.g. ``["csv", "jsonl"]`` for the readers.
    """
    return [
        spec.name
        for spec in BUILTIN_CONNECTORS.values()
        if spec.kind == kind and (where is None or where(spec))
    ]
