"""The host's side of the spans a sandbox worker returns: checked, capped, rebuilt as SDK spans.

The worker sends the plugin's finished spans in the wire format of
:func:`dativo_runtime._worker._span_relay.span_to_dict`. They come from plugin code, so
nothing is trusted: a span of another trace, with malformed ids or times, is dropped;
names, attributes and events are capped; every span is marked ``dativo.sandboxed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dativo_runtime._observability._span_export import MAX_TEXT

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

__all__ = ["MAX_IMPORTED_SPANS", "span_from_dict"]

MAX_IMPORTED_SPANS = 2000
"""The most spans one worker answer may add to the host's trace."""
_MAX_ATTRIBUTES = 64
_MAX_EVENTS = 32
_MAX_TEXT = MAX_TEXT


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


def span_from_dict(data: Any, trace_id: str, provider: TracerProvider | None) -> ReadableSpan | None:
    """Rebuild one span the worker sent, or ``None`` when it is malformed or of another trace.

    Args:
        data: One span dict from the worker.
        trace_id: The trace (32 hex digits) the span must belong to.
        provider: The host's provider, whose resource the span gets.

    Returns:
        A ``ReadableSpan`` marked ``dativo.sandboxed``, or ``None``.
    """
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
