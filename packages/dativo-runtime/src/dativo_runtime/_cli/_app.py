"""``dativo-run``: the command line. Each command parses its options and calls a plain function."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer
import yaml

from dativo_plugin_sdk import PLUGIN_SDK_VERSION, ConfigurationError, DativoError
from dativo_runtime._cli._render import (
    console,
    emit_json,
    error_console,
    progress_bar,
    render_run,
    render_summary,
)
from dativo_runtime._engine._termination import install_signal_handlers
from dativo_runtime._exit_codes import ExitCode, exit_code_for
from dativo_runtime._jobs._model import JobConfig, job_json_schema, load_job
from dativo_runtime._observability._logging import configure_logging
from dativo_runtime._plugins._ref import BUILTIN_PLUGINS
from dativo_runtime._sandbox._commands import sandbox_app
from dativo_runtime._secrets import REDACTOR, interpolate
from dativo_runtime._version import __version__

if TYPE_CHECKING:
    from dativo_runtime._batch._runner import JobOutcome

__all__ = ["app", "main"]

EXIT_CODES_HELP = """
Exit codes: 0 success; 1 failure that retrying will not fix; 2 usage or configuration
error; 65 data validation failure (strict mode); 75 retryable failure (retry later);
77 authentication failure; 143 or 130 stopped by SIGTERM or Ctrl-C (nothing committed).
See docs/runtime.md.
"""

app = typer.Typer(
    name="dativo-run",
    help="Run Dativo jobs: load plugins, move records to Parquet on disk or S3.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
plugins_app = typer.Typer(help="List and inspect plugins.", no_args_is_help=True, epilog=EXIT_CODES_HELP)
state_app = typer.Typer(
    help="Show or reset a job's incremental state.", no_args_is_help=True, epilog=EXIT_CODES_HELP
)
app.add_typer(plugins_app, name="plugins")
app.add_typer(state_app, name="state")
app.add_typer(sandbox_app, name="sandbox")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout for machines.")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="The job file (YAML).")]  # noqa: UP045
LogFormatOption = Annotated[
    str,
    typer.Option(
        "--log-format",
        envvar="DATIVO_LOG_FORMAT",
        help="Logs on stderr: json, text, or auto (text on a terminal, JSON lines otherwise).",
    ),
]
LogLevelOption = Annotated[
    str, typer.Option("--log-level", envvar="DATIVO_LOG_LEVEL", help="debug, info, warning or error.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dativo-run {__version__} (dativo-plugin-sdk {PLUGIN_SDK_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Run Dativo jobs: load plugins, move records to Parquet on disk or S3."""


def _setup(log_format: str, log_level: str) -> None:
    if log_format not in ("auto", "json", "text"):
        _usage(f"--log-format must be auto, json or text, not {log_format!r}")
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        _usage(f"--log-level must be debug, info, warning or error, not {log_level!r}")
    configure_logging(fmt=log_format, level=log_level.lower())  # type: ignore[arg-type]


