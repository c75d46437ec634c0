"""The sandbox package's exported surface, and that the worker starts without pyarrow."""

from __future__ import annotations

import subprocess
import sys

import dativo_runtime._sandbox as sandbox


def test_exported_names():
    assert set(sandbox.__all__) == {
        "BACKEND_NAMES",
        "SANDBOX_FAILURE_REASONS",
        "BubblewrapSandbox",
        "DockerSandbox",
        "ExtractedBatch",
        "OperatorPolicy",
        "ReaderSession",
        "Sandbox",
        "SandboxLimits",
        "WriterSession",
        "choose_sandbox",
        "should_sandbox_plugin",
    }
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
    assert set(sandbox.SANDBOX_FAILURE_REASONS) == {
        "oom", "timeout", "disk", "signal", "syscall_blocked", "crash", "startup_failed",
    }  # fmt: skip


def test_one_definition_of_the_failure_reasons_with_a_metric_label_each():
    from dativo_runtime import _observability

    assert sandbox.SANDBOX_FAILURE_REASONS is _observability.SANDBOX_FAILURE_REASONS
    assert set(_observability.METRIC_LABEL_BY_REASON) == set(sandbox.SANDBOX_FAILURE_REASONS)
    assert set(_observability.METRIC_LABEL_BY_REASON.values()) <= set(_observability.SANDBOX_FAILURE_LABELS)


def test_the_worker_imports_no_host_machinery():
    # Without -I, so that the tree under test (PYTHONPATH) is the one imported.
    code = (
        "import sys, dativo_runtime._worker._main, dativo_runtime._worker._span_relay; "
        "host = [m for m in sys.modules if m.startswith(('dativo_runtime._observability', "
        "'dativo_runtime._secrets', 'prometheus_client', 'opentelemetry'))]; "
        "print(sorted(host))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_worker_imports_stay_light():
    code = (
        "import sys, dativo_runtime._worker._main; "
        "heavy = {'pyarrow', 'docker', 'typer', 'pydantic', 'boto3', 'yaml'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
