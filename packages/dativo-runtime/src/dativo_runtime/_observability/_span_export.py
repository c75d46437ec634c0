"""Where the host's spans go: the exporters the ``OTEL_*`` variables name, and redaction on the way out.

Every span that leaves the process goes through :class:`RedactingExporter` first: names,
attributes, event attributes and status messages lose any known secret, and an attribute
whose key names a secret is masked whatever its value.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dativo_runtime._secrets import MASK, Redactor, is_secret_key

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["MAX_TEXT", "RedactingExporter", "attribute_value", "exporters_from_env"]

logger = logging.getLogger("dativo.observability")

MAX_TEXT = 4096
"""The longest string a span attribute, event attribute or status message keeps."""


def attribute_value(value: Any, redactor: Redactor) -> Any:
    """Return ``value`` as a span attribute: numbers and booleans as they are, text redacted and cut."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [attribute_value(v, redactor) for v in value]
    return redactor.redact_text(str(value))[:MAX_TEXT]


def exporters_from_env(env: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names (``otlp`` by default); a warning for each unusable one."""
    names = [e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if e.strip()]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter(out=sys.stderr))
        elif name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            try:
                exporters.append(_otlp_exporter(grpc=protocol.strip().lower() == "grpc"))
            except ImportError:
                logger.warning(
                    "the OTLP exporter for protocol %r is not installed (no traces are exported); "
                    "pip install 'dativo-runtime[otel]' for http/protobuf, or "
                    "opentelemetry-exporter-otlp-proto-grpc for grpc",
                    protocol,
                )
        else:
            logger.warning("OTEL_TRACES_EXPORTER=%s is not supported; use otlp, console or none", name)
    return exporters


class RedactingExporter:
    """Wraps an exporter so every span's text is redacted on its way out."""

    @staticmethod
    def wrap(inner: SpanExporter, redactor: Redactor) -> SpanExporter:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        class RedactingSpanExporter(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return inner.export([_redacted_span(s, redactor) for s in spans])

            def shutdown(self) -> None:
                inner.shutdown()

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                return bool(inner.force_flush(timeout_millis))

        return RedactingSpanExporter()


def _otlp_exporter(*, grpc: bool) -> SpanExporter:
    import importlib

    # The gRPC exporter is not part of the otel extra; import it by name when asked for.
    kind = "grpc" if grpc else "http"
    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{kind}.trace_exporter")
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter


def _redact_attributes(attributes: Mapping[str, Any] | None, redactor: Redactor) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if is_secret_key(key.rsplit(".", 1)[-1]) and isinstance(value, str) and value:
            clean[key] = MASK
        else:
            clean[key] = attribute_value(value, redactor)
    return clean


def _redacted_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Status

    status = span.status
    if status.description:
        status = Status(status.status_code, redactor.redact_text(status.description))
    return ReadableSpan(
        name=redactor.redact_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redact_attributes(span.attributes, redactor),
        events=[
            Event(e.name, _redact_attributes(e.attributes, redactor), timestamp=e.timestamp)
            for e in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
