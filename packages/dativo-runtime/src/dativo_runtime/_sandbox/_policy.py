"""Which backend runs a plugin: the job's wish, the mode, and the operator's ceilings.

INITIAL VERSION (issue 4): only the in-process backend exists, so ``auto`` means ``none``
in ``self_hosted`` mode and ``cloud`` mode refuses to run. The sandbox issue replaces
this with the real policy (``should_sandbox_plugin``, operator configuration, ``auto`` as
the strongest available backend) without changing these signatures.
"""

from __future__ import annotations

from dataclasses import dataclass

from dativo_plugin_sdk import ConfigurationError

from .._plugin_ref import PluginRef
from ._base import Sandbox

__all__ = ["BACKEND_NAMES", "OperatorPolicy", "choose_sandbox", "should_sandbox_plugin"]

BACKEND_NAMES = ("auto", "process", "docker", "none")


@dataclass(frozen=True)
class OperatorPolicy:
    """What the operator allows, whatever job files ask for (filled in by the sandbox issue)."""

    allowed_backends: tuple[str, ...] = ("process", "docker", "none")


def should_sandbox_plugin(mode: str, requested: str, ref: PluginRef) -> bool:
    """Tell whether the plugin must run outside the host process.

    Args:
        mode: ``self_hosted`` or ``cloud``.
        requested: The job's ``sandbox.backend``.
        ref: The plugin reference.

    Returns:
        ``True`` when the plugin must be sandboxed.
    """
    if mode == "cloud":
        return True
    return requested not in ("none", "auto")


def choose_sandbox(
    mode: str,
    requested: str,
    ref: PluginRef,
    policy: OperatorPolicy | None = None,
) -> Sandbox:
    """Return the backend that will run ``ref``.

    Raises:
        ConfigurationError: If the mode and request cannot be honoured on this runtime.
    """
    from ._inprocess import InProcessSandbox

    if should_sandbox_plugin(mode, requested, ref):
        raise ConfigurationError(
            f"job asks for sandbox backend {requested!r} in {mode!r} mode, but this runtime has no "
            "sandbox backends yet; cloud mode always sandboxes plugins. Run in mode 'self_hosted' "
            "with sandbox.backend 'none' for trusted plugins."
        )
    return InProcessSandbox()