def _child_env(log_format: str, log_level: str) -> dict[str, str]:
    """The environment of child runs: this one, with this process's log settings (they share stderr)."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    return {**os.environ, "DATIVO_LOG_FORMAT": log_format, "DATIVO_LOG_LEVEL": log_level.lower()}


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    """OpenTelemetry for one command: on only when the OTEL_* variables ask, flushed at the end."""
    from dativo_runtime._observability._tracing import configure_tracing

    tracing = configure_tracing()
    try:
        yield
    finally:
        tracing.shutdown()


def _usage(message: str) -> NoReturn:
    from rich.text import Text

    error_console().print(Text(f"error: {message}"))
    raise typer.Exit(int(ExitCode.USAGE))


def _fail(exc: DativoError, as_json: bool) -> NoReturn:
    from rich.text import Text

    code = exit_code_for(exc)
    if as_json:
        emit_json({"ok": False, "exit_code": int(code), "error": exc.to_dict()})
    else:
        error_console().print(Text(f"error: {REDACTOR.redact_text(exc.message)}"))
    raise typer.Exit(int(code))


@contextlib.contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """Turn errors into a message and an exit code; tracebacks only with DATIVO_DEBUG=1."""
    try:
        yield
    except typer.Exit:
        raise
    except DativoError as exc:
        _fail(exc, as_json)
    except KeyboardInterrupt:
        error_console().print("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        if os.environ.get("DATIVO_DEBUG"):
            from rich.text import Text

            error_console().print(Text(traceback.format_exc()))
        _fail(
            DativoError(
                f"internal error: {type(exc).__name__}: {exc} (set DATIVO_DEBUG=1 for the traceback)",
                error_code="INTERNAL_ERROR",
            ),
            as_json,
        )


def _load(config: Path | None) -> JobConfig:
    if config is None:
        raise ConfigurationError("--config JOB.yaml is required", details={"option": "--config"})
    return load_job(config)


# run ----------------------------------------------------------------------------------


def _job_files(job_dir: Path) -> list[Path]:
    if not job_dir.is_dir():
        raise ConfigurationError(
            f"--job-dir {str(job_dir)!r} is not a folder; pass a folder of .yaml job files",
            details={"option": "--job-dir"},
        )
    files = sorted(
        p for p in job_dir.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith((".", "_"))
    )
    if not files:
        raise ConfigurationError(
            f"--job-dir {str(job_dir)!r} holds no .yaml or .yml job files", details={"option": "--job-dir"}
        )
    return files


def _print_outcome(outcome: JobOutcome) -> None:
    from rich.text import Text

    if outcome.result is not None:
        render_run(outcome.result, console())
    elif outcome.job is None:
        error_console().print(Text(f"✗ {outcome.path}: {outcome.error_message}"))
    else:
        name = f"{outcome.tenant}/{outcome.job}"
        if outcome.status == "succeeded":
            counts = outcome.summary
            console().print(
                Text(
                    f"✓ {name} succeeded in {outcome.duration_s:.2f}s: read {counts.get('records_read', 0)}, "
                    f"written {counts.get('records_written', 0)}"
                )
            )
        else:
            reason = outcome.error_message or outcome.status
            error_console().print(
                Text(f"✗ {name} {outcome.status} with exit code {outcome.exit_code}: {reason}")
            )


@app.command(epilog=EXIT_CODES_HELP)
def run(
    *,
    config: ConfigOption = None,
    job_dir: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--job-dir", help="Run every .yaml/.yml job in this folder."),
    ] = None,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            min=1,
            help="With --job-dir: jobs at once, each in its own process (default 1: one after another).",
        ),
    ] = 1,
    per_tenant_limit: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--per-tenant-limit", min=1, help="With --parallel: jobs of one tenant at once."),
    ] = None,
    metrics_port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--metrics-port", min=0, max=65535, help="Serve Prometheus /metrics here while running."
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address for --metrics-port; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    pushgateway: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--pushgateway", help="Push each job's metrics to this Pushgateway URL when it ends."),
    ] = None,
    metrics_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--metrics-file",
            help="Write each job's metrics to this node-exporter textfile ({tenant} and {job} are replaced).",
        ),
    ] = None,
    as_json: JsonOption = False,
    progress: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal)."
        ),
    ] = None,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "info",
) -> None:
    """Run a job (or every job in a folder): extract, validate, write Parquet, commit."""
    from dativo_runtime._batch._runner import run_jobs
    from dativo_runtime._observability._exposition import MetricsExport
    from dativo_runtime._observability._metrics import RunMetrics

    _setup(log_format, log_level)
    if (config is None) == (job_dir is None):
        _usage("give exactly one of --config JOB.yaml or --job-dir DIR")
    if job_dir is None and (parallel != 1 or per_tenant_limit is not None):
        _usage("--parallel and --per-tenant-limit apply to --job-dir")
    with _errors(as_json):
        if config is not None:
            load_job(config)  # A bad job file is a usage error of this command (exit 2).
        paths = [config] if config is not None else _job_files(job_dir)  # type: ignore[arg-type]
        show_progress = bool(progress if progress is not None else sys.stderr.isatty()) and not as_json
        metrics = RunMetrics()
        export = MetricsExport(
            metrics, port=metrics_port, host=metrics_host, pushgateway=pushgateway, metrics_file=metrics_file
        )
        with _tracing(), export:
            report = run_jobs(
                paths,
                parallel=parallel,
                per_tenant_limit=per_tenant_limit,
                metrics=metrics,
                export=export,
                on_outcome=None if as_json else _print_outcome,
                progress=lambda job: progress_bar(show_progress, job.job_id),
                env=_child_env(log_format, log_level),
            )
        exit_code = report.exit_code
        if as_json:
            emit_json(report.outcomes[0].summary if config is not None else report.to_dict())
        elif job_dir is not None:
            render_summary(report, console())
    raise typer.Exit(int(exit_code))


@app.command(epilog=EXIT_CODES_HELP)
def serve(
    *,
    job_dir: Annotated[
        Path, typer.Option("--job-dir", help="Folder of job files; those with a schedule are run.")
    ],
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port for /metrics, /healthz, /readyz, /api/jobs.")
    ],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "0.0.0.0",
    max_parallel: Annotated[int, typer.Option("--max-parallel", min=1, help="Runs at once, in total.")] = 4,
    per_tenant_limit: Annotated[
        int, typer.Option("--per-tenant-limit", "--max-per-tenant", min=1, help="Runs at once per tenant.")
    ] = 2,
    grace_period: Annotated[
        float, typer.Option("--grace-period", min=0, help="Seconds running jobs get to finish after SIGTERM.")
    ] = 30.0,
    timezone: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--timezone", help="IANA time zone schedules are read in (default: the server's)."),
    ] = None,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "info",
) -> None:
    """Run the scheduled jobs of a folder until SIGTERM; serve metrics, health probes and a status API."""
    from dativo_runtime._serve import (
        ReadinessCheck,
        SubprocessJobRunner,
        job_readiness_checks,
        load_scheduled_jobs,
    )
    from dativo_runtime._serve import serve as serve_jobs

    _setup(log_format, log_level)
    with _errors(False):
        jobs = load_scheduled_jobs(job_dir)
        # Each run's summary is kept for the status API, not printed on serve's stdout.
        runner = SubprocessJobRunner(env=_child_env(log_format, log_level), json_summary=True)
        code = serve_jobs(
            job_dir,
            port,
            host=host,
            runner=runner,
            readiness_checks=[ReadinessCheck("runner", runner.check), *job_readiness_checks(jobs)],
            max_parallel=max_parallel,
            max_per_tenant=per_tenant_limit,
            grace_period=grace_period,
            timezone=timezone,
        )
    raise typer.Exit(code)


# check / validate / discover ----------------------------------------------------------


@app.command(epilog=EXIT_CODES_HELP)
def check(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "warning",
) -> None:
    """Check the job's source and target connections (tells refused credentials from network failures)."""
    from rich.table import Table
    from rich.text import Text

    from dativo_runtime._engine._operations import check_exit_code, check_job

    _setup(log_format, log_level)
    with _errors(as_json):
        job = _load(config)
        with _tracing():
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
            table = Table(title=f"{job.job_id}: connection checks", title_justify="left")
            for column in ("side", "plugin", "result", "message"):
                table.add_column(column)
            for report in reports:
                mark = (
                    "[green]ok[/green]" if report.result.success else f"[red]{report.result.error_code}[/red]"
                )
                table.add_row(report.role, report.plugin, mark, Text(report.result.message))
            console().print(table)
    raise typer.Exit(int(code))


