"""OpenTelemetry traces: a run, its checks, discovery, stages, sampled batches and commit.

Tracing is on only when the standard ``OTEL_*`` variables ask for it
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_TRACES_EXPORTER`` other than ``none``) and ``OTEL_SDK_DISABLED`` is not ``true``.
Otherwise :func:`configure_tracing` returns a disabled :class:`Tracing` whose span
helpers do nothing, and ``opentelemetry`` is never imported (it is the optional ``otel``
extra of the runtime).

Every span that leaves the process goes through the process-wide redactor first:
names, attributes, event attributes and status messages lose any known secret.

Spans cross the sandbox boundary both ways. The host puts the W3C trace context of its
current span into each request with :func:`inject_context`; the worker attaches it with
:class:`SpanRelay` (or just :func:`extract_context`), so spans the plugin creates with
``opentelemetry.trace.get_tracer(...)`` are children of the host's span. A sandboxed
worker usually cannot reach a collector, so the relay collects the plugin's finished
spans, the worker returns them with its answer (:meth:`SpanRelay.drain`), and the host
exports them with its own spans (:meth:`Tracing.import_spans`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
import traceback
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dativo_plugin_sdk import get_error_code, is_retryable
from dativo_runtime._secrets import REDACTOR, Redactor
from dativo_runtime._version import __version__

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span

__all__ = [
    "SpanHandle",
    "SpanRelay",
    "Tracing",
    "active_tracing",
    "configure_tracing",
    "current_trace_ids",
    "extract_context",
    "inject_context",
    "tracing_requested",
]

logger = logging.getLogger("dativo_runtime.observability")

_TRACER_NAME = "dativo_runtime"
_MAX_IMPORTED_SPANS = 2000
_MAX_ATTRIBUTES = 64
_MAX_EVENTS = 32
_MAX_TEXT = 4096
_RUN_ATTRIBUTES: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "dativo_run_attributes", default=types.MappingProxyType({})
)


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Tell whether the ``OTEL_*`` environment variables ask for traces.

    Args:
        environ: The environment; ``os.environ`` by default.

    Returns:
        ``True`` when an OTLP endpoint or a traces exporter other than ``none`` is set,
        and ``OTEL_SDK_DISABLED`` is not ``true``.
    """
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = [e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if exporters:
        return any(e != "none" for e in exporters)
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def current_trace_ids() -> tuple[str, str] | None:
    """Return the current span's ``(trace_id, span_id)`` in hex, or ``None``.

    Costs nothing when ``opentelemetry`` was never imported.
    """
    if "opentelemetry.trace" not in sys.modules:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def inject_context() -> dict[str, str]:
    """Return the W3C trace context (``traceparent``, ``tracestate``) of the current span.

    Put it into each request sent to a sandbox worker; an empty dict when no span is
    active or tracing is off.
    """
    if "opentelemetry.trace" not in sys.modules:
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier


@contextlib.contextmanager
def extract_context(carrier: Mapping[str, str] | None) -> Iterator[bool]:
    """Make the trace context in ``carrier`` current for the ``with`` block (worker side).

    Spans started in the block, by any tracer, become children of the host's span.

    Args:
        carrier: What :func:`inject_context` returned on the host.

    Yields:
        Whether a context was attached (``False`` when the carrier is empty or
        ``opentelemetry`` is not installed).
    """
    if not carrier or "traceparent" not in carrier:
        yield False
        return
    try:
        from opentelemetry import context as otel_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        yield False
        return
    token = otel_context.attach(TraceContextTextMapPropagator().extract(dict(carrier)))
    try:
        yield True
    finally:
        otel_context.detach(token)


# Spans -----------------------------------------------------------------------------------


class SpanHandle:
    """What a ``with tracing.span(...)`` block gets: a span, or nothing when tracing is off."""

    def __init__(self, span: Span | None = None, redactor: Redactor = REDACTOR) -> None:
        self._span = span
        self._redactor = redactor

    @property
    def recording(self) -> bool:
        """Whether anything set on this handle is kept."""
        return self._span is not None and self._span.is_recording()

    def set_attribute(self, key: str, value: Any) -> None:
        """Set one attribute (strings are redacted; ``None`` is skipped)."""
        if self._span is not None and value is not None:
            self._span.set_attribute(key, _attribute_value(value, self._redactor))

    def record_error(self, exc: BaseException) -> None:
        """Mark the span failed with the (redacted) error, its code and retryability."""
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        message = self._redactor.redact_text(str(exc))[:_MAX_TEXT]
        stack = self._redactor.redact_text("".join(traceback.format_exception(exc)))[-_MAX_TEXT * 4 :]
        self._span.set_attribute("dativo.error_code", get_error_code(exc))
        self._span.set_attribute("dativo.retryable", is_retryable(exc))
        self._span.add_event(
            "exception",
            {
                "exception.type": type(exc).__qualname__,
                "exception.message": message,
                "exception.stacktrace": stack,
            },
        )
        self._span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"))


_NOOP_HANDLE = SpanHandle()


def _attribute_value(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_attribute_value(v, redactor) for v in value]
    return redactor.redact_text(str(value))[:_MAX_TEXT]


class Tracing:
    """Span helpers for the pipeline; every method is a cheap no-op when disabled.

    Build one with :func:`configure_tracing`.

    Args:
        provider: The SDK ``TracerProvider``; ``None`` for a disabled instance.
        processors: The span processors spans (and imported plugin spans) end in.
        redactor: Masks secrets in what spans record.
        batch_sample_first: Batches ``0 .. n-1`` of a stream always get a span.
        batch_sample_every: After those, every n-th batch gets one.
    """

    def __init__(
        self,
        provider: TracerProvider | None = None,
        processors: Sequence[SpanProcessor] = (),
        *,
        redactor: Redactor = REDACTOR,
        batch_sample_first: int = 10,
        batch_sample_every: int = 100,
    ) -> None:
        self._provider = provider
        self._processors = tuple(processors)
        self._redactor = redactor
        self._tracer = provider.get_tracer(_TRACER_NAME, __version__) if provider is not None else None
        self.batch_sample_first = batch_sample_first
        self.batch_sample_every = max(batch_sample_every, 1)

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded and exported."""
        return self._tracer is not None

    @contextlib.contextmanager
    def span(self, name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[SpanHandle]:
        """Run the block in a span carrying the run's tenant/job/run attributes.

        An exception leaving the block marks the span failed (status ``ERROR``, redacted
        message, ``dativo.error_code``) and propagates.

        Args:
            name: The span's name.
            attributes: Extra attributes (strings are redacted).

        Yields:
            A :class:`SpanHandle` to add attributes or record a handled error.
        """
        if self._tracer is None:
            yield _NOOP_HANDLE
            return
        merged = {**_RUN_ATTRIBUTES.get(), **(attributes or {})}
        clean = {k: _attribute_value(v, self._redactor) for k, v in merged.items() if v is not None}
        with self._tracer.start_as_current_span(
            name, attributes=clean, record_exception=False, set_status_on_exception=False
        ) as span:
            handle = SpanHandle(span, self._redactor)
            try:
                yield handle
            except GeneratorExit:
                raise
            except BaseException as exc:
                handle.record_error(exc)
                raise

    @contextlib.contextmanager
    def run(self, *, tenant: str, job: str, run_id: str, **attributes: Any) -> Iterator[SpanHandle]:
        """The root span of a run (``dativo.run``); its tenant/job/run attributes go on every child."""
        base = {"dativo.tenant": tenant, "dativo.job": job, "dativo.run_id": run_id}
        token = _RUN_ATTRIBUTES.set(base)
        try:
            with self.span("dativo.run", attributes) as handle:
                yield handle
        finally:
            _RUN_ATTRIBUTES.reset(token)

    def check(self, *, role: str) -> contextlib.AbstractContextManager[SpanHandle]:
        """Span ``dativo.check`` around a plugin's ``check_connection`` (``role``: source or target)."""
        return self.span("dativo.check", {"dativo.role": role})

    def discover(self) -> contextlib.AbstractContextManager[SpanHandle]:
        """Span ``dativo.discover`` around the source's ``discover``."""
        return self.span("dativo.discover")

    def stage(
        self, stage: str, *, stream: str | None = None
    ) -> contextlib.AbstractContextManager[SpanHandle]:
        """Span ``dativo.stage.<stage>`` (extract, validate, write, commit)."""
        return self.span(f"dativo.stage.{stage}", {"dativo.stage": stage, "dativo.stream": stream})

    def batch_sampled(self, index: int) -> bool:
        """Tell whether batch ``index`` (0-based) of a stream gets a span."""
        return index < self.batch_sample_first or index % self.batch_sample_every == 0

    def batch(
        self, index: int, *, stream: str | None = None, records: int | None = None
    ) -> contextlib.AbstractContextManager[SpanHandle]:
        """Span ``dativo.batch`` for sampled batches (see :meth:`batch_sampled`), else nothing."""
        if self._tracer is None or not self.batch_sampled(index):
            return contextlib.nullcontext(_NOOP_HANDLE)
        return self.span(
            "dativo.batch",
            {"dativo.batch.index": index, "dativo.stream": stream, "dativo.batch.records": records},
        )

    def commit(self, *, stream: str | None = None) -> contextlib.AbstractContextManager[SpanHandle]:
        """Span ``dativo.commit`` around the target's ``commit_files`` and the state save."""
        return self.span("dativo.commit", {"dativo.stream": stream})

    def import_spans(self, spans: Iterable[Mapping[str, Any]] | None, *, trace_id: str | None = None) -> int:
        """Export spans a sandbox worker returned (:meth:`SpanRelay.drain`) with the host's.

        The data comes from plugin code, so it is checked: only well-formed spans of the
        current trace (or ``trace_id``) are kept, at most 2000 per call, attributes capped.

        Args:
            spans: The worker's span dicts.
            trace_id: The trace they must belong to; the current span's by default.

        Returns:
            How many spans were exported.
        """
        if not self._processors or not spans:
            return 0
        expected = trace_id or (current_trace_ids() or (None, None))[0]
        if expected is None:
            return 0
        imported = 0
        for data in list(spans)[:_MAX_IMPORTED_SPANS]:
            span = _span_from_dict(data, expected, self._provider)
            if span is not None:
                for processor in self._processors:
                    processor.on_end(span)
                imported += 1
        return imported

    def shutdown(self) -> None:
        """Export what is buffered and stop (call once at the end of the process)."""
        if self._provider is not None:
            self._provider.force_flush()
            self._provider.shutdown()


def configure_tracing(
    *,
    environ: Mapping[str, str] | None = None,
    exporter: SpanExporter | None = None,
    service_name: str = "dativo-run",
    redactor: Redactor = REDACTOR,
    batch_sample_first: int = 10,
    batch_sample_every: int = 100,
) -> Tracing:
    """Return the process's :class:`Tracing`, enabled only when the environment asks.

    With ``exporter`` (tests pass an ``InMemorySpanExporter``) tracing is on and spans go
    to it as they end. Otherwise ``OTEL_TRACES_EXPORTER`` picks ``otlp`` (the default when
    an endpoint is set; ``http/protobuf``, or ``grpc`` when that exporter is installed) or
    ``console``; the exporter reads the rest of ``OTEL_EXPORTER_OTLP_*`` itself, the
    sampler ``OTEL_TRACES_SAMPLER``, the resource ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES``.

    Args:
        environ: The environment deciding on/off; ``os.environ`` by default.
        exporter: Export to this instead, synchronously.
        service_name: ``service.name`` unless the environment sets one.
        redactor: Masks secrets in every exported span.
        batch_sample_first: See :class:`Tracing`.
        batch_sample_every: See :class:`Tracing`.

    Returns:
        A :class:`Tracing`, also what :func:`active_tracing` returns from now on; disabled
        when tracing is not requested or ``opentelemetry`` is not installed (a warning then
        says how to install it).
    """
    env = os.environ if environ is None else environ
    options: dict[str, Any] = {
        "batch_sample_first": batch_sample_first,
        "batch_sample_every": batch_sample_every,
    }
    if exporter is None and not tracing_requested(env):
        return _activate(Tracing(redactor=redactor, **options))
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        logger.warning(
            "OTEL_* variables ask for traces but OpenTelemetry is not installed; install it with "
            "pip install 'dativo-runtime[otel]' (tracing stays off)"
        )
        return _activate(Tracing(redactor=redactor, **options))
    attributes = {"service.version": __version__}
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        attributes["service.name"] = service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    processors: list[SpanProcessor]
    if exporter is not None:
        processors = [SimpleSpanProcessor(_RedactingExporter.wrap(exporter, redactor))]
    else:
        processors = [
            BatchSpanProcessor(_RedactingExporter.wrap(e, redactor)) for e in _exporters_from_env(env)
        ]
        if not processors:
            return _activate(Tracing(redactor=redactor, **options))
    for processor in processors:
        provider.add_span_processor(processor)
    return _activate(Tracing(provider, processors, redactor=redactor, **options))


_ACTIVE: Tracing | None = None


def _activate(tracing: Tracing) -> Tracing:
    global _ACTIVE
    _ACTIVE = tracing
    return tracing


def active_tracing() -> Tracing:
    """Return the :class:`Tracing` :func:`configure_tracing` last built (disabled before that).

    The sandbox host uses it to export the spans workers return, without the
    ``Sandbox`` interface having to carry it.
    """
    global _ACTIVE
    if _ACTIVE is None:
        _ACTIVE = Tracing()
    return _ACTIVE


def _exporters_from_env(env: Mapping[str, str]) -> list[SpanExporter]:
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


class _RedactingExporter:
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
                return inner.force_flush(timeout_millis)

        return RedactingSpanExporter()


def _otlp_exporter(*, grpc: bool) -> SpanExporter:
    import importlib

    # The gRPC exporter is not part of the otel extra; import it by name when asked for.
    kind = "grpc" if grpc else "http"
    module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{kind}.trace_exporter")
    exporter: SpanExporter = module.OTLPSpanExporter()
    return exporter


def _redact_attributes(attributes: Mapping[str, Any] | None, redactor: Redactor) -> dict[str, Any]:
    from dativo_runtime._secrets import MASK, is_secret_key

    clean: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if is_secret_key(key.rsplit(".", 1)[-1]) and isinstance(value, str) and value:
            clean[key] = MASK
        else:
            clean[key] = _attribute_value(value, redactor)
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


# Crossing the sandbox boundary -------------------------------------------------------------


def _span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    context = span.context
    scope = span.instrumentation_scope
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}" if context else None,
        "span_id": f"{context.span_id:016x}" if context else None,
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "kind": span.kind.name,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "status": {"code": span.status.status_code.name, "description": span.status.description},
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
        "scope": {"name": scope.name, "version": scope.version} if scope else None,
    }


