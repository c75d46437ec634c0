"""Dativo testkit: mocks, fault injection and the plugin conformance harness.

* :class:`MockReader`, :class:`MockWriter` and :class:`MockTarget`: deterministic mock
  plugins with faults switched on by configuration; :class:`MockPartitionedReader`, a
  source split into partitions (SDK 1.1).
* :class:`MockApiServer`: a real paginated, token-protected JSON API on loopback.
* Record builders (:func:`build_records`, :func:`edge_records`,
  :func:`build_invalid_records`) and hypothesis strategies (:func:`record_strategy`...).
* :func:`run_conformance`, :func:`conformance_test_class` and the ``dativo-conformance``
  command: one engine checking that a plugin honours the SDK contract.
"""

from dativo_plugin_sdk._arrow import arrow_schema_for as arrow_schema
from dativo_plugin_sdk._arrow import records_to_arrow

from ._checks import ConformanceCheck
from ._config_files import load_config_file, load_schema_file
from ._conformance import DEFAULT_CHECK_TIMEOUT, list_checks, run_conformance
from ._mock_api import MockApiServer, RecordedRequest
from ._mock_partitioned_reader import MockPartitionedReader
from ._mock_reader import MockReader
from ._mock_writer import MockTarget, MockWriter
from ._plugin_loading import load_plugin_class
from ._pytest_factory import conformance_test_class
from ._read_back import compare_records, read_output_folder, values_match
from ._record_validation import SchemaViolation, find_schema_violations
from ._records import ALL_TYPES_SCHEMA, build_invalid_records, build_records, edge_records
from ._report import CheckResult, CheckStatus, ConformanceReport
from ._strategies import (
    batch_strategy,
    invalid_record_strategy,
    record_strategy,
    schema_strategy,
    value_strategy,
)
from ._version import __version__

__all__ = [
    "ALL_TYPES_SCHEMA",
    "DEFAULT_CHECK_TIMEOUT",
    "CheckResult",
    "CheckStatus",
    "ConformanceCheck",
    "ConformanceReport",
    "MockApiServer",
    "MockPartitionedReader",
    "MockReader",
    "MockTarget",
    "MockWriter",
    "RecordedRequest",
    "SchemaViolation",
    "__version__",
    "arrow_schema",
    "batch_strategy",
    "build_invalid_records",
    "build_records",
    "compare_records",
    "conformance_test_class",
    "edge_records",
    "find_schema_violations",
    "invalid_record_strategy",
    "list_checks",
    "load_config_file",
    "load_plugin_class",
    "load_schema_file",
    "read_output_folder",
    "record_strategy",
    "records_to_arrow",
    "run_conformance",
    "schema_strategy",
    "value_strategy",
    "values_match",
]