@app.command(epilog=EXIT_CODES_HELP)
def validate(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "warning",
) -> None:
    """Check everything short of moving data: job file, plugins, SDK versions, connections, stream, state."""
    from rich.table import Table
    from rich.text import Text

    from dativo_runtime._engine._operations import validate_job

    _setup(log_format, log_level)
    with _errors(as_json):
        job = _load(config)
        plan = validate_job(job)
        if as_json:
            emit_json(plan.to_dict())
        else:
            table = Table(title=f"{job.job_id}: validation", title_justify="left")
            for column in ("step", "ok", "details"):
                table.add_column(column)
            for step in plan.steps:
                table.add_row(
                    step["step"],
                    "[green]yes[/green]" if step["ok"] else "[red]no[/red]",
                    Text(str(step["message"])),
                )
            console().print(table)
    raise typer.Exit(int(plan.exit_code))


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            _usage(f"--set expects key=value, got {pair!r}")
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


@app.command(epilog=EXIT_CODES_HELP)
def discover(
    *,
    config: ConfigOption = None,
    connector: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--connector", help="A built-in reader (csv, jsonl) to discover without a job file."),
    ] = None,
    plugin: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--plugin", help="A plugin reference (file.py:Class, pkg.mod:Class, installed name)."),
    ] = None,
    settings: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="Reader config as key=value (repeatable; dotted keys nest)."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option("--sandbox", help="Backend for --plugin: auto, process, docker or none (trusted code)."),
    ] = "auto",
    as_json: JsonOption = False,
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "warning",
) -> None:
    """Discover a source's streams and their schemas (from a job, a built-in connector or a plugin)."""
    from rich.table import Table
    from rich.text import Text

    from dativo_runtime._engine._operations import discover_job, discover_plugin

    _setup(log_format, log_level)
    given = [x for x in (config, connector, plugin) if x is not None]
    if len(given) != 1:
        _usage("give exactly one of --config JOB.yaml, --connector NAME or --plugin REF")
    if settings and config is not None:
        _usage("--set applies to --connector and --plugin; a job file carries its own config")
    with _errors(as_json):
        if config is not None:
            result = discover_job(_load(config))
        else:
            readers = sorted(n for n, target in BUILTIN_PLUGINS.items() if not target.endswith("Writer"))
            if connector is not None and connector not in readers:
                raise ConfigurationError(
                    f"--connector {connector!r} is not a built-in reader; use one of "
                    f"{', '.join(readers)}, or --plugin for other plugins",
                    details={"option": "--connector"},
                )
            result = discover_plugin(str(connector or plugin), _parse_sets(settings or []), backend=backend)
        if as_json:
            emit_json(result)
        else:
            out = console()
            info = result["plugin"]
            out.print(Text(f"{info['class_name']} {info.get('plugin_version') or ''} ({info['ref']})"))
            for stream in result.get("objects", []):
                chosen = " (selected)" if result.get("selected_stream") == stream["name"] else ""
                table = Table(
                    title=f"stream {stream['name']}{chosen} [{stream['type']}]", title_justify="left"
                )
                for column in ("column", "type", "nullable"):
                    table.add_column(column)
                for col in stream["schema"]:
                    table.add_row(col["name"], col["type"], "yes" if col["nullable"] else "no")
                out.print(table)
            if not result.get("objects"):
                out.print("no streams discovered")


