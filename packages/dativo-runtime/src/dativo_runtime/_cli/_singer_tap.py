"""``dativo-run singer-tap`` (and the ``tap-dativo`` script): a job's source as a Singer tap.

Only Singer messages reach stdout. Before anything runs, the command keeps the real stdout
for them and points file descriptor 1 (and ``sys.stdout``) at stderr, so that nothing else
(a plugin's ``print`` under ``sandbox: none``, a library's warning) can corrupt the stream.
Logs and errors go to stderr; errors exit with the documented codes and no traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Optional

import typer

from dativo_plugin_sdk import PLUGIN_SDK_VERSION, ConfigurationError
from dativo_runtime._cli._options import (
    EXIT_CODES_HELP,
    LogFormatOption,
    LogLevelOption,
    errors,
    setup,
    tracing,
    usage,
)
from dativo_runtime._version import __version__

__all__ = ["TAP_CAPABILITIES", "about_document", "singer_tap", "tap_app", "tap_main"]

TAP_NAME = "tap-dativo"
TAP_CAPABILITIES = ("about", "catalog", "discover", "properties", "state")
"""What the tap supports, as Meltano's ``capabilities`` names it."""

_PathOption = Optional[Path]  # noqa: UP045 (typer reads the annotation at run time)


def about_document() -> dict[str, Any]:
    """What ``--about --format json`` prints: the tap's name, version, capabilities and settings."""
    from dativo_runtime._engine._singer_tap import TAP_SETTINGS_SCHEMA

    return {
        "name": TAP_NAME,
        "description": "A Dativo job's source (any Dativo reader, run in its sandbox) as a Singer tap",
        "version": __version__,
        "sdk_version": PLUGIN_SDK_VERSION,
        "capabilities": list(TAP_CAPABILITIES),
        "settings": TAP_SETTINGS_SCHEMA,
    }


def _about_text(about: dict[str, Any], markdown: bool) -> str:
    settings = about["settings"]["properties"]
    lines = [
        f"# `{about['name']}`" if markdown else f"Name: {about['name']}",
        "",
        about["description"],
        "",
        f"Version: {about['version']} (dativo-plugin-sdk {about['sdk_version']})",
        f"Capabilities: {', '.join(about['capabilities'])}",
        "Settings:",
        *(f"{'- ' if markdown else '  '}{name}: {spec['description']}" for name, spec in settings.items()),
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def singer_stdout() -> Iterator[BinaryIO]:
    """Keep stdout for Singer messages; send everything else written to it to stderr.

    Yields:
        A binary stream on the real stdout. Where stdout is no file descriptor (a test's
        captured output), its buffer, and nothing is redirected.
    """
    try:
        fd = sys.stdout.fileno()
        sys.stdout.flush()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        yield sys.stdout.buffer
        return
    saved_fd = os.dup(fd)
    out = os.fdopen(os.dup(fd), "wb", buffering=1 << 20)
    saved_stdout = sys.stdout
    os.dup2(sys.stderr.fileno(), fd)
    sys.stdout = sys.stderr
    try:
        yield out
    finally:
        sys.stdout = saved_stdout
        os.dup2(saved_fd, fd)
        os.close(saved_fd)
        with contextlib.suppress(BrokenPipeError, OSError):
            out.close()


def _read_json(path: Path, option: str) -> Any:
    """A ``--state``/``--catalog`` file's JSON (``None`` for an empty file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"{option} {path}: cannot read it: {exc}", details={"option": option}
        ) from None
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{option} {path}: not JSON: {exc}", details={"option": option}) from None


def singer_tap(
    *,
    config: Annotated[
        _PathOption,
        typer.Option(
            "--config",
            "-c",
            help='The job file (YAML), or a JSON tap config {"job": "path/to/job.yaml"} as Meltano passes.',
        ),
    ] = None,
    discover: Annotated[
        bool, typer.Option("--discover", help="Print the Singer catalog of the job's stream and exit.")
    ] = False,
    state: Annotated[
        _PathOption,
        typer.Option(
            "--state", help="A Singer state (JSON): bookmarks[STREAM] is the reader's state to resume."
        ),
    ] = None,
    catalog: Annotated[
        _PathOption,
        typer.Option("--catalog", help="A Singer catalog (JSON) selecting the stream and its fields."),
    ] = None,
    properties: Annotated[
        _PathOption, typer.Option("--properties", help="The legacy name of --catalog (older Singer runners).")
    ] = None,
    about: Annotated[
        bool, typer.Option("--about", help="Print the tap's name, version, capabilities and settings.")
    ] = False,
    about_format: Annotated[
        str, typer.Option("--format", help="The format of --about: text, json or markdown.")
    ] = "text",
    log_format: LogFormatOption = "auto",
    log_level: LogLevelOption = "warning",
) -> None:
    """Run the job's source as a Singer tap: SCHEMA, RECORD and STATE messages on stdout.

    The source runs as `run` runs it (its sandbox, limits and validation); nothing is
    committed and no state is saved. Pipe it into any Singer target.
    """
    setup(log_format, log_level)
    if about_format not in ("text", "json", "markdown"):
        usage(f"--format must be text, json or markdown, not {about_format!r}")
    if catalog is not None and properties is not None:
        usage("give --catalog or its legacy name --properties, not both")
    with singer_stdout() as out, errors(as_json=False):
        if about:
            document = about_document()
            text = json.dumps(document, indent=2) + "\n" if about_format == "json" else None
            out.write((text or _about_text(document, about_format == "markdown")).encode())
            out.flush()
            return
        _tap(out, config, discover=discover, state=state, catalog=catalog or properties)


def _tap(
    out: BinaryIO, config: Path | None, *, discover: bool, state: Path | None, catalog: Path | None
) -> None:
    from dativo_runtime._engine._singer_tap import load_tap_job, singer_catalog, write_singer_messages

    if config is None:
        raise ConfigurationError(
            "--config is required: the job file, or a JSON tap config naming it",
            details={"option": "--config"},
        )
    job = load_tap_job(config)
    option = "--catalog" if catalog is not None else "--properties"
    catalog_document = _read_json(catalog, option) if catalog is not None else None
    state_document = _read_json(state, "--state") if state is not None else None
    with tracing():
        if discover:
            document = singer_catalog(job)
            out.write((json.dumps(document, indent=2) + "\n").encode())
        else:
            write_singer_messages(job, out, state=state_document, catalog=catalog_document)
    try:
        out.flush()
    except BrokenPipeError:
        from dativo_plugin_sdk import PluginError

        raise PluginError(
            "stdout was closed before every Singer message was written (the target stopped reading)",
            error_code="SINGER_OUTPUT_CLOSED",
        ) from None


tap_app = typer.Typer(
    name=TAP_NAME,
    help="A Dativo job's source as a Singer tap (the same as `dativo-run singer-tap`).",
    epilog=EXIT_CODES_HELP,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
tap_app.command(epilog=EXIT_CODES_HELP)(singer_tap)


def tap_main() -> None:
    """Entry point of the ``tap-dativo`` console script (what Meltano runs as an extractor)."""
    from dativo_runtime._engine._termination import install_signal_handlers

    install_signal_handlers()
    tap_app(prog_name=TAP_NAME)
