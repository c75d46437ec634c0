"""The ``dativo-testkit`` command; ``dativo-testkit mock-api`` serves the mock HTTP API.

``mock-api`` runs a :class:`~dativo_testkit.MockApiServer` in the foreground, for plugin
authors who test a reader with ``dativo-run``: records come from a JSON-lines file (lines
appended while it runs are served from then on), faults are queued with ``--fault``, and
Ctrl-C or SIGTERM stops it. Exit codes: 0 stopped cleanly, 2 usage error (a bad argument,
an unreadable records file or a bad record in it, a port that cannot be listened on).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ._mock_api import MockApiServer, _parse_instant
from ._version import __version__

__all__ = ["FaultSpec", "build_parser", "main", "parse_fault"]

EXIT_STOPPED = 0
EXIT_USAGE = 2

_FAULT = re.compile(r"^(?P<status>\d{3})(?::(?P<retry_after>\d+(?:\.\d+)?))?(?:x(?P<count>\d+))?$")
_POLL_SECONDS = 0.2


class UsageError(Exception):
    """A problem with the command's arguments or inputs: one line for stderr, exit 2."""


@dataclass(frozen=True)
class FaultSpec:
    """One ``--fault``: ``count`` requests answered with ``status`` (and ``Retry-After`` for 429)."""

    status: int
    count: int = 1
    retry_after: float | None = None

    def queue_on(self, api: MockApiServer) -> None:
        """Queue the fault on ``api``."""
        if self.status in (401, 403):
            api.reject_next(self.count, status=self.status)
        elif self.status == 429:
            api.rate_limit_next(self.count, retry_after=1.0 if self.retry_after is None else self.retry_after)
        else:
            api.fail_next(self.count, status=self.status)


def parse_fault(text: str) -> FaultSpec:
    """Parse ``STATUS[:RETRY_AFTER][xCOUNT]``: ``401``, ``403``, ``429:2x3``, ``503x5``.

    Raises:
        argparse.ArgumentTypeError: For any other form.
    """
    match = _FAULT.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a fault; write STATUS[:RETRY_AFTER][xCOUNT], e.g. 401, 403, 429:2, 503x3"
        )
    status = int(match["status"])
    count = int(match["count"]) if match["count"] else 1
    retry_after = float(match["retry_after"]) if match["retry_after"] else None
    if status not in (401, 403, 429) and not 500 <= status <= 599:
        raise argparse.ArgumentTypeError(f"fault status {status} is not one of 401, 403, 429 or 500-599")
    if retry_after is not None and status != 429:
        raise argparse.ArgumentTypeError(f"{text!r}: only a 429 fault takes ':RETRY_AFTER' seconds")
    if count < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: the count after 'x' must be at least 1")
    return FaultSpec(status, count, retry_after)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="dativo-testkit",
        description="Tools for testing Dativo plugins. See docs/testkit.md.",
        epilog="Exit codes: 0 stopped cleanly, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    mock = commands.add_parser(
        "mock-api",
        help="serve the mock HTTP API (paginated JSON, bearer token) until Ctrl-C",
        description=(
            "Serve the testkit's mock HTTP API: GET /RESOURCE?limit=N[&cursor=C][&updated_since=ISO] "
            'with \'Authorization: Bearer TOKEN\' answers {"data": [...], "next_cursor": ...}. '
            "Records come from a JSON-lines file, each with an integer 'id' and an ISO 8601 "
            "'updated_at'; lines appended while it runs are served from the next request on."
        ),
        epilog=(
            "Fault forms (repeatable, queued in order, one per request): 401 or 403 (the token is "
            "refused), 429 or 429:SECONDS (rate limited, 'Retry-After: SECONDS', default 1), 500-599 "
            "(server error); add xCOUNT for COUNT requests in a row: 503x3, 429:2x5. Exit codes: 0 "
            "stopped by Ctrl-C or SIGTERM, 2 usage error."
        ),
    )
    mock.add_argument("--port", type=_port, default=0, help="port to listen on (default 0: a free one)")
    mock.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; see docs/testkit.md for sandboxed readers)",
    )
    mock.add_argument("--records", metavar="FILE.jsonl", help="the records to serve (default: generated)")
    mock.add_argument(
        "--generate",
        type=int,
        default=100,
        metavar="N",
        help="without --records: serve N generated records (default 100)",
    )
    mock.add_argument("--resource", default="items", help="the resource's path segment (default items)")
    mock.add_argument("--token", default="test-token", help="the bearer token accepted (default test-token)")
    mock.add_argument("--page-size", type=int, default=100, metavar="N", help="default page size (100)")
    mock.add_argument(
        "--fault",
        action="append",
        default=[],
        type=parse_fault,
        metavar="SPEC",
        help="a fault to answer with: 401, 403, 429[:SECONDS], 500-599, each with optional xCOUNT",
    )
    return parser


