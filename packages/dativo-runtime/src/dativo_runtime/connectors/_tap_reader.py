"""What the ``singer`` and ``airbyte`` readers share: options, the tap's process, batches and state.

:class:`TapReader` is a :class:`~dativo_plugin_sdk.BaseReader` that runs inside the sandbox
worker like any plugin; its tap is a child process (:mod:`._tap_process`). Reading goes
line by line over the tap's stdout: ``RECORD`` lines of the chosen stream are collected raw
into a block, which becomes one Arrow batch (:mod:`._record_batches`) when it holds
``batch_size`` records or :data:`MAX_BLOCK_BYTES`, or, when the tap checkpoints, a second
after the previous batch. Every other message is decoded and handed to the subclass.

State follows the SDK's rule (set after the yield): when a batch is yielded, every line read
so far is in it or in an earlier batch, so the latest checkpoint the tap wrote covers only
yielded records; it is set on the :class:`~dativo_plugin_sdk.State` right after that yield
(or after the last batch, when the tap exits). The runtime saves a snapshot only once the
batches before it are committed, so a killed run never loses records, and never saves a
bookmark past what it committed.

Standard library, the SDK and pyarrow only: this runs inside the sandbox.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import pyarrow as pa

from dativo_plugin_sdk import BaseReader, DativoError, PluginError, State
from dativo_runtime._version import __version__
from dativo_runtime.connectors._options import TapOptions
from dativo_runtime.connectors._record_batches import RecordBlockParser, shorten
from dativo_runtime.connectors._tap_process import (
    TapProcess,
    distribution_name,
    plugin_environment,
    resolve_executable,
    secret_values,
)

__all__ = ["MAX_BLOCK_BYTES", "TapReader"]

MAX_BLOCK_BYTES = 32 * 1024 * 1024
"""Raw bytes of records after which a block becomes a batch whatever its record count."""
CHECKPOINT_FLUSH_S = 1.0
"""A tap's checkpoint makes a batch of the records before it once this long passed since the last."""


