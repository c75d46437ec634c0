"""The worker's side of tracing: join the host's trace, collect the plugin's spans, return them.

The host puts the W3C trace context of its current span into ``hello`` and each request
(``trace``). The worker starts a :class:`SpanRelay` from it, so spans the plugin creates
with ``opentelemetry.trace.get_tracer(...)`` are children of the host's span. A sandboxed
worker usually cannot reach a collector, so the relay keeps the plugin's finished spans
and the worker returns them with its answers (:meth:`SpanRelay.drain`, in the wire format
of :func:`span_to_dict`); the host checks and exports them with its own spans
(``Tracing.import_spans`` in ``dativo_runtime._observability``).

Part of the worker, a leaf: it imports only the standard library, and OpenTelemetry only
when the host sends a trace context (the ``otel`` extra may be missing in the worker).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

__all__ = ["SpanRelay", "extract_context", "span_to_dict"]


@contextlib.contextmanager
def extract_context(carrier: Mapping[str, str] | None) -> Iterator[bool]:
    """Make the trace context in ``carrier`` current for the ``with`` block (worker side).

    Spans started in the block, by any tracer, become children of the host's span.

    Args:
        carrier: What ``inject_context`` returned on the host.

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


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """Return a finished span as the JSON-ready dict the worker sends the host.

    Args:
        span: A span the plugin ended.

    Returns:
        ``name``, hex ``trace_id``/``span_id``/``parent_span_id``, ``kind``, start and end
        times in nanoseconds, ``status``, ``attributes``, ``events`` and ``scope``.
    """
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
        return [span_to_dict(s) for s in spans]
