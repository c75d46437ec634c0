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


def test_worker_imports_stay_light():
    code = (
        "import sys, dativo_runtime._worker._main; "
        "heavy = {'pyarrow', 'docker', 'typer', 'pydantic', 'boto3', 'yaml'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