class TapReader(BaseReader):
    """Base of the readers that run a tap from the plugin's environment.

    Subclasses set :attr:`connector`, :attr:`options_class`, :attr:`record_prefixes` and
    implement :meth:`on_message` (every message but the records of the current block) and
    :meth:`apply_checkpoint`.
    """

    __version__ = __version__
    requires_sdk = ">=1.0,<2"
    supports_incremental = True

    connector: ClassVar[str] = "tap"
    options_class: ClassVar[type[TapOptions]] = TapOptions
    record_prefixes: ClassVar[tuple[bytes, ...]] = ()
    """How a ``RECORD`` line starts when the tap writes ``type`` first (most do): the fast path."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.options = self.options_class.from_config(config)
        self.dist = distribution_name(self.options.package)
        self.logger = logging.getLogger(f"dativo.{self.connector}.{self.dist}")
        self._env_dir: str | None = None
        self._program: str | None = None
        # The reading loop's state: the block of raw records, its parser, the latest checkpoint.
        self.parser: RecordBlockParser | None = None
        self._block: list[bytes] = []
        self._block_bytes = 0
        self._ready: list[pa.RecordBatch] = []
        self._checkpoint: Any = None
        self._checkpoint_pending = False
        self._last_batch_at = 0.0
        self.tap: TapProcess | None = None

    # The tap's process ---------------------------------------------------------------------

    @property
    def describe(self) -> str:
        """How messages name the tap: ``Singer tap 'tap-x'``."""
        kind = "Singer tap" if self.connector == "singer" else "Airbyte source"
        return f"{kind} {self.options.executable or self.dist!r}"

    @property
    def env_dir(self) -> str:
        """The plugin environment (``DATIVO_PLUGIN_ENV``)."""
        if self._env_dir is None:
            self._env_dir = plugin_environment(self.connector)
        return self._env_dir

    @property
    def program(self) -> str:
        """What the launcher runs: the console script (or file) of the tap."""
        if self._program is None:
            self._program = resolve_executable(self.env_dir, self.options.package, self.options.executable)
        return self._program

    def secret_paths(self) -> Sequence[Sequence[str]]:
        """Paths in the tap's config whose values are secrets (besides secret-looking keys)."""
        return ()

    def start(self, arguments: Sequence[str | tuple[str, Any]]) -> TapProcess:
        """Start the tap with ``arguments`` (a ``(name, data)`` pair is a JSON file)."""
        return TapProcess(
            self.env_dir,
            self.program,
            arguments,
            logger=self.logger,
            secrets=secret_values(self.options.config, self.secret_paths()),
            describe=self.describe,
        )

    def run_to_end(self, arguments: Sequence[str | tuple[str, Any]], *, during: str) -> bytes:
        """Run the tap to its end and return its stdout.

        Raises:
            PluginError: If it exits non-zero (its last stderr lines in the message).
            ConfigurationError: If the launcher found nothing to run.
        """
        with self.start(arguments) as tap:
            assert tap.process.stdout is not None
            output = tap.process.stdout.read()
            status = tap.wait()
            if status != 0:
                raise self.failure(tap, status, during=during)
        return output

    def failure(self, tap: TapProcess, status: int, *, during: str) -> DativoError:
        """The error for a tap that exited with ``status`` (its last stderr lines by default)."""
        return tap.failure(status, during=during)

    # Reading -------------------------------------------------------------------------------

    def read_batches(self, tap: TapProcess, state: State | None, *, during: str) -> Iterator[pa.RecordBatch]:
        """Read the tap's stdout to its end, yielding batches and setting ``state`` after each.

        Raises:
            PluginError: A line the subclass refuses, or the tap exiting non-zero.
        """
        prefixes = self.record_prefixes
        self.tap = tap
        self._last_batch_at = time.monotonic()
        for line in tap.lines():
            if self.parser is not None and line.startswith(prefixes):
                self.add_record(line)
            elif line.strip():
                self.on_message(self.decode(line, tap), line)
            if self._ready:
                yield from self._yield_ready(state)
        status = tap.wait()
        if status != 0:
            raise self.failure(tap, status, during=during)
        self.end_of_stream()
        self.flush()
        yield from self._yield_ready(state)
        if self._checkpoint_pending and state is not None:
            self.apply_checkpoint(state, self._checkpoint)
            self._checkpoint_pending = False

    def decode(self, line: bytes, tap: TapProcess) -> Any:
        """A stdout line as a JSON object; subclasses decide what a line that is not one means."""
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            raise PluginError(
                f"{self.describe} wrote a line to stdout that is not a JSON message: "
                f"{tap.mask(shorten(line))!r}; a tap writes only messages to stdout and logs to stderr",
                details={"line": tap.mask(shorten(line)), "reason": "not_a_message"},
            )
        return message

    def on_message(self, message: Any, line: bytes) -> None:
        """Handle one decoded message (``None``: a line the subclass already dealt with)."""
        raise NotImplementedError

    def end_of_stream(self) -> None:
        """Called once the tap exited successfully, before the last batch."""

    def apply_checkpoint(self, state: State, checkpoint: Any) -> None:
        """Make ``state`` hold the tap's ``checkpoint`` (all it needs to resume)."""
        raise NotImplementedError

    def add_record(self, line: bytes) -> None:
        """Add a raw ``RECORD`` line of the current stream to the block."""
        self._block.append(line)
        self._block_bytes += len(line)
        if len(self._block) >= self.options.batch_size or self._block_bytes >= MAX_BLOCK_BYTES:
            self.flush()

    def checkpoint(self, value: Any) -> None:
        """Note the tap's latest checkpoint; it is set after the batch holding what precedes it."""
        self._checkpoint = value
        self._checkpoint_pending = True
        if self._block and time.monotonic() - self._last_batch_at >= CHECKPOINT_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Make the block a batch (ready to be yielded)."""
        if self._block and self.parser is not None:
            batch = self.parser.parse(self._block)
            if batch.num_rows:
                self._ready.append(batch)
        self._block = []
        self._block_bytes = 0

    def switch_parser(self, parser: RecordBlockParser) -> None:
        """Use ``parser`` for the records that follow (the block so far is parsed with the old one)."""
        self.flush()
        self.parser = parser

    def _yield_ready(self, state: State | None) -> Iterator[pa.RecordBatch]:
        ready, self._ready = self._ready, []
        for batch in ready:
            yield batch
            self._last_batch_at = time.monotonic()
        if ready and self._checkpoint_pending and state is not None:
            self.apply_checkpoint(state, self._checkpoint)
            self._checkpoint_pending = False
