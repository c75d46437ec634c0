"""Execution backends for plugins (in-process, bubblewrap, Docker) behind one interface.

Names are imported on first use (PEP 562), so the sandbox worker, which lives in this
package, starts without importing pyarrow, the backends or the policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dativo_runtime._lazy_exports import lazy_exports

if TYPE_CHECKING:
    from dativo_runtime._sandbox._base import (
        ExtractedBatch,
        ReaderSession,
        Sandbox,
        SandboxLimits,
        WriterSession,
    )
    from dativo_runtime._sandbox._operator_policy import BACKEND_NAMES, OperatorPolicy
    from dativo_runtime._sandbox._policy import choose_sandbox, should_sandbox_plugin
    from dativo_runtime._sandbox.bubblewrap._backend import BubblewrapSandbox
    from dativo_runtime._sandbox.docker._backend import DockerSandbox
    from dativo_runtime._sandbox.host._exit import SANDBOX_FAILURE_REASONS

__all__ = [
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
]

_HOMES = {
    "BACKEND_NAMES": "._operator_policy",
    "SANDBOX_FAILURE_REASONS": ".host._exit",
    "BubblewrapSandbox": ".bubblewrap._backend",
    "DockerSandbox": ".docker._backend",
    "ExtractedBatch": "._base",
    "OperatorPolicy": "._operator_policy",
    "ReaderSession": "._base",
    "Sandbox": "._base",
    "SandboxLimits": "._base",
    "WriterSession": "._base",
    "choose_sandbox": "._policy",
    "should_sandbox_plugin": "._policy",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