class RecordsFile:
    """A JSON-lines file of records, read from the start and then from where it ended.

    Args:
        path: The file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._line = 0
        self._partial = b""
        self._unterminated = False  # the last line was taken without its newline

    def read_new(self, on_bad_line: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
        """Return the records of the lines completed since the last call.

        Args:
            on_bad_line: Called with a message for each unusable line (skipped); without it,
                the first one raises.

        Raises:
            UsageError: If the file cannot be read, or a line is unusable and no
                ``on_bad_line`` was given.
        """
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, 2)
                if size < self._offset:
                    self._offset, self._partial = size, b""
                    if on_bad_line is not None:
                        on_bad_line(f"{self.path} shrank; only lines appended from now on are served")
                    return []
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError as exc:
            raise UsageError(f"cannot read records file {str(self.path)!r}: {exc.strerror or exc}") from None
        self._offset += len(chunk)
        if chunk and self._unterminated:
            self._unterminated = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]  # the newline ending the line already taken
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        if self._partial.strip() and _parse_line(self._partial)[0] is None:
            lines.append(self._partial)  # a last record without its newline is complete
            self._partial = b""
            self._unterminated = True
        records = []
        for raw in lines:
            self._line += 1
            problem, record = _parse_line(raw)
            if problem is None:
                records.append(record)
                continue
            message = f"{self.path}, line {self._line}: {problem}"
            if on_bad_line is None:
                raise UsageError(message)
            on_bad_line(message + "; line skipped")
        return records


def _parse_line(raw: bytes) -> tuple[str | None, dict[str, Any]]:
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return "an empty line", {}
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})", {}
    if not isinstance(record, dict):
        return "not a JSON object", {}
    if not isinstance(record.get("id"), int) or not isinstance(record.get("updated_at"), str):
        return "a record needs an integer 'id' and an ISO 8601 'updated_at' string", {}
    try:
        _parse_instant(record["updated_at"])
    except ValueError:
        return f"'updated_at' {record['updated_at']!r} is not an ISO 8601 timestamp", {}
    return None, record


def _tail(records: RecordsFile, api: MockApiServer, stop: threading.Event) -> None:
    def warn(message: str) -> None:
        print(f"dativo-testkit mock-api: {message}", file=sys.stderr, flush=True)

    while not stop.wait(_POLL_SECONDS):
        try:
            new = records.read_new(on_bad_line=_skip_empty(warn))
            if new:
                api.add_records(new)
        except (UsageError, ValueError) as exc:
            warn(str(exc))


def _skip_empty(warn: Callable[[str], None]) -> Callable[[str], None]:
    def on_bad_line(message: str) -> None:
        if "an empty line" not in message:
            warn(message)

    return on_bad_line


def _serve(args: argparse.Namespace) -> int:
    records_file = RecordsFile(Path(args.records)) if args.records else None
    if records_file is not None:
        initial: int | list[dict[str, Any]] = records_file.read_new(on_bad_line=_fail_unless_empty)
    else:
        initial = args.generate
    try:
        api = MockApiServer(
            records=initial,
            resource=args.resource,
            token=args.token,
            default_page_size=args.page_size,
            host=args.host,
            port=args.port,
            control=True,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for fault in args.fault:
        fault.queue_on(api)
    try:
        api.start()
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; choose another --port "
            "(0 picks a free one)"
        ) from None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    tail = None
    try:
        source = f"from {args.records}" if records_file is not None else "generated"
        print(
            f"dativo-testkit mock-api: serving {len(api.records)} records ({source}) at {api.url} "
            f"(GET /{api.resource}, bearer token from --token); Ctrl-C stops",
            flush=True,
        )
        if records_file is not None:
            tail = threading.Thread(target=_tail, args=(records_file, api, stop), daemon=True)
            tail.start()
        while not stop.wait(0.5):
            pass
    finally:
        stop.set()
        if tail is not None:
            tail.join()
        api.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("dativo-testkit mock-api: stopped", flush=True)
    return EXIT_STOPPED


def _fail_unless_empty(message: str) -> None:
    if "an empty line" not in message:
        raise UsageError(message.removesuffix("; line skipped"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns:
        The exit code: 0 stopped cleanly, 2 usage error.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.generate < 0 or args.page_size <= 0:
        print("dativo-testkit: error: --generate must be >= 0 and --page-size positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _serve(args)
    except UsageError as exc:
        print(f"dativo-testkit mock-api: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
