"""Job files: the YAML an operator writes, validated into pydantic models.

A job moves one stream from a source plugin to a target plugin. Errors in a job file are
raised as one :class:`~dativo_plugin_sdk.ConfigurationError` whose message names the
file, each field path (``source.config``), the problem and the fix; ``details`` holds
the same as data. See ``docs/runtime.md`` for the reference of every key.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from dativo_plugin_sdk import Column, ColumnType, ConfigurationError
from dativo_runtime._plugins._ref import PluginRef
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._secrets import REDACTOR, Redactor, interpolate
from dativo_runtime._sizes import parse_byte_size

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
_BUILTIN_READERS = ("csv", "jsonl")
_BUILTIN_WRITERS = ("parquet",)


def is_remote_uri(value: str) -> bool:
    """Tell whether a path is a URI (``s3://...``) rather than a local path."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value))


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class IncrementalSpec(_Spec):
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


class SourceSpec(_Spec):
    """``source``: the reader plugin, its configuration and what to read."""

    plugin: str = Field(
        description="Built-in name (csv, jsonl), 'path/to/file.py:Class' (relative to the job file), "
        "'package.module:Class', or an installed plugin's entry-point name.",
        min_length=1,
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Passed to the plugin as is.")
    stream: str | None = Field(
        default=None, description="Stream to read; needed when the source has several."
    )
    incremental: IncrementalSpec | None = Field(
        default=None, description="Enables incremental state; absent means a full read every run."
    )


class TargetSpec(_Spec):
    """``target``: the writer plugin and its configuration."""

    plugin: str = Field(description="Built-in name (parquet) or a plugin reference.", min_length=1)
    config: dict[str, Any] = Field(default_factory=dict, description="Passed to the plugin as is.")


class ColumnSpec(_Spec):
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


class SandboxSpec(_Spec):
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


class StateSpec(_Spec):
    """``state``: where incremental state is kept."""

    uri: str = Field(
        min_length=1, description="A local folder (relative to the job file) or s3://bucket/prefix."
    )
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO...).")
    region: str | None = None


class RetrySpec(_Spec):
    """``retry``: the budget for errors whose ``retryable`` is true."""

    max_attempts: int = Field(default=3, ge=1, le=100, description="Attempts in total, the first included.")
    initial_delay: float = Field(default=1.0, ge=0, description="Seconds before the first retry.")
    max_delay: float = Field(
        default=60.0, ge=0, description="Cap on every wait between attempts, a server's retry_after included."
    )
    multiplier: float = Field(default=2.0, ge=1, description="Backoff growth per attempt.")
    jitter: bool = Field(default=True, description="Randomise each delay between half and all of it.")


class QuarantineSpec(_Spec):
    """``quarantine``: where ``validation: quarantine`` puts invalid records."""

    path: str = Field(
        min_length=1, description="Local folder (relative to the job file) or s3://bucket/prefix."
    )
    compression: Literal["snappy", "zstd", "gzip", "none"] = "zstd"


def _columns_before(value: Any) -> Any:
    if isinstance(value, Mapping) and set(value) == {"columns"}:
        return value["columns"]
    return value


class JobConfig(_Spec):
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

    def source_ref(self) -> PluginRef:
        """Parse ``source.plugin`` (file references are relative to the job file)."""
        return PluginRef.parse(self.source.plugin, base_dir=self._base_dir)

    def target_ref(self) -> PluginRef:
        """Parse ``target.plugin``."""
        return PluginRef.parse(self.target.plugin, base_dir=self._base_dir)

    def source_config(self) -> dict[str, Any]:
        """The reader's configuration: built-ins get resolved paths and ``incremental``."""
        config = dict(self.source.config)
        if self.source.plugin in _BUILTIN_READERS:
            config["path"] = self.resolve_path(str(config["path"]))
            if self.source.incremental is not None and "incremental" not in config:
                config["incremental"] = self.source.incremental.model_dump(exclude_none=True)
            if self.source.stream and "stream" not in config:
                config["stream"] = self.source.stream
            if self.source.plugin == "csv" and self.schema_columns and "column_types" not in config:
                # Convert CSV text straight to the job's types (exact decimals, no float detour).
                config["column_types"] = {c.name: c.type.value for c in self.schema_columns}
        return config

    def target_config(self) -> dict[str, Any]:
        """The writer's configuration: the parquet target gets its resolved path."""
        config = dict(self.target.config)
        if self.target.plugin in _BUILTIN_WRITERS:
            config["path"] = self.resolve_path(str(config["path"]))
        return config

    def target_location(self) -> str | None:
        """The parquet target's resolved folder or URI, ``None`` for other targets."""
        if self.target.plugin in _BUILTIN_WRITERS:
            return self.resolve_path(str(self.target.config["path"]))
        return None

    def output_dir(self) -> Path | None:
        """The local folder a writer may write to (``None`` when remote or unknown)."""
        location = self.target_location()
        if location is None:
            path = self.target.config.get("path")
            location = self.resolve_path(str(path)) if isinstance(path, str) and path else None
        if location is None or is_remote_uri(location):
            return None
        return Path(location)

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
        """S3 options for the state store: its own, else the parquet target's."""
        options: dict[str, Any] = {}
        if self.target.plugin in _BUILTIN_WRITERS:
            for key in (
                "endpoint_url",
                "region",
                "aws_access_key_id",
                "aws_secret_access_key",
                "aws_session_token",
            ):
                if self.target.config.get(key):
                    options[key] = self.target.config[key]
        if self.state is not None:
            if self.state.endpoint_url:
                options["endpoint_url"] = self.state.endpoint_url
            if self.state.region:
                options["region"] = self.state.region
        return options


def job_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a job file (what ``dativo-run schema`` prints)."""
    schema = JobConfig.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Dativo job file"
    return schema


# Loading ------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses repeated keys instead of keeping the last one."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in the same mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path) -> Any:
    shown = str(path)
    if not path.exists():
        raise ConfigurationError(
            f"job file {shown!r} does not exist; check the path given to --config",
            details={"file": shown},
        )
    if path.is_dir():
        raise ConfigurationError(
            f"job file {shown!r} is a folder; pass a .yaml file to --config, or use --job-dir for a "
            "folder of jobs",
            details={"file": shown},
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"job file {shown!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8 YAML",
            details={"file": shown},
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"job file {shown!r} cannot be read ({exc.strerror}); check its permissions",
            details={"file": shown},
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(
            f"job file {shown!r} is not valid YAML{where}: {problem}; fix the syntax (indentation, "
            "quotes, a missing ':')",
            details={"file": shown, "line": mark.line + 1 if mark else None},
        ) from None
    return data


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
    data = _read_yaml(file)
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
        raise _render_validation_error(exc, shown) from None
    job._source_file = source_file
    job._base_dir = folder.resolve()
    problems = _consistency_problems(job)
    if problems:
        raise _render_problems(problems, shown)
    return job


def _consistency_problems(job: JobConfig) -> list[dict[str, str]]:
    """Rules that span several keys, reported with the field to fix."""
    problems = []
    source, target = job.source, job.target
    if (
        source.incremental is not None
        and source.incremental.strategy
        and source.plugin not in _BUILTIN_READERS
    ):
        problems.append(
            {
                "field": "source.incremental.strategy",
                "problem": f"applies to the built-in csv and jsonl readers only, not to {source.plugin!r}",
                "fix": "omit it: the plugin keeps its own state",
            }
        )
    if source.plugin in _BUILTIN_READERS and not source.config.get("path"):
        problems.append(
            {
                "field": "source.config.path",
                "problem": f"is required by the {source.plugin} reader",
                "fix": "set it to a file, a glob (data/*.csv) or an s3:// URI",
            }
        )
    if target.plugin in _BUILTIN_WRITERS and not target.config.get("path"):
        problems.append(
            {
                "field": "target.config.path",
                "problem": "is required by the parquet writer",
                "fix": "set it to a folder (output/orders) or s3://bucket/prefix",
            }
        )
    if job.validation == "quarantine" and job.quarantine is None and target.plugin not in _BUILTIN_WRITERS:
        problems.append(
            {
                "field": "quarantine.path",
                "problem": "is required when validation is 'quarantine' and the target is not parquet",
                "fix": "add quarantine: {path: some/folder}",
            }
        )
    return problems


def _render_problems(problems: list[dict[str, str]], shown: str) -> ConfigurationError:
    sentences = []
    for problem in problems:
        field = problem["field"]
        lead = problem["problem"] if field == "(top level)" else f"`{field}` {problem['problem']}"
        sentences.append(f"{lead}; {problem['fix']}." if problem["fix"] else f"{lead}.")
    count = len(problems)
    header = f"job file {shown!r} is invalid ({count} problem{'s' if count != 1 else ''}): "
    return ConfigurationError(
        header + " ".join(sentences),
        details={"file": shown, "errors": REDACTOR.redact(problems)},
    )


# Error rendering ----------------------------------------------------------------------


def _location(loc: Sequence[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _unwrap(annotation: Any) -> Any:
    """Return the model class inside ``X | None``, ``list[X]``, ``Annotated[X, ...]``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            inner = _unwrap(arg)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    model: Any = JobConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next(
            (f for name, f in model.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    kind = error["type"]
    loc = tuple(error["loc"])
    given = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = _keys_of(parent) if parent else []
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{guess[0]}'? " if guess else ""
        return (
            "is not a known key",
            f"{hint}remove or rename it; allowed keys here: {', '.join(allowed)}",
        )
    if kind == "missing":
        model = _model_at(loc)
        needs = f" (with keys: {', '.join(_keys_of(model))})" if model else ""
        return "is required but missing", f"add it{needs}"
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        return f"is {given!r}", f"use one of {expected}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return (
            f"must be a mapping of keys, got {type(given).__name__} {given!r}",
            "write it as 'key: value' lines",
        )
    if kind == "list_type":
        return f"must be a list, got {type(given).__name__}", "write it as '- item' lines"
    if kind == "string_pattern_mismatch":
        return (
            f"is {given!r}",
            "use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if kind.endswith(("_parsing", "_type")):
        return f"is {given!r}: {message}", "fix the value's type"
    if kind == "value_error":
        return f"is invalid: {message}", ""
    return f"is {given!r}: {message}", "fix the value"


def _render_validation_error(exc: PydanticValidationError, shown: str) -> ConfigurationError:
    problems = []
    for error in exc.errors(include_url=False):
        problem, fix = _describe(error)
        problems.append({"field": _location(error["loc"]), "problem": problem, "fix": fix})
    return _render_problems(problems, shown)
