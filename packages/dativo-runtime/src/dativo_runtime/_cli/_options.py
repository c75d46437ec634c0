"""What every ``dativo-run`` command shares: its options, logging setup, and how errors become exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from dativo_plugin_sdk import ConfigurationError, DativoError
from dativo_runtime._cli._render import emit_json, error_console
from dativo_runtime._exit_codes import ExitCode, exit_code_for
from dativo_runtime._jobs._model import JobConfig, load_job
from dativo_runtime._observability._logging import configure_logging, escape_control
from dativo_runtime._observability._plugin_frames import frame_lines
from dativo_runtime._secrets import REDACTOR

__all__ = [
    "EXIT_CODES_HELP",
    "ConfigOption",
    "FindLinksOption",
    "JsonOption",
    "LogFormatOption",
    "LogLevelOption",
    "child_env",
    "errors",
    "load",
    "setup",
    "tracing",
    "usage",
    "use_find_links",
]

EXIT_CODES_HELP = """
Exit codes: 0 success; 1 failure that retrying will not fix; 2 usage or configuration
error; 65 data validation failure (strict mode); 75 retryable failure (retry later);
77 authentication failure; 143 or 130 stopped by SIGTERM or Ctrl-C (nothing committed).
See docs/runtime.md.
"""

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout for machines.")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="The job file (YAML).")]  # noqa: UP045
FindLinksOption = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--find-links",
        envvar="DATIVO_FIND_LINKS",
        help="Install plugin environments from this folder of wheels only (no package index), "
        "for offline machines.",
    ),
]
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


def setup(log_format: str, log_level: str) -> None:
    """Check the log options and configure logging on stderr."""
    if log_format not in ("auto", "json", "text"):
        usage(f"--log-format must be auto, json or text, not {log_format!r}")
    if log_level.lower() not in ("debug", "info", "warning", "error"):
        usage(f"--log-level must be debug, info, warning or error, not {log_level!r}")
    configure_logging(fmt=log_format, level=log_level.lower())  # type: ignore[arg-type]


def use_find_links(folder: Path | None) -> None:
    """Make ``--find-links`` the wheel folder of every environment this command (and its children) builds."""
    if folder is not None:
        os.environ["DATIVO_FIND_LINKS"] = str(folder.resolve())


def child_env(log_format: str, log_level: str) -> dict[str, str]:
    """The environment of child runs: this one, with this process's log settings (they share stderr)."""
    if log_format == "auto":
        log_format = "text" if sys.stderr.isatty() else "json"
    return {**os.environ, "DATIVO_LOG_FORMAT": log_format, "DATIVO_LOG_LEVEL": log_level.lower()}


@contextlib.contextmanager
def tracing() -> Iterator[None]:
    """OpenTelemetry for one command: on only when the OTEL_* variables ask, flushed at the end."""
    from dativo_runtime._observability._tracing import configure_tracing

    active = configure_tracing()
    try:
        yield
    finally:
        active.shutdown()


def usage(message: str) -> NoReturn:
    """Print a usage error and exit 2."""
    from rich.text import Text

    error_console().print(Text(f"error: {message}"))
    raise typer.Exit(int(ExitCode.USAGE))


def _fail(exc: DativoError, as_json: bool) -> NoReturn:
    from rich.text import Text

    code = exit_code_for(exc)
    if as_json:
        emit_json({"ok": False, "exit_code": int(code), "error": exc.to_dict()})
    else:
        lines = [f"error: {exc.message}", *frame_lines(exc.details)]
        # A plugin chose the message: its control characters show as escapes (no forged line).
        error_console().print(Text(REDACTOR.redact_text("\n".join(escape_control(line) for line in lines))))
    raise typer.Exit(int(code))


@contextlib.contextmanager
def errors(as_json: bool) -> Iterator[None]:
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


def load(config: Path | None) -> JobConfig:
    """Load the job file ``--config`` names.

    Raises:
        ConfigurationError: If there is no ``--config`` or the file is not a valid job.
    """
    if config is None:
        raise ConfigurationError("--config JOB.yaml is required", details={"option": "--config"})
    return load_job(config)
