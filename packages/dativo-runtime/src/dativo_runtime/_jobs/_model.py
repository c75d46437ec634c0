"""Job files: the YAML an operator writes, validated into pydantic models.

A job moves one stream from a source plugin to a target plugin. Errors in a job file are
raised as one :class:`~dativo_plugin_sdk.ConfigurationError` whose message names the
file, each field path (``source.config``), the problem and the fix; ``details`` holds
the same as data. See ``docs/runtime.md`` for the reference of every key.

This module holds :class:`JobConfig` and the two ways in (:func:`load_job`,
:func:`parse_job`); the sections are in :mod:`._sections`, reading the YAML in
:mod:`._reading`, the rules across keys and the error messages in :mod:`._problems`.
What the built-in connectors take from a job (their resolved path, ``incremental``, the
CSV ``column_types``) the connector registry says, never a connector's name here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator
from pydantic import ValidationError as PydanticValidationError

from dativo_plugin_sdk import Column, ConfigurationError
from dativo_runtime._jobs._problems import (
    builtin_of_kind,
    consistency_problems,
    render_problems,
    render_validation_error,
)
from dativo_runtime._jobs._reading import read_job_yaml
from dativo_runtime._jobs._sections import (
    ColumnSpec,
    IncrementalSpec,
    JobSection,
    QuarantineSpec,
    RetrySpec,
    SandboxSpec,
    SourceSpec,
    StateSpec,
    TargetSpec,
)
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._secrets import REDACTOR, Redactor, interpolate
from dativo_runtime._storage._s3 import s3_options
from dativo_runtime.connectors._registry import JobContext

__all__ = [
    "ColumnSpec",
    "IncrementalSpec",
    "JobConfig",
    "QuarantineSpec",
    "RetrySpec",
    "SandboxSpec",
    "SourceSpec",
    "StateSpec",
    "TargetSpec",
    "is_remote_uri",
    "job_json_schema",
    "load_job",
    "parse_job",
]

_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def is_remote_uri(value: str) -> bool:
    """Tell whether a path is a URI (``s3://...``) rather than a local path."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value))


def _columns_before(value: Any) -> Any:
    if isinstance(value, Mapping) and set(value) == {"columns"}:
        return value["columns"]
    return value


class JobConfig(JobSection):
    """A validated job file.

    Build one with :func:`load_job` (from a file) or :func:`parse_job` (from data);
    relative paths are then resolved against the job file's folder.
    """

    version: Literal[1] = Field(default=1, description="Job file format version.")
    tenant: str = Field(default="default", pattern=_NAME_PATTERN, description="Tenant the job belongs to.")
    name: str = Field(pattern=_NAME_PATTERN, description="Job name, unique within the tenant.")
    description: str | None = None
    mode: Literal["self_hosted", "cloud"] = Field(
        default="self_hosted",
        description="'cloud' always runs plugins in a sandbox, with no egress unless the operator allows it "
        "and with default ceilings. The operator's policy (DATIVO_RUNTIME_CONFIG, sandbox.mode) can impose "
        "cloud, which a job's 'self_hosted' cannot lower: the stricter of the two applies.",
    )
    source: SourceSpec
    target: TargetSpec
    schema_columns: list[ColumnSpec] | None = Field(
        default=None,
        alias="schema",
        description="Columns records are validated and coerced to; default: the discovered stream's.",
    )
    validation: Literal["strict", "warn", "quarantine"] = Field(
        default="strict",
        description="strict: an invalid record fails the run; warn: invalid values become null and are "
        "reported; quarantine: invalid records go to the quarantine dataset.",
    )
    quarantine: QuarantineSpec | None = None
    sandbox: SandboxSpec = Field(default_factory=SandboxSpec)
    state: StateSpec | None = Field(
        default=None,
        description="Default: {target path}/_dativo/state for the parquet target, else .dativo/state "
        "beside the job file.",
    )
    retry: RetrySpec = Field(default_factory=RetrySpec)
    schedule: str | None = Field(
        default=None,
        description="When `dativo-run serve` runs the job: cron syntax ('*/15 * * * *'), '@hourly'/'@daily', "
        "or six fields where the sixth is seconds. Ignored by `dativo-run run`.",
    )

    _source_file: Path | None = PrivateAttr(default=None)
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("schedule")
    @classmethod
    def _cron_expression(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not croniter.is_valid(value.strip()):
            raise ValueError(
                f"{value!r} is not a cron expression; write five fields such as '*/15 * * * *' (minute hour "
                "day month weekday), a shortcut such as '@hourly', or add a sixth field for seconds "
                "('* * * * * */10')"
            )
        return value.strip()

    @field_validator("schema_columns", mode="before")
    @classmethod
    def _accept_columns_mapping(cls, value: Any) -> Any:
        return _columns_before(value)

    @field_validator("schema_columns")
    @classmethod
    def _unique_columns(cls, value: list[ColumnSpec] | None) -> list[ColumnSpec] | None:
        if value is not None:
            names = [c.name for c in value]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"column names repeat: {', '.join(duplicates)}; each column once")
        return value

    # Derived values -------------------------------------------------------------------

    @property
    def source_file(self) -> Path | None:
        """The job file this was loaded from, if any."""
        return self._source_file

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against (the job file's folder)."""
        return self._base_dir

    @property
    def job_id(self) -> str:
        """``tenant/name``."""
        return f"{self.tenant}/{self.name}"

    @property
    def display_name(self) -> str:
        """The job file path when there is one, else the job id (for messages)."""
        return str(self._source_file) if self._source_file else self.job_id

    def resolve_path(self, value: str) -> str:
        """Return a local path made absolute against :attr:`base_dir`; URIs unchanged."""
        if is_remote_uri(value):
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (self._base_dir / path).resolve())

    def read_only_paths(self) -> tuple[Path, ...]:
        """``sandbox.read_only_paths``, resolved against :attr:`base_dir` (symbolic links followed)."""
        return tuple(
            Path(self.resolve_path(str(Path(item).expanduser()))).resolve()
            for item in self.sandbox.read_only_paths
        )

    def source_ref(self) -> PluginRef:
        """Parse ``source.plugin`` (file references are relative to the job file)."""
        return PluginRef.parse(self.source.plugin, base_dir=self._base_dir)

    def target_ref(self) -> PluginRef:
        """Parse ``target.plugin``."""
        return PluginRef.parse(self.target.plugin, base_dir=self._base_dir)

    def source_config(self) -> dict[str, Any]:
        """The reader's configuration: a built-in reader gets its resolved path and job settings.

        A built-in reader's location (``path``) is resolved against the job file's folder,
        and the settings its options class takes from the job (``incremental``, ``stream``,
        and for ``csv`` the ``column_types`` of the job's schema) are added where unset.
        """
        config = dict(self.source.config)
        spec = builtin_of_kind(self.source.plugin, "reader")
        if spec is None:
            return config
        if spec.location_option is not None:
            config[spec.location_option] = self.resolve_path(str(config[spec.location_option]))
        for key, value in spec.job_settings(self.connector_context()).items():
            config.setdefault(key, value)
        return config

    def target_config(self) -> dict[str, Any]:
        """The writer's configuration, its output folder resolved against the job file's folder.

        A built-in writer (parquet) gets its resolved location. Any other writer with a local
        ``path`` gets :meth:`output_dir`, the absolute folder a sandbox mounts for it, so the
        plugin writes where it may on every backend, wherever the command runs from.
        """
        config = dict(self.target.config)
        spec = builtin_of_kind(self.target.plugin, "writer")
        if spec is not None and spec.location_option is not None:
            config[spec.location_option] = self.resolve_path(str(config[spec.location_option]))
            if spec.options is not None:
                config = spec.options.resolve_paths(config, self.resolve_path)
        elif spec is None:
            folder = self.output_dir()
            if folder is not None:
                config["path"] = str(folder)
        return config

    def target_location(self) -> str | None:
        """A built-in writer's (parquet's) resolved folder or URI, ``None`` for other targets."""
        spec = builtin_of_kind(self.target.plugin, "writer")
        if spec is None or spec.location_option is None:
            return None
        return self.resolve_path(str(self.target.config[spec.location_option]))

    def connector_context(self) -> JobContext:
        """What this job says, besides a connector's config, that a built-in connector may take."""
        incremental = self.source.incremental
        return JobContext(
            stream=self.source.stream,
            incremental=incremental.model_dump(exclude_none=True) if incremental is not None else None,
            columns=self.columns(),
        )

    def output_dir(self) -> Path | None:
        """The local folder a writer may write to (``None`` when remote or unknown)."""
        location = self.target_location()
        if location is None:
            path = self.target.config.get("path")
            location = self.resolve_path(str(path)) if isinstance(path, str) and path else None
        if location is None or is_remote_uri(location):
            return None
        # Resolved like the folder a sandbox mounts (symlinks too), so a plugin finds it there.
        return Path(location).resolve()

    def columns(self) -> list[Column] | None:
        """The job's schema as SDK columns, or ``None`` when it has none."""
        if self.schema_columns is None:
            return None
        return [c.to_column() for c in self.schema_columns]

    def quarantine_location(self) -> str | None:
        """Where quarantined records go: ``quarantine.path`` or ``{target path}_quarantine``."""
        if self.quarantine is not None:
            return self.resolve_path(self.quarantine.path)
        location = self.target_location()
        return None if location is None else location.rstrip("/") + "_quarantine"

    def state_location(self) -> str:
        """Where state lives: ``state.uri``, ``{target}/_dativo/state`` or ``.dativo/state``."""
        if self.state is not None:
            return self.resolve_path(self.state.uri)
        location = self.target_location()
        if location is not None:
            return location.rstrip("/") + "/_dativo/state"
        return str((self._base_dir / ".dativo" / "state").resolve())

    def state_storage_options(self) -> dict[str, Any]:
        """S3 options for the state store: its own, else those of the target it lives beside."""
        spec = builtin_of_kind(self.target.plugin, "writer")
        beside_target = spec is not None and spec.location_option is not None
        options = s3_options(self.target.config) if beside_target else {}
        if self.state is not None:
            if self.state.endpoint_url:
                options["endpoint_url"] = self.state.endpoint_url
            if self.state.region:
                options["region"] = self.state.region
        return options


_PLUGIN_CONFIG_DEF = "PluginConfig"


def _rebased(value: Any, base: str) -> Any:
    """A copy of a schema whose local ``$ref``s (``#...``) point under ``base`` instead of its root."""
    if isinstance(value, Mapping):
        copy = {key: _rebased(item, base) for key, item in value.items()}
        ref = copy.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            copy["$ref"] = base + ref[1:]
        return copy
    if isinstance(value, list):
        return [_rebased(item, base) for item in value]
    return value


def job_json_schema(
    config_schema: Mapping[str, Any] | None = None, *, role: Literal["source", "target"] = "source"
) -> dict[str, Any]:
    """Return the JSON Schema of a job file (what ``dativo-run schema`` prints).

    Args:
        config_schema: A plugin's ``config_schema``, to embed at ``source.config`` or
            ``target.config`` (``schema --plugin``), so an editor completes its keys.
        role: Where to embed it: ``source`` for a reader, ``target`` for a writer.

    Returns:
        The JSON Schema (draft 2020-12).
    """
    schema = JobConfig.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Dativo job file"
    if config_schema is not None:
        base = f"#/$defs/{_PLUGIN_CONFIG_DEF}"
        embedded = _rebased({k: v for k, v in config_schema.items() if k != "$schema"}, base)
        schema["$defs"][_PLUGIN_CONFIG_DEF] = embedded
        section = "SourceSpec" if role == "source" else "TargetSpec"
        schema["$defs"][section]["properties"]["config"] = {
            "$ref": base,
            "description": embedded.get("description")
            or embedded.get("title")
            or "The plugin's config, as its config_schema describes it.",
        }
    return schema


def load_job(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    redactor: Redactor = REDACTOR,
) -> JobConfig:
    """Read, interpolate and validate a job file.

    Args:
        path: The YAML job file.
        environ: Environment for ``${VAR}`` references; ``os.environ`` by default.
        redactor: Where secret values found in the file are registered.

    Returns:
        The validated job, remembering its file and folder.

    Raises:
        ConfigurationError: If the file is missing, unreadable, not YAML, or invalid; the
            message names the file, the field path and the fix.
    """
    file = Path(path).expanduser()
    data = read_job_yaml(file)
    return parse_job(data, source_file=file.resolve(), environ=environ, redactor=redactor)


def parse_job(
    data: Any,
    *,
    source_file: Path | None = None,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    redactor: Redactor = REDACTOR,
) -> JobConfig:
    """Validate job data (as parsed from YAML) into a :class:`JobConfig`.

    Args:
        data: The parsed document.
        source_file: The file it came from, for messages and relative paths.
        base_dir: Folder for relative paths; the file's folder (or the working
            directory) by default.
        environ: Environment for ``${VAR}`` references; ``os.environ`` by default.
        redactor: Where secret values are registered.

    Returns:
        The validated job.

    Raises:
        ConfigurationError: If the data is not a valid job.
    """
    shown = str(source_file) if source_file else "job"
    folder = base_dir or (source_file.parent if source_file else Path.cwd())
    if data is None:
        raise ConfigurationError(
            f"{shown}: the job file is empty; it needs at least name, source and target "
            "(see `dativo-run schema` or docs/runtime.md)",
            details={"file": shown},
        )
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            f"{shown}: the top level of a job file must be a mapping of keys (name:, source:, target:), "
            f"not a {type(data).__name__}",
            details={"file": shown},
        )
    try:
        resolved = interpolate(
            dict(data), environ=os.environ if environ is None else environ, base_dir=folder, redactor=redactor
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{shown}: {exc.message}", details={"file": shown, **exc.details}) from None
    try:
        job = JobConfig.model_validate(resolved)
    except PydanticValidationError as exc:
        raise render_validation_error(exc, shown, JobConfig) from None
    job._source_file = source_file
    job._base_dir = folder.resolve()
    problems = consistency_problems(job)
    if problems:
        raise render_problems(problems, shown)
    return job
