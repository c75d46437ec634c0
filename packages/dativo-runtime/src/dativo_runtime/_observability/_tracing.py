"""OpenTelemetry traces: a run, its checks, discovery, stages, sampled batches and commit.

Tracing is on only when the standard ``OTEL_*`` variables ask for it
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_TRACES_EXPORTER`` other than ``none``) and ``OTEL_SDK_DISABLED`` is not ``true``.
Otherwise :func:`configure_tracing` returns a disabled :class:`Tracing` whose span
helpers do nothing, and ``opentelemetry`` is never imported (it is the optional ``otel``
extra of the runtime).

Every span that leaves the process goes through the process-wide redactor first
(:mod:`._span_export`): names, attributes, event attributes and status messages lose any
known secret.

Spans cross the sandbox boundary both ways. The host puts the W3C trace context of its
current span into each request with :func:`inject_context`; the worker joins it with
:class:`~dativo_runtime._worker._span_relay.SpanRelay` (re-exported here with
:func:`extract_context`), so spans the plugin creates are children of the host's span,
and returns the plugin's finished spans with its answers; the host checks them
(:mod:`._span_import`) and exports them with its own (:meth:`Tracing.import_spans`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import traceback
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dativo_plugin_sdk import get_error_code, is_retryable
from dativo_runtime._observability._span_export import (
    MAX_TEXT,
    RedactingExporter,
    attribute_value,
    exporters_from_env,
)
from dativo_runtime._observability._span_import import MAX_IMPORTED_SPANS, span_from_dict
from dativo_runtime._secrets import REDACTOR, Redactor
from dativo_runtime._version import __version__
from dativo_runtime._worker._span_relay import SpanRelay, extract_context

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
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

logger = logging.getLogger("dativo.observability")

_TRACER_NAME = "dativo_runtime"
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
            self._span.set_attribute(key, attribute_value(value, self._redactor))

    def record_error(self, exc: BaseException) -> None:
        """Mark the span failed with the (redacted) error, its code and retryability."""
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        message = self._redactor.redact_text(str(exc))[:MAX_TEXT]
        stack = self._redactor.redact_text("".join(traceback.format_exception(exc)))[-MAX_TEXT * 4 :]
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
        clean = {k: attribute_value(v, self._redactor) for k, v in merged.items() if v is not None}
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
        for data in list(spans)[:MAX_IMPORTED_SPANS]:
            span = span_from_dict(data, expected, self._provider)
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
        processors = [SimpleSpanProcessor(RedactingExporter.wrap(exporter, redactor))]
    else:
        processors = [
            BatchSpanProcessor(RedactingExporter.wrap(e, redactor)) for e in exporters_from_env(env)
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
