"""A hint on a sandboxed plugin's connection error when its sandbox has no network.

A plugin that reaches a server from a sandbox without egress fails with "Network is
unreachable" or a refused connection, and its ``ConnectionError`` looks like a server that is
down. The host knows better: it says that the sandbox has no network and which setting gives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["add_network_hint"]

_ISOLATED = ("process", "docker")


def add_network_hint(error: Mapping[str, Any], backend: str, *, network: bool) -> Mapping[str, Any]:
    """Return the worker's error with the sandbox's missing network named (unchanged otherwise).

    Args:
        error: A ``DativoError.to_dict()`` the worker sent.
        backend: The backend that ran the plugin.
        network: Whether the sandbox has egress (``sandbox.network``).

    Returns:
        The error data to rebuild the exception from; a ``ConnectionError`` from a sandbox
        without network gains the hint in its message and ``details["hint"]``.
    """
    if network or backend not in _ISOLATED or error.get("error_type") != "ConnectionError":
        return error
    hint = (
        f"The plugin runs in the {backend} sandbox, which has no network: set sandbox.network: true "
        "in the job (the operator's policy must allow it). Even then a server on the host's loopback "
        "(127.0.0.1) is out of a sandbox's reach; see docs/sandboxing.md, 'Test servers on the host'."
    )
    details = error.get("details")
    details = dict(details) if isinstance(details, Mapping) else {}
    details.setdefault("hint", hint)
    message = str(error.get("message") or "").rstrip().rstrip(".")
    return {**error, "message": f"{message}. {hint}", "details": details}
