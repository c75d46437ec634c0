"""The built-in ``singer`` reader: a Singer tap from PyPI as a Dativo source.

``check`` runs the tap's discovery, ``discover`` maps its catalog
(:mod:`._singer_catalog`), and ``extract`` runs ``tap --config C --catalog CAT [--state S]``
with a catalog that selects the job's stream, turning its messages into batches:

* ``SCHEMA`` of the stream: its columns (:mod:`._json_schema_columns`); a later ``SCHEMA``
  with other columns ends the current batch and types the records after it (the run's
  validation maps both onto the job's schema). ``SCHEMA`` of other streams is ignored.
* ``RECORD`` of the stream: collected raw and parsed a block at a time; before its
  ``SCHEMA`` it fails the run. ``RECORD`` of other streams is dropped.
* ``STATE``: its ``value`` becomes the stream's state (after the batch holding the records
  before it), and the next run passes it back with ``--state``.
* ``ACTIVATE_VERSION``: logged and ignored (Dativo appends). ``BATCH``: refused.
* Anything on stdout that is not a JSON message fails the run, naming the line.

Runs inside the sandbox worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import (
    Column,
    ConnectionTestResult,
    DativoError,
    DiscoveryResult,
    PluginError,
    State,
)
from dativo_runtime.connectors._check_results import result_from_error
from dativo_runtime.connectors._config_schemas import SINGER_CONFIG_SCHEMA
from dativo_runtime.connectors._json_schema_columns import columns_from_json_schema
from dativo_runtime.connectors._options import SingerOptions
from dativo_runtime.connectors._record_batches import RecordBlockParser, shorten
from dativo_runtime.connectors._singer_catalog import (
    catalog_streams,
    discovered_stream,
    find_stream,
    select_stream,
    stream_id,
)
from dativo_runtime.connectors._tap_reader import TapReader

__all__ = ["SingerReader"]


class SingerReader(TapReader):
    """Run a Singer tap installed from ``package`` and read one of its streams.

    Config: ``package`` (a pip requirement), ``executable`` (default: the package's console
    script), ``config`` (the tap's own config), ``batch_size``; ``stream`` and
    ``incremental`` come from the job. The reader's state is the tap's state (the value of
    its last ``STATE`` message, as it wrote it).
    """

    connector = "singer"
    options_class = SingerOptions
    config_schema = SINGER_CONFIG_SCHEMA
    record_prefixes = (b'{"type":"RECORD"', b'{"type": "RECORD"')

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self._catalog: dict[str, Any] | None = None
        self._stream = ""
        self._ignored: set[str] = set()

    def catalog(self) -> dict[str, Any]:
        """The tap's catalog (``--discover``, run once per reader)."""
        if self._catalog is None:
            output = self.run_to_end(
                ["--config", ("config", self.options.config), "--discover"], during="--discover"
            )
            try:
                catalog = json.loads(output)
            except ValueError:
                raise PluginError(
                    f"{self.describe} printed something that is not a JSON catalog on --discover: "
                    f"{shorten(output)!r}",
                    details={"reason": "invalid_catalog"},
                ) from None
            catalog_streams(catalog, self.describe)
            self._catalog = catalog
        return self._catalog

    def check_connection(self) -> ConnectionTestResult:
        """Run the tap's discovery: it succeeds when the tap can list its streams."""
        try:
            streams = catalog_streams(self.catalog())
        except DativoError as exc:
            return result_from_error(exc, prefix=f"{self.describe} --discover failed: ")
        names = [stream_id(s) for s in streams]
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        return ConnectionTestResult(True, f"{self.describe} discovered {len(names)} stream(s): {shown}")

    def discover(self) -> DiscoveryResult:
        """The tap's catalog as streams: columns, ``key_properties`` and ``replication_key``."""
        streams = [discovered_stream(entry) for entry in catalog_streams(self.catalog(), self.describe)]
        return DiscoveryResult(
            objects=streams, metadata={"package": self.options.package, "protocol": "singer"}
        )

    def extract(self, state: State | None = None) -> Iterator[pa.RecordBatch]:
        """Run the tap on the chosen stream and yield its records as Arrow batches."""
        wanted = (state.stream if state is not None else None) or self.options.stream
        entry = find_stream(catalog_streams(self.catalog(), self.describe), wanted, self.describe)
        self._stream = stream_id(entry)
        catalog = select_stream(self.catalog(), self._stream, incremental=self.options.incremental)
        arguments: list[str | tuple[str, Any]] = ["--config", ("config", self.options.config)]
        arguments += ["--catalog", ("catalog", catalog)]
        saved = state.to_dict() if state is not None and self.options.incremental else {}
        if saved:
            arguments += ["--state", ("state", saved)]
        with self.start(arguments) as tap:
            yield from self.read_batches(tap, state if self.options.incremental else None, during="the read")

    def on_message(self, message: Any, line: bytes) -> None:
        """Handle one Singer message (records of the current block never come here)."""
        kind = message.get("type")
        stream = message.get("stream")
        if kind == "RECORD":
            if stream != self._stream:
                self._ignore(f"RECORD of stream {stream!r}")
            elif self.parser is None:
                raise PluginError(
                    f"{self.describe} wrote a RECORD of stream {stream!r} before its SCHEMA; a Singer tap "
                    f"must describe a stream before its records: {shorten(line)!r}",
                    details={"reason": "record_before_schema", "stream": stream},
                )
            else:
                self.add_record(line)
        elif kind == "SCHEMA":
            if stream == self._stream:
                self._schema(message)
        elif kind == "STATE":
            self._state(message)
        elif kind == "ACTIVATE_VERSION":
            self.logger.debug(
                "%s: ACTIVATE_VERSION %s ignored (Dativo appends)", self.describe, message.get("version")
            )
        elif kind == "BATCH":
            raise PluginError(
                f"{self.describe} wrote a BATCH message (records in files it wrote itself), which the singer "
                "reader does not read; remove batch_config from the tap's config",
                details={"reason": "batch_message", "stream": stream},
            )
        else:
            self._ignore(f"message of type {kind!r}")

    def _schema(self, message: Mapping[str, Any]) -> None:
        keys = message.get("key_properties") or []
        columns = columns_from_json_schema(
            message.get("schema"), key_properties=keys if isinstance(keys, list) else []
        )
        if not columns:
            raise PluginError(
                f"{self.describe} wrote a SCHEMA for stream {self._stream!r} without properties",
                details={"reason": "schema_without_properties", "stream": self._stream},
            )
        old = self.parser
        if old is not None and old.columns == columns:
            return
        if old is not None:
            before = {c.name: c for c in old.columns}
            changes = [
                f"{c.name}: {self._change(before.get(c.name), c)}"
                for c in columns
                if c.name not in before or before[c.name] != c
            ]
            gone = [name for name in before if name not in {c.name for c in columns}]
            self.logger.warning(
                "%s changed the schema of stream %r mid-stream (%s%s); the records after it are read with "
                "the new schema and validated against the job's",
                self.describe,
                self._stream,
                ", ".join(changes) or "no column changed",
                f"; gone: {', '.join(gone)}" if gone else "",
            )
        self.switch_parser(
            RecordBlockParser(
                self._stream, columns, data_path=("record",), stream_path=("stream",), describe=self.describe
            )
        )

    @staticmethod
    def _change(before: Column | None, after: Column) -> str:
        return "new" if before is None else f"{before.type.value} -> {after.type.value}"

    def _state(self, message: Mapping[str, Any]) -> None:
        value = message.get("value")
        if not isinstance(value, dict):
            raise PluginError(
                f"{self.describe} wrote a STATE whose value is a {type(value).__name__}, not an object",
                details={"reason": "invalid_state"},
            )
        self.checkpoint(value)

    def apply_checkpoint(self, state: State, checkpoint: Any) -> None:
        """The state becomes the tap's state value: its keys, and only them."""
        for key in [k for k in state.keys() if k not in checkpoint]:  # noqa: SIM118 (State has no __iter__)
            state.delete(key)
        state.update(checkpoint)

    def _ignore(self, what: str) -> None:
        if what not in self._ignored:
            self._ignored.add(what)
            self.logger.info("%s: ignoring %s (the run reads stream %r)", self.describe, what, self._stream)
