"""The public surface of dativo_testkit: changing it must be deliberate."""

from __future__ import annotations

import subprocess
import sys

import dativo_testkit

EXPECTED = [
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


def test_exported_names_are_exactly_the_expected_ones() -> None:
    assert dativo_testkit.__all__ == EXPECTED


def test_every_exported_name_exists_and_public_api_is_documented() -> None:
    for name in dativo_testkit.__all__:
        value = getattr(dativo_testkit, name)
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"


def test_importing_the_testkit_loads_neither_pytest_nor_hypothesis_nor_the_runtime() -> None:
    code = (
        "import sys, dativo_testkit; "
        "print(sorted(m for m in ('pytest', 'hypothesis', 'http.server', 'dativo_runtime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
