"""``check``, ``validate`` and ``discover``: what a job (or a plugin) would do, short of moving data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml

from dativo_plugin_sdk import ConfigurationError
from dativo_runtime._cli._options import (
    ConfigOption,
    FindLinksOption,
    JsonOption,
    LogFormatOption,
    LogLevelOption,
    errors,
    load,
    setup,
    tracing,
    usage,
    use_find_links,
)
from dativo_runtime._cli._render import emit_json, render_checks, render_discovery, render_validation
from dativo_runtime._exit_codes import ExitCode
from dativo_runtime._secrets import interpolate
from dativo_runtime.connectors._registry import builtin_names

__all__ = ["check", "discover", "parse_settings", "validate"]


def check(
    config: ConfigOption = None,
    find_links: FindLinksOption = None,
    as_json: JsonOption = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "warning",
) -> None:
    """Check the job's source and target connections (tells refused credentials from network failures)."""
    from dativo_runtime._engine._checks import check_exit_code, check_job

    setup(log_format, log_level)
    use_find_links(find_links)
    with errors(as_json):
        job = load(config)
        with tracing():
            reports = check_job(job)
        code = check_exit_code(reports)
        if as_json:
            emit_json(
                {
                    "job": job.job_id,
                    "ok": code == ExitCode.OK,
                    "exit_code": int(code),
                    "checks": [r.to_dict() for r in reports],
                }
            )
        else:
            render_checks(job.job_id, reports)
    raise typer.Exit(int(code))


def validate(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "warning",
) -> None:
    """Check everything short of moving data: job file, plugins, SDK versions, connections, stream, state."""
    from dativo_runtime._engine._validation_plan import validate_job

    setup(log_format, log_level)
    with errors(as_json):
        job = load(config)
        plan = validate_job(job)
        if as_json:
            emit_json(plan.to_dict())
        else:
            render_validation(job.job_id, plan)
    raise typer.Exit(int(plan.exit_code))


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """Read ``--set key=value`` pairs into a config (dotted keys nest, values are YAML scalars)."""
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            usage(f"--set expects key=value, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)) or value is None:
            value = raw if value is None and raw.strip() else value
        target = config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    resolved: dict[str, Any] = interpolate(config, environ=os.environ, base_dir=Path.cwd(), path=("--set",))
    return resolved


def discover(
    *,
    config: ConfigOption = None,
    connector: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--connector", help="A built-in reader (csv, jsonl) to discover without a job file."),
    ] = None,
    plugin: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--plugin",
            help="A plugin reference (file.py:Class, pkg.mod:Class, installed name, libx.so:create_reader).",
        ),
    ] = None,
    settings: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="Reader config as key=value (repeatable; dotted keys nest)."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option("--sandbox", help="Backend for --plugin: auto, process, docker or none (trusted code)."),
    ] = "auto",
    find_links: FindLinksOption = None,
    as_json: JsonOption = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "warning",
) -> None:
    """Discover a source's streams and their schemas (from a job, a built-in connector or a plugin)."""
    from dativo_runtime._engine._discovery import discover_job, discover_plugin

    setup(log_format, log_level)
    use_find_links(find_links)
    given = [x for x in (config, connector, plugin) if x is not None]
    if len(given) != 1:
        usage("give exactly one of --config JOB.yaml, --connector NAME or --plugin REF")
    if settings and config is not None:
        usage("--set applies to --connector and --plugin; a job file carries its own config")
    with errors(as_json):
        if config is not None:
            result = discover_job(load(config))
        else:
            readers = sorted(builtin_names("reader"))
            if connector is not None and connector not in readers:
                raise ConfigurationError(
                    f"--connector {connector!r} is not a built-in reader; use one of "
                    f"{', '.join(readers)}, or --plugin for other plugins",
                    details={"option": "--connector"},
                )
            result = discover_plugin(
                str(connector or plugin), parse_settings(settings or []), backend=backend
            )
        if as_json:
            emit_json(result)
        else:
            render_discovery(result)
