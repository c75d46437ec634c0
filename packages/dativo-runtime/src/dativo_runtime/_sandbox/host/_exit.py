"""How a worker ended, told as a :class:`~dativo_plugin_sdk.SandboxError` whose reason says why."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any

from dativo_plugin_sdk import SandboxError
from dativo_runtime._observability._sandbox_failures import SANDBOX_FAILURE_REASONS
from dativo_runtime._sandbox._base import SandboxLimits
from dativo_runtime._sandbox._limits import format_bytes
from dativo_runtime._sandbox.host._transport import STDERR_TAIL_LINES, ExitStatus
from dativo_runtime._worker._protocol import WORKER_EXIT_DEADLINE, WORKER_EXIT_OOM

__all__ = ["SANDBOX_FAILURE_REASONS", "describe_exit"]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def describe_exit(
    status: ExitStatus | None,
    *,
    backend: str,
    ref: str,
    limits: SandboxLimits,
    timed_out: bool,
    started: bool,
    stderr: Sequence[str],
    cpu_seconds: int | None = None,
    disk_exceeded_by: int | None = None,
) -> SandboxError:
    """Turn how a worker ended into a :class:`SandboxError` whose ``details["reason"]`` says why.

    Args:
        status: The worker's exit status (``None`` if it could not be learnt).
        backend: ``process`` or ``docker``.
        ref: The plugin reference, for the message.
        limits: The limits the worker ran under (quoted in the message).
        timed_out: Whether the host's wall-clock deadline killed it.
        started: Whether the worker had finished the handshake.
        stderr: Its last stderr lines.
        cpu_seconds: The CPU-time budget enforced with ``RLIMIT_CPU``, if any.
        disk_exceeded_by: What the writer had added to its folder when the host stopped it
            for going over ``disk_bytes``, if it did.

    Returns:
        The error to raise (not retryable: running the same plugin again fails the same way).
    """
    exit_code = status.exit_code if status else None
    sig = status.signal if status else None
    if sig is None and exit_code is not None and exit_code > 128:
        sig = exit_code - 128
    where = f"plugin {ref!r} in the {backend} sandbox"
    details: dict[str, Any] = {"backend": backend, "ref": ref, "exit_code": exit_code, "signal": sig}
    if timed_out or exit_code == WORKER_EXIT_DEADLINE:
        reason = "timeout"
        message = f"{where} exceeded the wall-clock timeout of {limits.timeout_s:g} s and was killed"
        details["limit"] = "wall_clock"
        details["timeout_s"] = limits.timeout_s
    elif disk_exceeded_by is not None or sig == signal.SIGXFSZ:
        reason = "disk"
        disk = format_bytes(limits.disk_bytes) if limits.disk_bytes else "its"
        message = f"{where} exceeded the disk limit {disk} (sandbox.disk) and was stopped"
        details["disk_bytes"] = limits.disk_bytes
        if disk_exceeded_by is not None:
            details["written_bytes"] = disk_exceeded_by
    elif (status and status.oom_killed) or exit_code == WORKER_EXIT_OOM:
        reason = "oom"
        memory = format_bytes(limits.memory_bytes) if limits.memory_bytes else "the sandbox's"
        message = f"{where} exceeded the memory limit {memory} (OOM) and was stopped"
        details["memory_bytes"] = limits.memory_bytes
    elif sig == signal.SIGSYS:
        reason = "syscall_blocked"
        message = (
            f"{where} made a blocked system call (seccomp) and was killed by signal "
            f"{sig} (SIGSYS); the sandbox forbids mount, ptrace, unshare, the kernel keyring, module "
            "loading and similar calls"
        )
    elif sig == signal.SIGXCPU:
        reason = "timeout"
        message = (
            f"{where} used up its CPU time budget of {cpu_seconds} s and was killed by signal {sig} (SIGXCPU)"
        )
        details["limit"] = "cpu_time"
        details["cpu_seconds"] = cpu_seconds
    elif sig is not None:
        reason = "signal"
        message = f"{where} was killed by signal {sig} ({_signal_name(sig)})"
    elif not started:
        reason = "startup_failed"
        message = f"{where} failed to start (exit status {exit_code})"
    else:
        reason = "crash"
        message = f"{where} exited unexpectedly with status {exit_code}"
    if sig is not None:
        details["signal_name"] = _signal_name(sig)
    details["reason"] = reason
    tail = list(stderr)[-STDERR_TAIL_LINES:]
    details["stderr_tail"] = tail
    if tail:
        message += ". Last stderr lines:\n  " + "\n  ".join(tail[-10:])
    else:
        message += "."
    return SandboxError(message, details=details)
