"""Dativo plugin SDK: base classes, results, errors and version rules for connector plugins.

Write a source by subclassing :class:`BaseReader`, a target by subclassing
:class:`BaseWriter`; raise the errors below to tell the runtime what went wrong.
"""

from ._batch import ArrowBatch, Batch, Record, is_arrow_batch, records_from_batch
from ._compat import DEFAULT_REQUIRES_SDK, check_compatibility, is_compatible, parse_requires_sdk
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectionError,  # noqa: A004  (deliberate; see docs/errors.md)
    DativoConnectionError,
    DativoError,
    PluginError,
    PluginVersionError,
    RateLimitError,
    SandboxError,
    TransientError,
    ValidationError,
    from_dict,
    get_error_code,
    is_retryable,
)
from ._partition import WHOLE_STREAM, Partition
from ._reader import BaseReader
from ._results import ConnectionTestResult, DiscoveryResult
from ._schema import Column, ColumnType, DiscoveredStream
from ._state import State
from ._version import PLUGIN_SDK_VERSION
from ._writer import BaseWriter

__version__ = PLUGIN_SDK_VERSION

__all__ = [
    "DEFAULT_REQUIRES_SDK",
    "PLUGIN_SDK_VERSION",
    "WHOLE_STREAM",
    "ArrowBatch",
    "AuthenticationError",
    "BaseReader",
    "BaseWriter",
    "Batch",
    "Column",
    "ColumnType",
    "ConfigurationError",
    "ConnectionError",
    "ConnectionTestResult",
    "DativoConnectionError",
    "DativoError",
    "DiscoveredStream",
    "DiscoveryResult",
    "Partition",
    "PluginError",
    "PluginVersionError",
    "RateLimitError",
    "Record",
    "SandboxError",
    "State",
    "TransientError",
    "ValidationError",
    "check_compatibility",
    "from_dict",
    "get_error_code",
    "is_arrow_batch",
    "is_compatible",
    "is_retryable",
    "parse_requires_sdk",
    "records_from_batch",
]