# plugins ------------------------------------------------------------------------------


@plugins_app.command("list", epilog=EXIT_CODES_HELP)
def plugins_list(as_json: JsonOption = False) -> None:
    """List built-in connectors and plugins installed under the entry-point group dativo.plugins."""
    from rich.table import Table

    from dativo_runtime._engine._operations import list_plugins

    with _errors(as_json):
        plugins = list_plugins()
        if as_json:
            emit_json({"plugins": plugins})
            return
        table = Table(title="plugins", title_justify="left")
        for column in ("name", "kind", "target", "distribution"):
            table.add_column(column)
        for entry in plugins:
            table.add_row(entry["name"], entry["kind"], entry["target"], entry.get("distribution") or "")
        console().print(table)


@plugins_app.command("inspect", epilog=EXIT_CODES_HELP)
def plugins_inspect(
    ref: Annotated[
        str, typer.Argument(help="A built-in name, file.py:Class, pkg.mod:Class or installed name.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Show a plugin's version, requires_sdk, compatibility with this SDK and capabilities.

    This imports the plugin's module in this process: for untrusted code use
    `dativo-run discover --plugin REF --sandbox process`, which reports the same from a sandbox worker.
    """
    from rich.table import Table
    from rich.text import Text

    from dativo_runtime._engine._operations import inspect_plugin

    with _errors(as_json):
        data = inspect_plugin(ref)
        if as_json:
            emit_json(data)
        else:
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold")
            table.add_column()
            compat = (
                "[green]yes[/green]" if data["compatible"] else f"[red]no[/red]: {data['incompatibility']}"
            )
            rows = [
                ("plugin", data["class_name"]),
                ("role", data["role"]),
                ("version", data.get("plugin_version") or "(not declared)"),
                ("requires_sdk", data.get("requires_sdk") or ">=1.0,<2 (default)"),
                ("installed SDK", data["sdk_version"]),
                ("capabilities", ", ".join(data["capabilities"]) or "(defaults only)"),
            ]
            for key, value in rows:
                table.add_row(key, Text(str(value)))
            table.add_row("compatible", compat)
            console().print(table)
    if not data["compatible"]:
        raise typer.Exit(int(ExitCode.USAGE))


# schema / files / state ---------------------------------------------------------------


@app.command(epilog=EXIT_CODES_HELP)
def schema(as_json: JsonOption = False) -> None:
    """Print the JSON Schema of job files (for editors and linters); always JSON."""
    del as_json
    sys.stdout.write(json.dumps(job_json_schema(), indent=2) + "\n")


@app.command(epilog=EXIT_CODES_HELP)
def files(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """List the files committed to the job's parquet target, from its run manifests."""
    from rich.text import Text

    from dativo_runtime._engine._operations import committed_files

    with _errors(as_json):
        data = committed_files(_load(config))
        if as_json:
            emit_json(data)
            return
        out = console()
        out.print(
            Text(f"{data['location']}: {len(data['runs'])} committed run(s), {data['record_count']} records")
        )
        for path in data["files"]:
            out.print(Text(path))


@state_app.command("show", epilog=EXIT_CODES_HELP)
def state_show(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Print the job's saved incremental state."""
    from rich.text import Text

    from dativo_runtime._storage._state_store import StateStore

    with _errors(as_json):
        job = _load(config)
        store = StateStore(job.state_location(), job.state_storage_options())
        data = {"uri": store.uri(job.tenant, job.name), **store.load(job.tenant, job.name).to_dict()}
        if as_json:
            emit_json(data)
        else:
            console().print(Text(json.dumps(REDACTOR.redact(data), indent=2)))


@state_app.command("reset", epilog=EXIT_CODES_HELP)
def state_reset(
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Forget the job's state so that its next run reads everything again."""
    from rich.text import Text

    from dativo_runtime._storage._state_store import StateStore

    with _errors(as_json):
        job = _load(config)
        store = StateStore(job.state_location(), job.state_storage_options())
        if not yes:
            if as_json or not sys.stdin.isatty():
                raise ConfigurationError(
                    f"state reset of {job.job_id} needs confirmation: pass --yes when running "
                    "without a terminal or with --json"
                )
            if not typer.confirm(f"forget the state of {job.job_id}?", err=True):
                raise typer.Exit(int(ExitCode.FAILURE))
        lease = store.lock(job.tenant, job.name, owner="state-reset")
        try:
            store.reset(job.tenant, job.name)
        finally:
            lease.release()
        if as_json:
            emit_json({"ok": True, "uri": store.uri(job.tenant, job.name)})
        else:
            console().print(Text(f"state of {job.job_id} reset ({store.uri(job.tenant, job.name)})"))


def main() -> None:
    """Entry point of the ``dativo-run`` console script."""
    # SIGTERM and Ctrl-C unwind the run (staged files discarded, leases released; exit 143
    # or 130), except during a commit, which finishes first.
    install_signal_handlers()
    app(prog_name="dativo-run")
