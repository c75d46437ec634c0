"""The public surface: exactly these names, sorted, and a package import that stays light."""

from __future__ import annotations

import subprocess
import sys

import dativo_runtime
import dativo_runtime.connectors

EXPECTED = [
    "BatchValidator",
    "CheckReport",
    "ExitCode",
    "JobConfig",
    "JobOutcome",
    "JobState",
    "JobsReport",
    "PluginRef",
    "ProgressEvent",
    "RetryPolicy",
    "RunResult",
    "RunStatus",
    "StateStore",
    "ValidationPlan",
    "ValidationReport",
    "__version__",
    "check_job",
    "committed_files",
    "discover_job",
    "discover_plugin",
    "exit_code_for",
    "inspect_plugin",
    "job_json_schema",
    "list_plugins",
    "load_job",
    "parse_job",
    "run_job",
    "run_jobs",
    "validate_job",
]


def test_exported_names() -> None:
    assert dativo_runtime.__all__ == EXPECTED
    assert dativo_runtime.__all__ == sorted(dativo_runtime.__all__)
    for name in EXPECTED:
        assert getattr(dativo_runtime, name) is not None


def test_connectors_exports() -> None:
    assert dativo_runtime.connectors.__all__ == sorted(dativo_runtime.connectors.__all__)
    assert {"CsvReader", "JsonlReader", "ParquetWriter", "ParquetDataset"} <= set(
        dativo_runtime.connectors.__all__
    )


def test_importing_the_package_does_not_import_the_cli_stack() -> None:
    code = (
        "import sys, dativo_runtime\n"
        "heavy = [m for m in ('typer', 'rich', 'pydantic', 'boto3', 'botocore', 'yaml') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_worker_modules_import_only_stdlib_sdk_and_pyarrow() -> None:
    code = (
        "import sys\n"
        "import dativo_runtime._worker._main\n"
        "heavy = [m for m in ('typer', 'rich', 'pydantic', 'boto3', 'yaml') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
