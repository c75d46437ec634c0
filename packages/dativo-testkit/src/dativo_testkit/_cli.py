"""The ``dativo-conformance`` command: run the conformance suite on a plugin class.

Exit codes: 0 when every check passed (or was skipped), 1 when any check failed, 2 for
usage errors (bad arguments, unknown class, unreadable config; with ``--sandbox``, a plugin
the sandbox cannot import, ``dativo-runtime`` not installed, or a backend that does not work
on this machine).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dativo_plugin_sdk import ConfigurationError, PluginError, SandboxError

from ._config_files import load_config_file, load_schema_file
from ._conformance import DEFAULT_CHECK_TIMEOUT, DEFAULT_HYPOTHESIS_EXAMPLES, run_conformance
from ._plugin_loading import load_plugin_class
from ._sandboxed import SANDBOXES
from ._version import __version__

__all__ = ["build_parser", "main"]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="dativo-conformance",
        description=(
            "Check that a Dativo reader or writer honours the plugin SDK contract. The class decides "
            "which checks run: a BaseWriter subclass gets the writer checks, anything else the reader checks."
        ),
        epilog=(
            "Exit codes: 0 all checks passed or skipped, 1 a check failed, 2 usage error. See "
            "docs/conformance.md."
        ),
    )
    parser.add_argument(
        "plugin_ref", metavar="PLUGIN_REF", help="path/to/file.py:ClassName or package.module:ClassName"
    )
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="a valid config (JSON, or YAML with PyYAML)"
    )
    parser.add_argument(
        "--bad-config",
        action="append",
        default=[],
        metavar="FILE",
        help="an invalid config the plugin must reject (repeatable: each must be rejected)",
    )
    parser.add_argument(
        "--stream", metavar="NAME", help="readers: the stream to check (default: the first discovered)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_CHECK_TIMEOUT,
        metavar="SECONDS",
        help=f"time limit of each check (default {DEFAULT_CHECK_TIMEOUT:g})",
    )
    parser.add_argument(
        "--output-folder",
        metavar="DIR",
        help=(
            "writers: folder the writer commits JSON-lines or Parquet files to, read back by the "
            "round-trip checks"
        ),
    )
    parser.add_argument(
        "--schema", metavar="FILE", help="writers: columns to write (JSON/YAML list); default: every type"
    )
    parser.add_argument(
        "--skip", action="append", default=[], metavar="CHECK", help="a check not to run (repeatable)"
    )
    parser.add_argument(
        "--hypothesis-examples",
        type=_positive_int,
        default=DEFAULT_HYPOTHESIS_EXAMPLES,
        metavar="N",
        help=(
            "writers: generated batches in writer.hypothesis_round_trip (default "
            f"{DEFAULT_HYPOTHESIS_EXAMPLES})"
        ),
    )
    parser.add_argument(
        "--sandbox",
        choices=SANDBOXES,
        default="none",
        help=(
            "where the plugin runs: none (this process, the default), or process / docker, a dativo-run "
            "sandbox worker (needs dativo-runtime), so the checks see what the sandbox can import"
        ),
    )
    parser.add_argument(
        "--sandbox-network",
        action="store_true",
        help="let a sandboxed plugin open network connections (a job's sandbox.network)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns:
        The exit code: 0 passed, 1 a check failed, 2 usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        # Under a sandbox the plugin is imported only in the sandbox worker, never here.
        plugin = args.plugin_ref if args.sandbox != "none" else load_plugin_class(args.plugin_ref)
        config = load_config_file(args.config)
        bad_config = [load_config_file(path) for path in args.bad_config] or None
        schema = load_schema_file(args.schema) if args.schema else None
        report = run_conformance(
            plugin,
            config=config,
            bad_config=bad_config,
            stream=args.stream,
            timeout=args.timeout,
            read_back=args.output_folder,
            schema=schema,
            skip=args.skip,
            hypothesis_examples=args.hypothesis_examples,
            sandbox=args.sandbox,
            sandbox_network=args.sandbox_network,
        )
    except (PluginError, ConfigurationError, SandboxError, ValueError, TypeError) as exc:
        print(f"dativo-conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report.to_json() if args.json else report.to_text(), end="" if not args.json else "\n")
    return EXIT_PASSED if report.passed else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
