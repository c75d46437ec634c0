"""Simulates the sandbox worker side of trace propagation.

Reads the host's trace carrier (JSON) on stdin, starts a SpanRelay from it, runs "plugin
code" that creates spans with the plain OpenTelemetry API inside the attached context,
and prints {"spans": [...], "otel_imported": bool} on stdout.
"""

from __future__ import annotations

import json
import sys

from dativo_runtime._observability import SpanRelay


def plugin_code(secret: str) -> None:
    # What a plugin author writes: the global API, no Dativo imports.
    from opentelemetry import trace

    tracer = trace.get_tracer("example_plugin")
    with tracer.start_as_current_span("plugin.fetch_page") as span:
        span.set_attribute("page", 1)
        span.set_attribute("api_token", secret)
        with tracer.start_as_current_span("plugin.parse"):
            pass


def main() -> int:
    message = json.loads(sys.stdin.read())
    carrier = message["carrier"]
    relay = SpanRelay.start(carrier)
    with SpanRelay.attached(relay, carrier):
        if relay is not None:
            plugin_code(message["secret"])
    spans = relay.drain() if relay is not None else []
    otel_imported = any(name.startswith("opentelemetry") for name in sys.modules)
    print(json.dumps({"spans": spans, "otel_imported": otel_imported}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
