"""A short-lived isolated Python child under a deadline, for work on untrusted input the host must bound.

The pattern probe and the config-schema check hand a plugin's schema to such a child
(``python -I -S``: no user site, no ``site``), which is killed when the deadline passes, so
the host's own interpreter never spends unbounded time on it.
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["run_python_child"]


def run_python_child(program: str, payload: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """Run ``program`` in ``python -I -S -c`` with ``payload`` on its standard input.

    Args:
        program: The child's source.
        payload: Its standard input (JSON, as a rule).
        timeout: Seconds the child may take, its start included.

    Returns:
        The finished child (its output and exit code), or ``None`` when it was killed at the deadline.
    """
    try:
        return subprocess.run(
            [sys.executable, "-I", "-S", "-c", program],
            input=payload,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
