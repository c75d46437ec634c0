"""Execution backends for plugins (in-process, bubblewrap, Docker) behind one interface."""

from ._base import ExtractedBatch, ReaderSession, Sandbox, SandboxLimits, WriterSession
from ._policy import BACKEND_NAMES, OperatorPolicy, choose_sandbox, should_sandbox_plugin

__all__ = [
    "BACKEND_NAMES",
    "ExtractedBatch",
    "OperatorPolicy",
    "ReaderSession",
    "Sandbox",
    "SandboxLimits",
    "WriterSession",
    "choose_sandbox",
    "should_sandbox_plugin",
]
