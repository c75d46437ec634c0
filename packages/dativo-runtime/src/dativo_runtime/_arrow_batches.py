"""The runtime's name for the SDK's shared Arrow mapping (:mod:`dativo_plugin_sdk._arrow`).

One mapping of SDK column types to Arrow types, and one lenient conversion of what a
reader yields, used by the host, the sandbox worker, the connectors and the testkit
alike. Runtime modules import it from here; the worker imports the SDK module directly.
"""

from __future__ import annotations

from dativo_plugin_sdk._arrow import (
    arrow_schema_for,
    arrow_type_for,
    batch_to_arrow,
    column_type_for_arrow,
    iter_arrow,
)

__all__ = [
    "arrow_schema_for",
    "arrow_type_for",
    "batch_to_arrow",
    "column_type_for_arrow",
    "iter_arrow",
]
