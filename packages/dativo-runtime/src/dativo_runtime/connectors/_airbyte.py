"""The built-in ``airbyte`` reader: an Airbyte Python source from PyPI as a Dativo source.

Its ``config_schema`` is computed when the class is loaded inside the worker: the source's
``spec`` run in the plugin environment, its ``connectionSpecification`` as the schema of the
``config`` key (:func:`._airbyte_protocol.connector_config_schema`), so the runtime checks
the config and masks the ``airbyte_secret`` values before the source runs. Outside a plugin
environment (the host describing the built-in) it is the schema with ``config`` any object.

``check`` maps ``CONNECTION_STATUS`` (the source exits 0 even when it says ``FAILED``),
``discover`` the ``CATALOG``, ``extract`` runs ``read`` with a configured catalog of the
job's stream. Every stdout line is a message: ``RECORD`` (batched as in
:mod:`._tap_reader`), ``STATE`` (kept with :class:`~._airbyte_protocol.AirbyteStateKeeper`
as the reader's state under ``airbyte_state``), ``LOG`` (log lines), ``TRACE`` (an error
fails the run by its ``failure_type``); a line that is not one (the CDK prints whatever a
library prints to stdout) becomes a warning. Runs inside the sandbox worker.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from dativo_plugin_sdk import (
    ConfigurationError,
    ConnectionTestResult,
    DativoError,
    DiscoveryResult,
    PluginError,
    State,
)
from dativo_runtime.connectors._airbyte_protocol import (
    STATE_KEY,
    AirbyteStateKeeper,
    configured_catalog,
    connector_config_schema,
    discovered_stream,
    error_from_trace,
    find_stream,
    stream_name,
)
from dativo_runtime.connectors._check_results import result_from_error
from dativo_runtime.connectors._config_schemas import AIRBYTE_CONFIG_SCHEMA, tap_config_schema
from dativo_runtime.connectors._json_schema_columns import columns_from_json_schema
from dativo_runtime.connectors._options import AirbyteOptions
from dativo_runtime.connectors._record_batches import RecordBlockParser, shorten
from dativo_runtime.connectors._tap_launcher import console_scripts
from dativo_runtime.connectors._tap_process import ENVIRONMENT_VARIABLE, TapProcess, distribution_name
from dativo_runtime.connectors._tap_reader import TapReader

__all__ = ["AirbyteReader", "airbyte_config_schema"]

log = logging.getLogger("dativo.airbyte")

_LOG_LEVELS = {
    "FATAL": logging.CRITICAL,
    "ERROR": logging.ERROR,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
    "TRACE": logging.DEBUG,
}
_MARKER = "dativo-env.json"


def source_in(env_dir: str) -> tuple[str, str | None] | None:
    """The source an environment holds: ``(package, executable)``, or ``None`` when it cannot tell.

    The package is the requirement the environment was built for (its marker file,
    written by the runtime's ``EnvironmentStore``, names it in ``spec.requirements``),
    else its one ``airbyte-source-*`` distribution; the executable is ``None`` (the
    package's console script) unless the package has several, then its ``source-*`` one.
    """
    try:
        marker = json.loads(Path(env_dir, _MARKER).read_text(encoding="utf-8"))
        declared = (marker.get("spec") or {}).get("requirements")  # the runtime's EnvironmentStore marker
        requirements = [str(r) for r in declared or [] if str(r).strip()]
    except (OSError, ValueError, AttributeError):
        requirements = []
    names = {distribution_name(r).lower().replace("_", "-"): r for r in requirements}
    sources = [name for name in names if name.startswith("airbyte-source-")]
    scripts = console_scripts(env_dir)
    if len(names) == 1 or len(sources) == 1:
        name = next(iter(names)) if len(names) == 1 else sources[0]
        package = names[name]
    else:
        dists = {
            d.lower().replace("_", "-")
            for _, d in scripts.values()
            if d.lower().startswith("airbyte-source-")
        }
        if len(dists) != 1:
            return None
        name = package = dists.pop()
    own = sorted(s for s, (_, d) in scripts.items() if d.lower().replace("_", "-") == name)
    if len(own) <= 1:
        return package, None
    starting = [s for s in own if s.startswith("source-")]
    return (package, starting[0]) if len(starting) == 1 else None


_SPECS: dict[tuple[str, str], dict[str, Any]] = {}


def source_spec(env_dir: str, package: str, executable: str | None = None) -> dict[str, Any]:
    """The ``spec`` payload of the source ``package`` in ``env_dir`` (run once per process).

    Raises:
        DativoError: If the source fails, or prints no ``SPEC``.
    """
    key = (env_dir, package)
    if key not in _SPECS:
        reader = AirbyteReader({"package": package, "executable": executable})
        reader._env_dir = env_dir
        for message in reader.run_command(["spec"], during="spec"):
            if message.get("type") == "SPEC" and isinstance(message.get("spec"), dict):
                _SPECS[key] = message["spec"]
                break
        else:
            raise PluginError(
                f"{reader.describe} printed no SPEC message on 'spec'",
                details={"reason": "no_spec", "package": package},
            )
    return _SPECS[key]


def known_spec(env_dir: str) -> dict[str, Any]:
    """The spec already read from ``env_dir`` in this process, or an empty one."""
    return next((spec for (folder, _), spec in _SPECS.items() if folder == env_dir), {})


def airbyte_config_schema(env_dir: str | None) -> dict[str, Any]:
    """The ``airbyte`` reader's config schema in the environment ``env_dir`` (see the module docstring)."""
    if not env_dir or not os.path.isdir(env_dir):
        return AIRBYTE_CONFIG_SCHEMA
    source = source_in(env_dir)
    if source is None:
        log.warning(
            "cannot tell which Airbyte source %s holds; its config is not checked before it runs", env_dir
        )
        return AIRBYTE_CONFIG_SCHEMA
    connector_schema, definitions = connector_config_schema(source_spec(env_dir, *source))
    extra = {"namespace": AIRBYTE_CONFIG_SCHEMA["properties"]["namespace"]}
    schema = tap_config_schema("airbyte", connector_schema, extra=extra)
    schema.update(definitions)
    return schema


class _SpecConfigSchema:
    """``AirbyteReader.config_schema``: computed from the plugin environment when read."""

    def __get__(self, instance: object, owner: type | None = None) -> dict[str, Any]:
        return airbyte_config_schema(os.environ.get(ENVIRONMENT_VARIABLE))


class AirbyteReader(TapReader):
    """Run an Airbyte Python source installed from ``package`` and read one of its streams.

    Config: ``package`` (a pip requirement), ``executable`` (default: the package's console
    script), ``config`` (the source's config, checked against its spec), ``namespace``,
    ``batch_size``; ``stream`` and ``incremental`` come from the job. The reader's state is
    ``{"airbyte_state": [state messages]}``, passed back with ``--state``.
    """

    connector = "airbyte"
    options_class = AirbyteOptions
    config_schema = _SpecConfigSchema()
    record_prefixes = (b'{"type":"RECORD"', b'{"type": "RECORD"')

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        assert isinstance(self.options, AirbyteOptions)
        self.namespace = self.options.namespace
        self._catalog: list[dict[str, Any]] | None = None
        self._stream = ""
        self._keeper = AirbyteStateKeeper()
        self._trace_error: DativoError | None = None
        self._warned_lines = 0

    def secret_paths(self) -> Sequence[Sequence[str]]:
        """The properties the source's spec marks ``airbyte_secret`` (when its spec was read)."""
        spec = known_spec(self.env_dir)
        paths: list[list[str]] = []

        def walk(schema: Any, path: list[str]) -> None:
            if isinstance(schema, Mapping) and len(path) < 16:
                if schema.get("airbyte_secret") is True:
                    paths.append(path)
                for name, sub in (schema.get("properties") or {}).items():
                    walk(sub, [*path, str(name)])

        walk(spec.get("connectionSpecification"), [])
        return paths

    # Commands that run to their end ----------------------------------------------------

    def run_command(self, arguments: Sequence[str | tuple[str, Any]], *, during: str) -> list[dict[str, Any]]:
        """Run the source to its end; return its messages but logs (logged) and errors (raised)."""
        messages = []
        with self.start(arguments) as tap:
            for line in tap.lines():
                message = self.decode(line, tap) if line.strip() else None
                if message is not None and not self._handled(message, tap):
                    messages.append(message)
            status = tap.wait()
            if self._trace_error is not None or status != 0:
                raise self.failure(tap, status, during=during)
        return messages

    def failure(self, tap: TapProcess, status: int, *, during: str) -> DativoError:
        """The source's own ``TRACE`` error when it sent one, else its exit status and stderr."""
        return self._trace_error or tap.failure(status, during=during)

    def _config_file(self) -> tuple[str, Any]:
        return ("config", self.options.config)

    def check_connection(self) -> ConnectionTestResult:
        """The source's ``check``: its ``CONNECTION_STATUS``."""
        try:
            messages = self.run_command(["check", "--config", self._config_file()], during="check")
        except DativoError as exc:
            return result_from_error(exc, prefix=f"{self.describe} check failed: ")
        for message in messages:
            if message.get("type") == "CONNECTION_STATUS":
                status = message.get("connectionStatus") or {}
                text = str(status.get("message") or "")
                if status.get("status") == "SUCCEEDED":
                    return ConnectionTestResult(
                        True, f"{self.describe} connected{': ' + text if text else ''}"
                    )
                return result_from_error(
                    ConfigurationError(f"{self.describe} check failed: {text or 'no reason given'}"),
                )
        return result_from_error(
            PluginError(
                f"{self.describe} printed no CONNECTION_STATUS on check", details={"reason": "no_status"}
            )
        )

    def catalog(self) -> list[dict[str, Any]]:
        """The source's catalog streams (``discover``, run once per reader)."""
        if self._catalog is None:
            messages = self.run_command(["discover", "--config", self._config_file()], during="discover")
            for message in messages:
                catalog = message.get("catalog") if message.get("type") == "CATALOG" else None
                if isinstance(catalog, dict) and isinstance(catalog.get("streams"), list):
                    self._catalog = [s for s in catalog["streams"] if isinstance(s, dict)]
                    break
            else:
                raise PluginError(
                    f"{self.describe} printed no CATALOG message on discover",
                    details={"reason": "no_catalog"},
                )
        return self._catalog

    def discover(self) -> DiscoveryResult:
        """The source's catalog as streams: columns, primary key and default cursor."""
        return DiscoveryResult(
            objects=[discovered_stream(entry) for entry in self.catalog()],
            metadata={"package": self.options.package, "protocol": "airbyte"},
        )

    # Reading ------------------------------------------------------------------------------

    def extract(self, state: State | None = None) -> Iterator[pa.RecordBatch]:
        """Run ``read`` on the chosen stream and yield its records as Arrow batches."""
        wanted = (state.stream if state is not None else None) or self.options.stream
        entry = find_stream(self.catalog(), wanted, self.namespace, self.describe)
        self._stream = stream_name(entry)
        catalog, mode = configured_catalog(entry, incremental=self.options.incremental)
        if self.options.incremental and mode != "incremental":
            self.logger.warning(
                "%s: stream %r does not support incremental reads; reading it whole",
                self.describe,
                self._stream,
            )
        keeping = state if mode == "incremental" else None
        arguments: list[str | tuple[str, Any]] = ["read", "--config", self._config_file()]
        arguments += ["--catalog", ("catalog", catalog)]
        if keeping is not None:
            self._keeper = AirbyteStateKeeper(keeping.get(STATE_KEY))
            if self._keeper.messages:
                arguments += ["--state", ("state", self._keeper.for_source())]
        columns = columns_from_json_schema(
            entry.get("json_schema"), key_properties=discovered_stream(entry).primary_key
        )
        self.switch_parser(
            RecordBlockParser(
                self._stream,
                columns,
                data_path=("record", "data"),
                stream_path=("record", "stream"),
                describe=self.describe,
            )
        )
        with self.start(arguments) as tap:
            yield from self.read_batches(tap, keeping, during="read")

    def decode(self, line: bytes, tap: TapProcess) -> Any:
        """A message, or ``None`` for a line that is not one (logged as a warning, like Airbyte does)."""
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if isinstance(message, dict) and isinstance(message.get("type"), str):
            return message
        if self._warned_lines < 1000:
            self._warned_lines += 1
            self.logger.warning("%s printed: %s", self.describe, tap.mask(shorten(line, 2000)))
        return None

    def _handled(self, message: Mapping[str, Any], tap: TapProcess) -> bool:
        """Handle ``LOG`` and ``TRACE``; return whether ``message`` was one of them."""
        kind = message["type"]
        if kind == "LOG":
            entry = message.get("log") or {}
            level = _LOG_LEVELS.get(str(entry.get("level", "INFO")).upper(), logging.INFO)
            self.logger.log(level, "%s", tap.mask(str(entry.get("message", ""))[:10_000]))
            return True
        if kind == "TRACE":
            trace = message.get("trace") or {}
            if trace.get("type") == "ERROR" and self._trace_error is None:
                self._trace_error = error_from_trace(trace, self.describe, mask=tap.mask)
            elif trace.get("type") == "STREAM_STATUS":
                self.logger.debug("%s: stream status %s", self.describe, trace.get("stream_status"))
            return True
        return False

    def on_message(self, message: Any, line: bytes) -> None:
        """Handle one message during ``read`` (records of the current block never come here)."""
        if message is None:
            return
        kind = message.get("type")
        if kind == "RECORD":
            record = message.get("record") or {}
            if record.get("stream") == self._stream and (
                self.namespace is None or record.get("namespace") == self.namespace
            ):
                self.add_record(line)
        elif kind == "STATE":
            payload = message.get("state")
            if isinstance(payload, dict):
                self._keeper.add(payload)
                self.checkpoint([dict(m) for m in self._keeper.messages])
        elif kind == "CONTROL":
            self.logger.warning("%s asked to update its config (CONTROL); Dativo ignores it", self.describe)
        elif self.tap is not None:
            self._handled(message, self.tap)

    def end_of_stream(self) -> None:
        """A ``TRACE`` error fails the read even when the source exits 0."""
        if self._trace_error is not None:
            raise self._trace_error

    def apply_checkpoint(self, state: State, checkpoint: Any) -> None:
        """The state holds the source's state messages under ``airbyte_state``."""
        state.set(STATE_KEY, checkpoint)