def _clean_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, list) and all(isinstance(v, (bool, int, float, str)) for v in value):
        return [v[:_MAX_TEXT] if isinstance(v, str) else v for v in value[:_MAX_ATTRIBUTES]]
    return None


def _clean_attributes(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        return {}
    clean: dict[str, Any] = {}
    for key, value in list(raw.items())[:_MAX_ATTRIBUTES]:
        cleaned = _clean_value(value)
        if isinstance(key, str) and cleaned is not None:
            clean[key[:256]] = cleaned
    return clean


def _hex_id(value: Any, digits: int) -> int | None:
    if not isinstance(value, str) or len(value) != digits:
        return None
    try:
        number = int(value, 16)
    except ValueError:
        return None
    return number or None


def _span_from_dict(data: Any, trace_id: str, provider: TracerProvider | None) -> ReadableSpan | None:
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    if not isinstance(data, Mapping) or data.get("trace_id") != trace_id:
        return None
    trace = _hex_id(data.get("trace_id"), 32)
    span_id = _hex_id(data.get("span_id"), 16)
    parent_id = _hex_id(data.get("parent_span_id"), 16)
    start, end = data.get("start_time"), data.get("end_time")
    if trace is None or span_id is None or not isinstance(start, int) or not isinstance(end, int):
        return None
    status: Mapping[str, Any] = data["status"] if isinstance(data.get("status"), Mapping) else {}
    code = StatusCode[status["code"]] if status.get("code") in StatusCode.__members__ else StatusCode.UNSET
    description = status.get("description") if isinstance(status.get("description"), str) else None
    kind = SpanKind[data["kind"]] if data.get("kind") in SpanKind.__members__ else SpanKind.INTERNAL
    events = []
    for event in (data.get("events") or [])[:_MAX_EVENTS] if isinstance(data.get("events"), list) else []:
        if isinstance(event, Mapping) and isinstance(event.get("name"), str):
            timestamp = event.get("timestamp") if isinstance(event.get("timestamp"), int) else None
            events.append(Event(event["name"][:256], _clean_attributes(event.get("attributes")), timestamp))
    scope_data: Mapping[str, Any] = data["scope"] if isinstance(data.get("scope"), Mapping) else {}
    scope = InstrumentationScope(
        str(scope_data.get("name") or "plugin")[:256],
        str(scope_data["version"])[:64] if scope_data.get("version") else None,
    )
    attributes = _clean_attributes(data.get("attributes"))
    attributes["dativo.sandboxed"] = True
    flags = TraceFlags(TraceFlags.SAMPLED)
    return ReadableSpan(
        name=str(data.get("name") or "plugin")[:256],
        context=SpanContext(trace, span_id, is_remote=False, trace_flags=flags),
        parent=SpanContext(trace, parent_id, is_remote=True, trace_flags=flags) if parent_id else None,
        resource=provider.resource if provider is not None else None,
        attributes=attributes,
        events=events,
        kind=kind,
        status=Status(code, description[:_MAX_TEXT] if description and code is StatusCode.ERROR else None),
        start_time=start,
        end_time=max(end, start),
        instrumentation_scope=scope,
    )


class SpanRelay:
    """Worker side: make the host's trace current and collect the spans plugin code ends.

    Typical use in the sandbox worker::

        relay = SpanRelay.start(hello.get("trace"))  # None when tracing is off
        ...
        with SpanRelay.attached(relay, message.get("trace")):
            result = handle(message)
        reply["spans"] = relay.drain() if relay else []
    """

    def __init__(self, provider: TracerProvider, limit: int = 10_000) -> None:
        self._provider = provider
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()
        self._limit = limit
        self.dropped = 0

    @classmethod
    def start(cls, carrier: Mapping[str, str] | None) -> SpanRelay | None:
        """Install a tracer provider that collects spans, if the host sent a trace context.

        Args:
            carrier: The host's :func:`inject_context` output.

        Returns:
            The relay, or ``None`` (nothing imported) when the carrier is empty or
            ``opentelemetry`` is not installed in the worker.
        """
        if not carrier or "traceparent" not in carrier:
            return None
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
        except ImportError:
            return None
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider = current
        else:
            provider = TracerProvider(
                resource=Resource.create({"service.name": "dativo-plugin"}), sampler=ParentBased(ALWAYS_ON)
            )
            trace.set_tracer_provider(provider)
        relay = cls(provider)
        provider.add_span_processor(relay._processor())
        return relay

    def _processor(self) -> Any:
        from opentelemetry.sdk.trace import SpanProcessor

        relay = self

        class Collect(SpanProcessor):
            def on_end(self, span: ReadableSpan) -> None:
                with relay._lock:
                    if len(relay._spans) < relay._limit:
                        relay._spans.append(span)
                    else:
                        relay.dropped += 1

        return Collect()

    @staticmethod
    def attached(
        relay: SpanRelay | None, carrier: Mapping[str, str] | None
    ) -> contextlib.AbstractContextManager[Any]:
        """Attach ``carrier``'s context for one request; nothing when ``relay`` is ``None``."""
        if relay is None:
            return contextlib.nullcontext(False)
        return extract_context(carrier)

    def drain(self) -> list[dict[str, Any]]:
        """Return the finished spans collected since the last call, as JSON-ready dicts."""
        with self._lock:
            spans, self._spans = self._spans, []
        return [_span_to_dict(s) for s in spans]
